"""What a head reads, without torch: the feature keys naming a Whisper encoder's outputs and
the pooled vector computed from them (kept apart from sercli.heads, which imports torch, so
that workers and the classify process use them before torch is loaded)."""
from __future__ import annotations

import numpy as np


def encoded_key(encoder_file: str, layers) -> str:
    return f"encoder:{encoder_file}:{','.join(str(int(x)) for x in layers)}"


def parse_encoded_key(key: str) -> tuple[str, tuple[int, ...]] | None:
    if not key.startswith("encoder:"):
        return None
    _, f, layers = key.split(":")
    return f, tuple(int(x) for x in layers.split(","))


def pooled_stats(h: np.ndarray) -> np.ndarray:
    """(L, T, C) hidden states -> (2 * L * C,) float32: per block, the mean over time then the
    standard deviation over time."""
    h = np.asarray(h, np.float32)
    return np.concatenate([h.mean(axis=1), h.std(axis=1)], axis=1).ravel()
