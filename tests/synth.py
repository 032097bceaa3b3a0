"""Synthetic speech-like signals, for tests and benchmarks that must not ship corpus audio."""

from __future__ import annotations

import numpy as np


def speechlike(
    rng: np.random.Generator,
    seconds: float = 1.5,
    sr: int = 16000,
    f0: float = 150.0,
    level: float = 0.3,
    *,
    n: int | None = None,
) -> np.ndarray:
    """A voiced, syllable-modulated harmonic signal with a little noise.

    Returns shape (n,) float32 with n = int(seconds * sr) unless `n` is given; peak = level.
    """
    n = int(seconds * sr) if n is None else n
    t = np.arange(n) / sr
    contour = f0 * (1 + 0.1 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6)))
    phase = 2 * np.pi * np.cumsum(contour) / sr
    y = sum(np.sin(k * phase) / k for k in range(1, 8))
    env = 0.5 * (1 + np.sin(2 * np.pi * 4 * t + rng.uniform(0, 6))) ** 2
    y = y * env + 0.02 * rng.standard_normal(n)
    return (level * y / (np.abs(y).max() + 1e-9)).astype(np.float32)
