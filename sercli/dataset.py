"""Features of labelled clips for training and evaluation, extracted in parallel and cached.

The cache is keyed by the file's content (sha256) and the feature settings, so a second
`train` on the same data skips extraction, and a renamed or moved file is still found.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import load_audio
from .constants import HOP_LENGTH, N_FFT, N_MFCC, SAMPLE_RATE, WIN_LENGTH
from .corpora import Clip
from .errors import AudioError
from .features import mel_filterbank, mfcc_from_log_mel, power_spectrogram, power_to_db, remove_dc, summary_vector
from .parallel import per_clip
from .threads import one_blas_thread

CNN_MELS = 64
#: Changing anything here changes the cache key, so stale features are never reused.
FEATURE_SETTINGS = dict(
    sr=SAMPLE_RATE,
    n_fft=N_FFT,
    win=WIN_LENGTH,
    hop=HOP_LENGTH,
    cnn_mels=CNN_MELS,
    paper_mels=128,
    n_mfcc=N_MFCC,
    summary="v2",
    dc="removed",
)


def default_cache_dir() -> Path:
    base = os.environ.get("SERCLI_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "sercli"
    )
    return Path(base) / "features"


ALL_FEATURES = ("logmel", "paper_mel", "paper_mfcc", "summary")


def clip_features(y: np.ndarray, needs: tuple[str, ...] = ALL_FEATURES) -> dict[str, np.ndarray]:
    """The features models need, from one power spectrogram of the DC-free signal.

    The one feature path for training, evaluation and classify. Returns (as asked for)
    logmel (CNN_MELS, T), paper_mel (128,), paper_mfcc (20,), summary (SUMMARY_DIM,); float32;
    and for a key "encoder:FILE:LAYERS[:PRECISION]" the mean and std over time of those Whisper blocks'
    hidden states, (2 * len(layers) * n_state,) (sercli.models.head.pooled_stats).
    """
    y = remove_dc(y)
    out: dict[str, np.ndarray] = {}
    for key in needs:  # Whisper encoder outputs (sercli.models.head.encoded_key)
        if key.startswith("encoder:"):
            from .encoded import encode_signal
            from .models import parse_encoded_key, pooled_stats, weights_dir

            fname, layers, precision = parse_encoded_key(key)
            out[key] = pooled_stats(encode_signal(y, str(weights_dir() / fname), layers, precision=precision))
    if "whisper_mel" in needs:  # the encoder runs in the main process (--device)
        from .features import whisper_log_mel

        out["whisper_mel"] = whisper_log_mel(remove_dc(y))  # as encode_signal does
    if not any(k in needs for k in ALL_FEATURES):
        return out
    P = power_spectrogram(y)
    if "logmel" in needs:
        out["logmel"] = power_to_db(mel_filterbank(n_mels=CNN_MELS) @ P)
    if "paper_mel" in needs or "paper_mfcc" in needs:
        mel128 = power_to_db(mel_filterbank(n_mels=128) @ P)
        out["paper_mel"] = mel128.mean(axis=1)
        out["paper_mfcc"] = mfcc_from_log_mel(mel128).mean(axis=1)
    if "summary" in needs:
        out["summary"] = summary_vector(y, P)
    return out


def _key(path: str) -> str:
    h = hashlib.sha256(repr(sorted(FEATURE_SETTINGS.items())).encode())
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _one(path: str, cache_dir: str | None) -> dict[str, np.ndarray] | str:
    try:
        target = None
        if cache_dir:
            key = _key(path)
            target = Path(cache_dir) / key[:2] / f"{key}.npz"
            if target.exists():
                with np.load(target, allow_pickle=False) as z:
                    return {k: z[k] for k in z.files}
        with one_blas_thread():  # the same features with any --jobs and core count
            y, _ = load_audio(path)
            feats = clip_features(y)
        feats["logmel"] = feats["logmel"].astype(np.float16)  # halves the cache; error < 1e-3 dB
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(f".{os.getpid()}.tmp.npz")
            np.savez(tmp, **feats)
            os.replace(tmp, target)
        return feats
    except (AudioError, OSError, ValueError) as exc:
        return f"{path}: {exc}" if not str(exc).startswith(path) else str(exc)


@dataclass
class FeatureSet:
    clips: list[Clip]
    logmel: list[np.ndarray]
    paper_mel: np.ndarray
    paper_mfcc: np.ndarray
    summary: np.ndarray
    failed: list[str]


def extract_dataset(
    clips: list[Clip], *, jobs: int = -1, cache_dir: str | os.PathLike | None = None, progress: bool = True
) -> FeatureSet:
    """Features of every clip in parallel (joblib), in order; failures are listed, not raised."""
    from joblib import delayed

    cache = str(cache_dir if cache_dir is not None else default_cache_dir())
    kept, feats, failed = per_clip(
        (delayed(_one)(c.path, cache) for c in clips),
        clips,
        jobs=jobs,
        batch_size=16,
        desc="features",
        progress=progress,
    )
    if not feats:
        return FeatureSet(
            kept,
            [],
            np.zeros((0, 128), np.float32),
            np.zeros((0, N_MFCC), np.float32),
            np.zeros((0, 0), np.float32),
            failed,
        )
    return FeatureSet(
        kept,
        [f["logmel"] for f in feats],
        np.stack([f["paper_mel"] for f in feats]),
        np.stack([f["paper_mfcc"] for f in feats]),
        np.stack([f["summary"] for f in feats]),
        failed,
    )
