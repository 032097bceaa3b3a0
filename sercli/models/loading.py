"""Loading a model: a bundled one by name (hash-checked) or a model file by path.

This is where files on disk are read, and so the one place where the kind a file names picks
the class of the model (base.model_class). The SVM path needs only numpy, so it still works
when torch cannot be imported.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ModelError
from .base import Model, model_class
from .cnn import CNNModel
from .ensemble import EnsembleModel, read_spec
from .files import (
    MAX_TORCH_BYTES,
    Invalid,
    card_path,
    check_labels,
    check_zip,
    is_pickle,
    read_card,
    read_json,
    read_torch,
    sha256_file,
)
from .head import WhisperHeadModel
from .registry import DEFAULT_MODEL, REGISTRY, weights_dir
from .seed import SeedCNNModel, SeedRNNModel
from .svm import SVMModel

#: the model kinds whose files are torch state dicts (.pt); the others are .npz and .json files
TORCH_KINDS = tuple(k for c in (CNNModel, WhisperHeadModel, SeedCNNModel, SeedRNNModel) for k in c.KINDS)


def load_file(path: str | os.PathLike, *, name: str | None = None, sha256: str | None = None) -> Model:
    """Load a model file (.pt state dict, .npz SVM or .json ensemble) without running code from it."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    digest = sha256_file(path)
    if sha256 is not None and digest != sha256:
        raise ModelError(
            f"{path}: sha256 {digest[:12]}… does not match the pinned "
            f"{sha256[:12]}… (corrupted or replaced weights file)"
        )
    if is_pickle(path):
        raise ModelError(
            f"{path}: refusing a pickle file (it could run code); use a torch state_dict (.pt) or an .npz model"
        )
    if path.suffix.lower() == ".json":
        return load_ensemble(path, digest, name)
    card = read_card(path)
    if path.suffix.lower() == ".npz":
        return SVMModel.from_file(path, digest, name, card)
    try:
        import torch  # noqa: F401 (only to tell a missing torch apart from a bad file)
    except ImportError as exc:
        raise ModelError(f"{path}: torch is not installed, cannot load a torch model") from exc
    check_zip(path, MAX_TORCH_BYTES)
    try:
        blob = read_torch(path)
        kind = blob["config"].get("kind")
        if kind not in TORCH_KINDS:
            raise Invalid(f"config kind {kind!r} is not a torch model kind ({', '.join(TORCH_KINDS)})")
        labels = check_labels(blob["config"])
        return model_class(kind).from_torch(path, digest, name or path.stem, card, blob, labels)
    except ModelError:
        raise
    except Exception as exc:
        reason = str(exc) if isinstance(exc, Invalid) else f"{type(exc).__name__}: {exc}"
        raise ModelError(f"{path}: not a valid sercli model file ({' '.join(reason.split())[:200]})") from exc


def load_ensemble(path: Path, digest: str, name: str | None) -> Model:
    """An ensemble file: JSON naming member model files (relative to it), each with its pinned
    sha256 and weight. Members are loaded as any model file (load_file), hash-checked."""
    return EnsembleModel.from_file(path, digest, name, load_member=load_file)


def load_model(name_or_path: str | os.PathLike = DEFAULT_MODEL) -> Model:
    """A bundled model by name (hash-checked) or a model file by path."""
    key = str(name_or_path)
    if key in REGISTRY:
        fname, pinned = REGISTRY[key]
        return load_file(weights_dir() / fname, name=key, sha256=pinned)
    p = Path(key)
    if p.suffix or p.exists():
        return load_file(p)
    raise ModelError(f"{key}: unknown model (choose {', '.join(REGISTRY)} or a model file path)")


def needs_before_loading(name_or_path) -> tuple[str, ...] | None:
    """The features a bundled model needs, as its card says, without loading it (no torch), so
    that classify can start extracting them while the model loads; None for a model file (its
    needs are known once it is loaded) or a bundled model whose card does not tell them. (Should
    the default model fall back to the SVM, classify extracts the SVM's features then.)"""
    key = str(name_or_path)
    if key not in REGISTRY:
        return None
    return _card_needs(weights_dir() / REGISTRY[key][0])


def _card_needs(path: Path) -> tuple[str, ...] | None:
    try:
        if path.suffix.lower() == ".json":  # an ensemble, its own card: its members' needs
            members = [_card_needs(f) for f in read_spec(path).files]
            if any(n is None for n in members):
                return None
            return tuple(dict.fromkeys(k for n in members for k in n))
        card = read_json(card_path(path))
        cls = model_class(card.get("kind"))
        return cls.needs_from_card(card) if cls is not None else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ModelError):
        return None
