"""Group normalisation: z-scoring the feature vectors of each group of clips (one speaker, one
folder) with that group's own mean and standard deviation, before the model sees them.

It removes what is constant within a group (a speaker's voice, a microphone, a room) and keeps
what varies within it (the emotion), which is why it helps most on speakers and corpora the
model never saw. It assumes a group holds a mix of emotions: a group of clips that all share
one emotion is normalised to look average.

A group's statistics are shrunk toward prior statistics (the training set's, stored in the
model) as if the group held `prior_n` more clips with those statistics:

    mean = (n * group_mean + k * prior_mean) / (n + k)
    var  = (n * group_var  + k * prior_std**2) / (n + k)

so a group of a few clips leans on the prior, a group of hundreds is its own, a one-clip
group (whose own variance is 0) still gets a finite, sensible scale, and no feature that is
constant within a group divides by zero (the floor MIN_STD only guards a constant prior).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

#: k: pseudo-clips of the prior statistics mixed into every group's estimate.
GROUP_PRIOR = 1.0
#: the smallest standard deviation divided by.
MIN_STD = 1e-6
#: groups with fewer clips get a warning: their normalisation leans mostly on the prior
#: (see train/results/normalize.md for UAR by group size).
MIN_GROUP_CLIPS = 10
#: what --normalize-by accepts.
NORMALIZE_BY = ("none", "folder", "speaker")


def group_ids(groups: Sequence[Hashable]) -> tuple[np.ndarray, int]:
    """Integer ids (first-seen order) for group keys, and the number of groups."""
    ids: dict = {}
    out = np.fromiter((ids.setdefault(g, len(ids)) for g in groups), dtype=np.int64, count=len(groups))
    return out, len(ids)


def _rows_by_group(groups: Sequence[Hashable]) -> list[np.ndarray]:
    """Row indices of each group, groups in first-seen order."""
    gid, n = group_ids(groups)
    order = np.argsort(gid, kind="stable")
    return np.split(order, np.cumsum(np.bincount(gid, minlength=n))[:-1])


def prior_stats(X: np.ndarray, groups: Sequence[Hashable]) -> tuple[np.ndarray, np.ndarray]:
    """Prior statistics from training data: the mean of the groups' means and the pooled
    within-group standard deviation (root mean of the groups' variances); each group counts
    once, whatever its number of clips."""
    X = np.asarray(X, np.float64)
    rows = _rows_by_group(groups)
    means = np.stack([X[r].mean(0) for r in rows])
    var = np.stack([X[r].var(0) for r in rows])
    return means.mean(0), np.maximum(np.sqrt(var.mean(0)), MIN_STD)


def group_stats(
    X: np.ndarray,
    groups: Sequence[Hashable] | None,
    prior_mean: np.ndarray,
    prior_std: np.ndarray,
    prior_n: float = GROUP_PRIOR,
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's group mean and standard deviation, shrunk toward the prior (module doc).

    `groups`: one key per row of X (n, D); None makes every row a group of its own
    (single-clip use). Returns float64 (n, D) means and (n, D) standard deviations.
    """
    X = np.asarray(X, np.float64)
    mu0 = np.asarray(prior_mean, np.float64)
    var0 = np.square(np.asarray(prior_std, np.float64))
    k = float(prior_n)
    if groups is None:  # n = 1 for every row: own variance 0
        w = 1.0 / (1.0 + k)
        std = np.maximum(np.sqrt((1 - w) * var0), MIN_STD)
        return w * X + (1 - w) * mu0, np.broadcast_to(std, X.shape).copy()
    if len(groups) != len(X):
        raise ValueError(f"{len(groups)} group keys for {len(X)} rows")
    mean, std = np.empty_like(X), np.empty_like(X)
    for rows in _rows_by_group(groups):
        xg = X[rows]
        n = len(rows)
        w = n / (n + k) if n + k > 0 else 1.0
        mean[rows] = w * xg.mean(0) + (1 - w) * mu0
        std[rows] = np.maximum(np.sqrt(w * xg.var(0) + (1 - w) * var0), MIN_STD)
    return mean, std


def normalize_groups(
    X: np.ndarray,
    groups: Sequence[Hashable] | None,
    prior_mean: np.ndarray,
    prior_std: np.ndarray,
    prior_n: float = GROUP_PRIOR,
) -> np.ndarray:
    """Z-score each group of rows of X (n, D) with its shrunk statistics (see the module doc).

    `groups`: one key per row; None makes every row a group of its own (single-clip use).
    Returns float64 (n, D).
    """
    mean, std = group_stats(X, groups, prior_mean, prior_std, prior_n)
    return (np.asarray(X, np.float64) - mean) / std


def cnn_group_vectors(logmels: Sequence[np.ndarray], summaries: np.ndarray | None) -> np.ndarray:
    """What a CNN's group statistics are taken over: per clip, its log-mel band means
    (n_mels,) followed, when the CNN fuses them, by its summary vector. Returns float64 (n, D)."""
    V = np.stack([np.asarray(m, np.float32).mean(axis=1) for m in logmels]).astype(np.float64)
    if summaries is not None:
        V = np.concatenate([V, np.asarray(summaries, np.float64)], axis=1)
    return V


def cnn_group_offsets(
    V: np.ndarray,
    n_mels: int,
    groups: Sequence[Hashable] | None,
    prior_mean: np.ndarray,
    prior_std: np.ndarray,
    prior_n: float = GROUP_PRIOR,
):
    """Per-group normalisation of a CNN's inputs, from its clips' vectors V (cnn_group_vectors).

    A group's shrunk statistics of V (group_stats) give
    - a per-band offset, the group's mean spectrum minus the prior's, subtracted from every
      frame of the clip's log-mel (n_mels, T): the speaker's or channel's colouring goes, the
      frame-to-frame and clip-to-clip variation stays;
    - z-scores of the summary vectors (V's columns after n_mels, if any), as for the SVM.
    Returns (mel offsets (n, n_mels) float32, summary z-scores (n, S) float32 or None).
    """
    mean, std = group_stats(V, groups, prior_mean, prior_std, prior_n)
    M = n_mels
    offsets = (mean[:, :M] - np.asarray(prior_mean, np.float64)[:M]).astype(np.float32)
    z = None if V.shape[1] == M else ((V[:, M:] - mean[:, M:]) / std[:, M:]).astype(np.float32)
    return offsets, z


def cnn_group_inputs(
    logmels: Sequence[np.ndarray],
    summaries: np.ndarray | None,
    groups: Sequence[Hashable] | None,
    prior_mean: np.ndarray,
    prior_std: np.ndarray,
    prior_n: float = GROUP_PRIOR,
):
    """cnn_group_offsets of the clips' log-mels (n_mels, T) and summary vectors (or None)."""
    return cnn_group_offsets(
        cnn_group_vectors(logmels, summaries), len(logmels[0]), groups, prior_mean, prior_std, prior_n
    )
