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


@lru_cache(maxsize=2)
def _encoder(path: str):
    import torch

    from .whisper import load_encoder

    torch.set_num_threads(1)
    return load_encoder(path)[0]


def pool_frames(h, pool: int = FRAME_POOL):
    """(..., T, C) -> (..., ceil(T / pool), C): means of consecutive frames (last group may be short)."""
    import torch

    T = h.shape[-2]
    pad = (-T) % pool
    if pad:  # repeat the last frame so that the short group's mean is its own frames' mean
        h = torch.cat([h, h[..., -1:, :].expand(*h.shape[:-2], pad, h.shape[-1])], dim=-2)
    return h.unflatten(-2, (-1, pool)).mean(-2)


def encode_signal(y: np.ndarray, encoder_file: str, layers: tuple[int, ...]) -> np.ndarray:
    """(n,) 16 kHz audio -> (len(layers), frames, n_state) float16 pooled hidden states."""
    import torch

    from .features import remove_dc, whisper_log_mel

    enc = _encoder(encoder_file)
    mel = whisper_log_mel(remove_dc(y), n_mels=enc.dims.n_mels)
    with torch.inference_mode():
        hs = enc.hidden_states(torch.from_numpy(mel)[None], layers)
        return pool_frames(torch.stack([h[0] for h in hs])).to(torch.float16).numpy()


def _key(path: str, encoder_sha: str, layers, speed: float = 1.0) -> str:
    what = (sorted(ENCODED_SETTINGS.items()), encoder_sha, tuple(layers))
    h = hashlib.sha256(repr(what if speed == 1.0 else (*what, ("speed", speed))).encode())
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _one(path: str, encoder_file: str, encoder_sha: str, layers, cache_dir: str | None, speed: float = 1.0):
    try:
        target = None
        if cache_dir:
            key = _key(path, encoder_sha, layers, speed)
            target = Path(cache_dir) / key[:2] / f"{key}.npy"
            if target.exists():
                return np.load(target, allow_pickle=False)
        from .threads import one_blas_thread

        with one_blas_thread():
            y, _ = load_audio(path)
            if speed != 1.0:  # speed perturbation (tempo and pitch together), for training copies
                y = resample(y, orig_sr=round(SAMPLE_RATE * speed), target_sr=SAMPLE_RATE)
        h = encode_signal(y, encoder_file, tuple(layers))
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
) -> tuple[list[Clip], list[np.ndarray], list[str]]:
    """(kept clips, per-clip (len(layers), frames, n_state) float16 arrays, failures), in order.
    speed != 1 encodes each clip played that much faster (a training augmentation)."""
    from joblib import delayed

    from .models import sha256_file
    from .parallel import per_clip

    encoder_file = str(encoder_file)
    sha = sha256_file(encoder_file)
    cache = str(cache_dir) if cache_dir is not None else None
    return per_clip(
        (delayed(_one)(c.path, encoder_file, sha, tuple(layers), cache, speed) for c in clips),
        clips,
        jobs=jobs,
        batch_size=8,
        desc="encoder",
        progress=progress,
    )
