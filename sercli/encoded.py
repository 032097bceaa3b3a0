"""Whisper encoder outputs of labelled clips, computed in parallel and cached, so that the
heads (sercli.models.head) train in minutes on frames instead of re-running the encoder each epoch.

Per clip the cache holds, for every encoder block, its hidden states averaged over pairs of
frames (25 per second), float16: shape (n_layer, ceil(T' / 2), n_state). That is exactly what
a head sees at classify time (sercli.models.head.pooled_stats), so training and inference share one
path. Keyed by the file's content, the encoder file's sha256 and these settings.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from .audio import load_audio, resample
from .constants import SAMPLE_RATE
from .corpora import Clip
from .errors import AudioError

#: encoder frames averaged per stored frame (50 -> 25 frames per second)
FRAME_POOL = 2
ENCODED_SETTINGS = dict(mel="whisper-v1", dc="removed", pool=FRAME_POOL, dtype="float16")


#: how the encoder's arithmetic runs: float32; bfloat16 (autocast: matrix products in bf16, about
#: 1.6 times as fast on one thread where the CPU has native bf16, AVX512-BF16 or AMX); or int8
#: dynamic quantisation of its linear layers (lab only: about 2.5 times as fast, but it costs
#: more val UAR, docs/encoder.md). A head runs at HeadDims.precision, the precision its val
#: speakers were scored at (the recipe's classify_precision, by default its training precision).
PRECISIONS = ("fp32", "bf16", "int8")


@lru_cache(maxsize=1)
def native_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices natively. Elsewhere oneDNN emulates them, 2 to
    6 times slower than float32, so a bf16 head runs its encoder in float32 there instead: the
    exact arithmetic that bf16 approximates (docs/encoder.md gives the UAR of both)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def run_precision(precision: str) -> str:
    """The precision the encoder really runs at here, for a head trained at `precision`."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown encoder precision {precision!r}")
    return "fp32" if precision == "bf16" and not native_bf16() else precision


def load_at(path: str, precision: str):
    """The encoder of a bundled file, ready to run at `precision` (as run_precision gives it)."""
    import warnings

    import torch

    from .whisper import load_encoder

    enc = load_encoder(path)[0]
    if precision == "int8":
        with warnings.catch_warnings():  # torch's deprecation notice of its quantisation API
            warnings.simplefilter("ignore")
            enc = torch.ao.quantization.quantize_dynamic(enc, {torch.nn.Linear}, dtype=torch.qint8)
    return enc


#: oneDNN primitives a process running a bf16 encoder keeps (oneDNN's default: 1024). Every clip
#: length makes new bf16 matrix-product primitives, each with its own buffers: with the default,
#: whisper-tiny's run over bench's 699 clips peaked at 1601 MB in all, with 8 at 1359 MB, for 6 %
#: of its speed. Only there: the CNNs' float32 convolutions rebuilt their primitives for every
#: clip length with so small a cache (cnn 135 against 196 clips/s).
ONEDNN_PRIMITIVE_CACHE = "8"


@lru_cache(maxsize=2)
def _encoder(path: str, precision: str = "fp32"):
    """A worker's encoder (one thread), at a precision run_precision gave."""
    import torch

    if precision == "bf16":  # oneDNN reads it at its first use in the process, which is this encoder's
        os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", ONEDNN_PRIMITIVE_CACHE)
    torch.set_num_threads(1)
    return load_at(path, precision)


def pool_frames(h, pool: int = FRAME_POOL):
    """(..., T, C) -> (..., ceil(T / pool), C): means of consecutive frames (last group may be short)."""
    import torch

    T = h.shape[-2]
    pad = (-T) % pool
    if pad:  # repeat the last frame so that the short group's mean is its own frames' mean
        h = torch.cat([h, h[..., -1:, :].expand(*h.shape[:-2], pad, h.shape[-1])], dim=-2)
    return h.unflatten(-2, (-1, pool)).mean(-2)


def encode_signal(y: np.ndarray, encoder_file: str, layers: tuple[int, ...], *, precision: str = "fp32") -> np.ndarray:
    """(n,) 16 kHz audio -> (len(layers), frames, n_state) float16 pooled hidden states, the
    encoder run at `precision` (run_precision: bf16 only where the CPU has it natively)."""
    import torch

    from .features import remove_dc, whisper_log_mel

    precision = run_precision(precision)
    enc = _encoder(encoder_file, precision)
    mel = whisper_log_mel(remove_dc(y), n_mels=enc.dims.n_mels)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        hs = enc.hidden_states(torch.from_numpy(mel)[None], layers)
        return pool_frames(torch.stack([h[0] for h in hs]).float()).to(torch.float16).numpy()


def _key(path: str, encoder_sha: str, layers, speed: float = 1.0, precision: str = "fp32") -> str:
    what = (sorted(ENCODED_SETTINGS.items()), encoder_sha, tuple(layers))
    if speed != 1.0:  # the plain float32 outputs keep the keys they always had
        what += (("speed", speed),)
    if precision != "fp32":
        what += (("precision", precision),)
    h = hashlib.sha256(repr(what).encode())
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _one(
    path: str,
    encoder_file: str,
    encoder_sha: str,
    layers,
    cache_dir: str | None,
    speed: float = 1.0,
    precision: str = "fp32",
):
    from .parallel import allow_worker_growth

    allow_worker_growth()
    try:
        target = None
        if cache_dir:
            key = _key(path, encoder_sha, layers, speed, run_precision(precision))
            target = Path(cache_dir) / key[:2] / f"{key}.npy"
            if target.exists():
                return np.load(target, allow_pickle=False)
        from .threads import one_blas_thread

        with one_blas_thread():
            y, _ = load_audio(path)
            if speed != 1.0:  # speed perturbation (tempo and pitch together), for training copies
                y = resample(y, orig_sr=round(SAMPLE_RATE * speed), target_sr=SAMPLE_RATE)
        h = encode_signal(y, encoder_file, tuple(layers), precision=precision)
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, h)
            os.replace(tmp, target)
        return h
    except (AudioError, OSError, ValueError) as exc:
        return f"{path}: {exc}" if not str(exc).startswith(path) else str(exc)


def encode_clips(
    clips: list[Clip],
    encoder_file: str | os.PathLike,
    layers: tuple[int, ...],
    *,
    jobs: int = -1,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    speed: float = 1.0,
    precision: str = "fp32",
) -> tuple[list[Clip], list[np.ndarray], list[str]]:
    """(kept clips, per-clip (len(layers), frames, n_state) float16 arrays, failures), in order.
    speed != 1 encodes each clip played that much faster (a training augmentation); precision:
    one of PRECISIONS."""
    from joblib import delayed

    from .models import sha256_file
    from .parallel import per_clip

    encoder_file = str(encoder_file)
    sha = sha256_file(encoder_file)
    cache = str(cache_dir) if cache_dir is not None else None
    return per_clip(
        (delayed(_one)(c.path, encoder_file, sha, tuple(layers), cache, speed, precision) for c in clips),
        clips,
        jobs=jobs,
        batch_size=8,
        desc="encoder",
        progress=progress,
    )
