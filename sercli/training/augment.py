"""Feature-domain augmentation of log-mel training clips (F mel bands, T frames of 10 ms, in dB)
and mixup of batches. What is applied, and how strongly, is the recipe's Augmentation keys."""

from __future__ import annotations

import numpy as np

from ..constants import HOP_LENGTH, SAMPLE_RATE
from ..features import power_to_db
from .recipe import Augmentation


def augment_logmel(m: np.ndarray, rng: np.random.Generator, aug: Augmentation) -> np.ndarray:
    """Speed and pitch perturbation, room and noise, then SpecAugment masks; (F, T) -> (F, T')."""
    m = m.astype(np.float32)
    F_, T = m.shape
    speed = aug.speed_perturb
    if speed and T > 4:
        r = rng.uniform(1 - speed, 1 + speed)
        newT = max(2, int(round(T / r)))
        pos = np.linspace(0, T - 1, newT)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, T - 1)
        w = (pos - lo)[None, :]
        m = m[:, lo] * (1 - w) + m[:, hi] * w
        T = newT
    shift = aug.pitch_shift_bins
    if shift:
        k = int(rng.integers(-shift, shift + 1))
        if k > 0:
            m = np.concatenate([np.repeat(m[:1], k, 0), m[:-k]], 0)
        elif k < 0:
            m = np.concatenate([m[-k:], np.repeat(m[-1:], -k, 0)], 0)
    m = room_and_noise(m, rng, aug)
    if aug.specaugment:
        fill = float(m.mean())
        for _ in range(2):
            w = int(rng.integers(0, 9))
            f0 = int(rng.integers(0, max(1, F_ - w)))
            m[f0 : f0 + w] = fill
            w = int(rng.integers(0, min(25, max(1, T // 8)) + 1))
            t0 = int(rng.integers(0, max(1, T - w)))
            m[:, t0 : t0 + w] = fill
    return m


def room_and_noise(m: np.ndarray, rng: np.random.Generator, aug: Augmentation) -> np.ndarray:
    """Feature-domain reverberation and additive noise on a log-mel in dB (F, T), 10 ms frames.
    Reverberation (reverb_rt60_s = [low, high], with probability reverb_prob): each band's power
    plus an exponentially decaying tail of itself, 60 dB down after RT60, 0 to 10 dB below the
    direct sound. Noise (noise_snr_db = [low, high], with probability noise_prob): power added at
    that SNR to the clip's mean power, its spectrum tilted by up to +-5 dB across the bands and
    fluctuating per frame. Both add in power, as sound does; (F, T) -> (F, T)."""
    reverb, noise = aug.reverb_rt60_s, aug.noise_snr_db
    do_reverb = bool(reverb) and rng.random() < aug.reverb_prob
    do_noise = bool(noise) and rng.random() < aug.noise_prob
    if not (do_reverb or do_noise):
        return m
    p = 10.0 ** (m.astype(np.float64) / 10.0)
    if do_reverb:
        from scipy.signal import lfilter

        a = 10.0 ** (-6.0 * (HOP_LENGTH / SAMPLE_RATE) / rng.uniform(*reverb))
        tail = lfilter([0.0, 1.0 - a], [1.0, -a], p, axis=1)  # decaying echo of earlier frames
        p = p + tail * 10.0 ** (-rng.uniform(0.0, 10.0) / 10.0)
    if do_noise:
        F_ = m.shape[0]
        shape = 10.0 ** (rng.uniform(-5.0, 5.0) * np.linspace(-1.0, 1.0, F_)[:, None] / 10.0)
        level = p.mean() / 10.0 ** (rng.uniform(*noise) / 10.0)
        p = p + level * shape / shape.mean() * rng.gamma(4.0, 0.25, size=m.shape)
    return power_to_db(p)


def standardise(m: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance over the whole (F, T) clip, as the net's own input step does: so
    that mixup blends two clips on one scale and zero padding is the mean of each."""
    return (m - m.mean()) / (m.std() + 1e-5)


def crop(m: np.ndarray, frames: int, rng: np.random.Generator) -> np.ndarray:
    """A random window of `frames` frames of (F, T), or the whole clip when it is shorter."""
    if m.shape[1] <= frames:
        return m
    s = int(rng.integers(0, m.shape[1] - frames + 1))
    return m[:, s : s + frames]


def mix_batch(x, lengths, summary, rng: np.random.Generator, alpha: float):
    """Mixup: blend a batch (B, F, T) with a shuffled copy of itself by lam ~ Beta(alpha, alpha).
    Returns the blended x, lengths (the longer of each pair), summary (or None), lam and the
    partner index of each row (the loss is blended with the same lam)."""
    import torch

    lam, other = float(rng.beta(alpha, alpha)), torch.from_numpy(rng.permutation(len(lengths)))
    x = lam * x + (1 - lam) * x[other]
    summary = lam * summary + (1 - lam) * summary[other] if summary is not None else None
    return x, torch.maximum(lengths, lengths[other]), summary, lam, other
