"""What every model is to the rest of sercli: its labels, the features it needs, and class
probabilities for a batch of feature dicts (see dataset.clip_features), per clip or with the
inputs normalised per group (--normalize-by).

One subclass per model kind (cnn.py, seed.py, head.py, svm.py, ensemble.py). A class names
the kinds it serves in KINDS; that kind string is what a file on disk says of itself (a .pt
file's config, an SVM's config, a card), and `model_class` maps it to the class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..errors import ModelError

#: kind (as files name it) -> the class serving it; filled as the classes are defined
_CLASSES: dict[str, type[Model]] = {}


def model_class(kind) -> type[Model] | None:
    """The class of model `kind` (a string read from a file), or None for an unknown kind."""
    return _CLASSES.get(kind) if isinstance(kind, str) else None


@dataclass
class Model:
    """A loaded model: what it predicts and which features it needs.

    `impl` is what computes the scores (a torch network, a NumpySVM, a HeadModel, an
    Ensemble). `Model(name, kind, ...)` builds the class of that kind, as training does with
    its recipe's kind; each subclass is built directly as well."""

    name: str
    kind: str  # "whisper-head" | "cnn" | "seed-cnn" | "seed-rnn" | "svm" | "ensemble"
    labels: tuple[str, ...]
    path: str
    sha256: str
    card: dict = field(default_factory=dict)
    impl: Any = None

    #: the kinds this class serves
    KINDS: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for kind in cls.__dict__.get("KINDS", ()):
            _CLASSES[kind] = cls

    def __new__(cls, *args, **kwargs):
        if cls is Model:
            kind = kwargs["kind"] if "kind" in kwargs else args[1] if len(args) > 1 else None
            cls = model_class(kind)
            if cls is None:
                raise ModelError(f"unknown model kind {kind!r} (known: {', '.join(_CLASSES)})")
        return super().__new__(cls)

    def __post_init__(self) -> None:
        if self.kind not in type(self).KINDS:
            raise ModelError(
                f"{type(self).__name__} serves model kind {' or '.join(type(self).KINDS)}, not {self.kind!r}"
            )

    @classmethod
    def needs_from_card(cls, card: dict) -> tuple[str, ...] | None:
        """The features a model of this kind needs, as its card (the JSON training wrote beside
        the weights) tells them without the weights being loaded; None when it does not."""
        return None

    @classmethod
    def group_from_card(cls, card: dict) -> bool:
        """Whether a model of this kind with this card takes --normalize-by (as `sercli models`
        lists it): one trained on group-normalised inputs."""
        recipe = card.get("recipe") if isinstance(card.get("recipe"), dict) else {}
        return recipe.get("normalize") == "group" or card.get("normalize") == "group"

    @property
    def needs(self) -> tuple[str, ...]:
        """The feature keys of dataset.clip_features this model reads."""
        raise NotImplementedError

    @property
    def group_trained(self) -> bool:
        """Trained on group-normalised inputs (recipe normalize = "group")."""
        return False

    @property
    def supports_group_norm(self) -> bool:
        """Whether group normalisation (--normalize-by) applies: SVMs, whose input is one small
        vector per clip, and models trained on group-normalised inputs; an ensemble when all
        its members do, leaving out those it runs per clip, and at least one is left."""
        return self.group_trained

    @property
    def encoder(self) -> str | None:
        """The pretrained encoder the model runs on (an ensemble: its members'), or None."""
        return None

    def use_device(self, device: str) -> None:
        """Run the pretrained encoder of this model (or of its members) on `device` in this
        process; models without one run as before."""

    def predict_proba(self, feats: list[dict[str, np.ndarray]]) -> np.ndarray:
        """Class probabilities (B, n_labels) for a batch of feature dicts (see dataset.clip_features)."""
        if not feats:
            return np.zeros((0, len(self.labels)), np.float32)
        return self._predict(feats)

    def predict_proba_grouped(self, feats: list[dict[str, np.ndarray]], groups: list) -> np.ndarray:
        """Class probabilities (B, n_labels) with the inputs normalised per group (one key per
        feature dict; see sercli.normalize). Only for models with supports_group_norm."""
        if not self.supports_group_norm:
            raise ModelError(
                f"model {self.name} ({self.kind}) does not support group normalisation "
                '(SVMs and CNNs trained with normalize = "group" do)'
            )
        if not feats:
            return np.zeros((0, len(self.labels)), np.float32)
        return self._predict_grouped(feats, groups)

    def _predict(self, feats: list[dict[str, np.ndarray]]) -> np.ndarray:
        """predict_proba of a non-empty batch."""
        raise NotImplementedError

    def _predict_grouped(self, feats: list[dict[str, np.ndarray]], groups: list) -> np.ndarray:
        """predict_proba_grouped of a non-empty batch, for a model that supports it."""
        raise NotImplementedError
