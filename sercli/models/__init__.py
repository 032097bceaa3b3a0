"""Models: the bundled registry, safe loading, and one class per model kind behind one
interface (base.Model: labels, needs, predict_proba, predict_proba_grouped ...).

    registry.py   bundled names -> file + pinned sha256, encoders, weights_dir()
    files.py      reading files safely: sha256, size bounds, no pickle, weights_only
    loading.py    load_model, load_file: where a file's kind picks its class
    base.py       the Model interface
    cnn.py, seed.py, head.py, svm.py, ensemble.py    one module per model kind
    nets.py       the torch networks (imported only when a torch model is used)
    catalog.py    the bundled models as their cards describe them (`sercli models`)

Importing this package needs numpy, never torch.
"""

from .base import Model, model_class
from .catalog import bundled, group_models
from .cnn import CNNModel, pad_batch
from .ensemble import ENSEMBLE_FORMAT, Ensemble, EnsembleModel
from .files import card_path, save_torch, sha256_file
from .head import HeadModel, WhisperHeadModel, encoded_key, parse_encoded_key, pooled_stats
from .loading import load_ensemble, load_file, load_model, needs_before_loading
from .registry import DEFAULT_MODEL, ENCODERS, FALLBACK_MODEL, REGISTRY, encoder_path, weights_dir
from .seed import SEED_KINDS, SeedCNNModel, SeedModel, SeedRNNModel
from .svm import SVM_FEATURES, NumpySVM, SVMModel, save_svm

__all__ = [
    "Model",
    "model_class",
    "bundled",
    "group_models",
    "CNNModel",
    "pad_batch",
    "ENSEMBLE_FORMAT",
    "Ensemble",
    "EnsembleModel",
    "card_path",
    "save_torch",
    "sha256_file",
    "HeadModel",
    "WhisperHeadModel",
    "encoded_key",
    "parse_encoded_key",
    "pooled_stats",
    "load_ensemble",
    "load_file",
    "load_model",
    "needs_before_loading",
    "DEFAULT_MODEL",
    "ENCODERS",
    "FALLBACK_MODEL",
    "REGISTRY",
    "encoder_path",
    "weights_dir",
    "SEED_KINDS",
    "SeedCNNModel",
    "SeedModel",
    "SeedRNNModel",
    "SVM_FEATURES",
    "NumpySVM",
    "SVMModel",
    "save_svm",
]
