"""The bundled models and encoders: names, files and pinned sha256.

Each bundled file is checked against the sha256 pinned here before it is read (as demucs
stamps its weights). The files are the package data `sercli.weights` (the repository's
weights/ folder, mapped there by pyproject.toml).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ..errors import ModelError
from .files import sha256_file

#: name -> (file in weights/, pinned sha256). Updated only by retraining the bundled weights.
REGISTRY: dict[str, tuple[str, str]] = {
    # the default: frozen Whisper tiny.en encoder + MLP head over pooled block statistics
    "whisper-tiny": ("whisper-tiny.pt", "e782b535b6e5ea21289c930cbf367f5fdb21ba1e50de8776493e3d56651a854c"),
    # ... trained on vectors z-scored per speaker, for --normalize-by speaker|folder
    "whisper-tiny-spk": ("whisper-tiny-spk.pt", "a4bfc23f35799d78cf4f68b796259df5e265573d6848ea9f9478aec2a360a7c2"),
    # the same on the larger Whisper base encoder: about 1.7 times the time; lower val UAR than
    # whisper-tiny; the -spk one higher test UAR (README)
    "whisper-base": ("whisper-base.pt", "1f2fdfdf912f23e53729f1dee8f485be86743393dedd58606e72455d46d23683"),
    "whisper-base-spk": ("whisper-base-spk.pt", "fafb62dbe218e5872a4e245e8bda4797bdfe5add72147768be605d5b67f32275"),
    # the fast model: 2-D CNN on log-mel, no pretrained encoder
    "cnn": ("cnn.pt", "9234e15c69dbc0f3072a391f67a2f6f24f7288ad82c99a82f948a6586d785372"),
    # for --normalize-by speaker|folder on batches of about 20 or more clips per speaker (README)
    "cnn-spk": ("cnn-spk.pt", "3114d4488b3713fdf6d8f5c729b7d7602c5f6b2ba1205fb71c850c9a5a9731df"),
    # cnn (each clip alone), cnn-spk2, cnn-spk3 and svm-spk averaged (train/ensemble.py); the file
    # pins their hashes
    "cnn-spk-ens": ("cnn-spk-ens.json", "e367413031271f255f140f12c3b51e7a82a443248edc943aeb738d179cd0f1ba"),
    "seed-cnn": ("seed-cnn.pt", "cc22e21e7184d4ab15cfaf679eda740fdf5af966b797456f666865a560bae10e"),
    "svm": ("svm.npz", "fe3dd4a06b996880d07d13aa06081a72fc36bb20744d6d6338c3b043ed04354b"),
}
#: Whisper encoders the heads run on: name -> (file in weights/, pinned sha256, blocks in the
#: file). Written by train/whisper_weights.py from OpenAI's MIT-licensed weights.
ENCODERS: dict[str, tuple[str, str, int]] = {
    "whisper-tiny.en": (
        "whisper-tiny.en-encoder.pt",
        "26f15445c3d9e63cdc01bbf591e7b9e8f6923a0909a1f7e991b8f84191319293",
        4,
    ),
    "whisper-base": ("whisper-base-encoder.pt", "c7290a3eca4cd011c0b673aa68d430e58bfefe7464cd14e13fb6ca0f583b43f6", 6),
}
DEFAULT_MODEL = "whisper-tiny"
FALLBACK_MODEL = "svm"


def weights_dir() -> Path:
    """Folder of the bundled weights: the package data `sercli.weights` (in a checkout
    installed with `pip install -e`, the repository's weights/ folder)."""
    return Path(resources.files("sercli.weights"))


def encoder_path(name: str, expected_sha256: str | None = None) -> Path:
    """The bundled encoder file of `name`, checked against its pinned sha256 (and the one the
    head was trained on, if given)."""
    if name not in ENCODERS:
        raise ModelError(f"unknown encoder {name!r} (bundled: {', '.join(ENCODERS)})")
    fname, pinned, _ = ENCODERS[name]
    path = weights_dir() / fname
    if not path.is_file():
        raise ModelError(f"{path}: encoder weights file not found (reinstall sercli)")
    if expected_sha256 is not None and expected_sha256 != pinned:
        raise ModelError(
            f"the model was trained on another {name} encoder (sha256 {expected_sha256[:12]}…, bundled {pinned[:12]}…)"
        )
    digest = _verified.get(str(path)) or sha256_file(path)
    if digest != pinned:
        raise ModelError(
            f"{path}: sha256 {digest[:12]}… does not match the pinned {pinned[:12]}… "
            "(corrupted or replaced encoder file)"
        )
    _verified[str(path)] = digest
    return path


#: encoder files whose sha256 was checked in this process (hashing 40 MB takes a while)
_verified: dict[str, str] = {}
