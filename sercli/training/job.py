"""What a trainer gets (a Job: the run's settings) and gives back (Fitted), and the feature step
that the SVM and the torch nets share."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..corpora import Clip
from ..dataset import FeatureSet, extract_dataset
from ..errors import CorpusError
from .recipe import Recipe
from .splits import subset


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Job:
    """One training run's settings besides the recipe."""

    data: str | os.PathLike  # the corpora folder or manifest (for messages)
    seed: int
    epochs: int
    threads: int | None = None  # torch threads; results are deterministic per seed and count
    jobs: int = -1  # feature workers
    cache_dir: str | None = None
    progress: bool = True
    t_start: float = field(default_factory=time.time)


@dataclass
class Fitted:
    """A trained model and what the model card needs of its training."""

    model: Any  # the trained object (NumpySVM, a net, HeadModel)
    save: Callable[[Path, dict], None]  # writes the weights file with the given config
    parts: dict[str, list[Clip]]  # the clips of each split that were used
    probas: dict[str, np.ndarray]  # "val" / "test" -> (n_clips, n_labels) probabilities
    features: dict  # the card's feature settings
    failed: list[str]  # files that could not be decoded or encoded
    t_feat: float  # seconds to the end of the feature step
    history: list[dict] = field(default_factory=list)
    group_normalised: bool = False  # inputs z-scored per speaker (val / test too)
    calibrated: bool = False  # the card reports calibration (temperature on val)
    config: dict = field(default_factory=dict)  # extra entries of the weights file's config
    card: dict = field(default_factory=dict)  # extra entries of the model card


class Trainer(Protocol):
    """How one model kind is trained: the weights file's suffix, and fit."""

    suffix: str

    def fit(self, recipe: Recipe, splits: dict[str, list[Clip]], job: Job) -> Fitted: ...


def summary_features(
    splits: dict[str, list[Clip]], labels: list[str], job: Job
) -> tuple[dict[str, FeatureSet], list[str], float]:
    """The log-mel, paper and summary features of every split's clips (cached): split -> FeatureSet,
    the files that failed, and the seconds since the run began. A CorpusError when a label has
    no decodable training clip left."""
    order = splits["train"] + splits["val"] + splits["test"]
    fs = extract_dataset(order, jobs=job.jobs, cache_dir=job.cache_dir, progress=job.progress)
    for f in fs.failed:
        log(f"skipped: {f}")
    pos = {c.path: i for i, c in enumerate(fs.clips)}
    split_fs = {k: subset(fs, [pos[c.path] for c in v if c.path in pos]) for k, v in splits.items()}
    decoded = {c.label for c in split_fs["train"].clips}
    if decoded != set(labels):  # files failed: a label (or all) has nothing left to learn from
        lost = [lab for lab in labels if lab not in decoded]
        raise CorpusError(
            f"{job.data}: no training clip of {', '.join(lost)} could be decoded "
            f"({len(fs.failed)} files failed, listed above as skipped)"
        )
    return split_fs, fs.failed, time.time() - job.t_start
