"""Reading model files safely: hashes, size bounds, no pickle, plain values only.

Weights files hold tensors and plain values only: torch files are read with
`weights_only=True`, SVM files are .npz read with `allow_pickle=False`, ensembles are JSON
naming member files with their sha256. What a file may cost to read is bounded before anything
is decompressed. Numpy only at import: torch is imported where a torch file is read or written.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ..errors import ModelError

#: Bounds on what loading a model may cost, checked before anything is decompressed: an
#: ensemble's members, the bytes a JSON file (ensemble, card) may hold, and for a zip-based
#: weights file (.npz, .pt) its entries and their decompressed bytes (a 5 MB .npz can hold a
#: 1 GiB deflate bomb). The bundled files are far below: 4 members, 16 kB of card, 8 MB of SVM
#: arrays, 200 tensors.
MAX_ENSEMBLE_MEMBERS = 16
MAX_JSON_BYTES = 4 << 20
MAX_ZIP_ENTRIES = 4096
MAX_NPZ_BYTES = 256 << 20
MAX_TORCH_BYTES = 2 << 30


class Invalid(ValueError):
    """What is wrong with a model file, in words (the message is shown as is)."""


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def card_path(weights: str | os.PathLike) -> Path:
    """The card (JSON) that training wrote beside a weights file: NAME.card.json."""
    p = Path(weights)
    return p.with_name(p.stem + ".card.json")


def read_json(path: Path):
    """A JSON file's value; ValueError when it is too large, not JSON or nested too deeply."""
    if path.stat().st_size > MAX_JSON_BYTES:
        raise ValueError(f"larger than {MAX_JSON_BYTES >> 20} MiB")
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except RecursionError:
        raise ValueError("nested too deeply") from None


def read_card(weights: Path) -> dict:
    """The card beside a weights file, or {} (a card that cannot be read is no card: it runs
    nothing)."""
    if not card_path(weights).is_file():
        return {}
    try:
        card = read_json(card_path(weights))
    except (OSError, ValueError):
        return {}
    return card if isinstance(card, dict) else {}


def is_pickle(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(2)
    return len(head) == 2 and head[0] == 0x80 and head[1] <= 5


def check_zip(path: Path, max_bytes: int, npy: bool = False) -> None:
    """Refuse a zip (.npz, .pt) whose entries or decompressed size exceed the bounds, before
    any entry is decompressed (zipfile reads no more than an entry's stated size). With `npy`,
    each .npy entry's header must not declare more bytes than the entry holds (numpy allocates
    what the header says). A file that is not a zip is left to its loader."""
    import zipfile

    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError):
        return
    with z:
        infos = z.infolist()
        if len(infos) > MAX_ZIP_ENTRIES:
            raise ModelError(f"{path}: too many entries ({len(infos)}, at most {MAX_ZIP_ENTRIES})")
        total = sum(i.file_size for i in infos)
        if total > max_bytes:
            raise ModelError(
                f"{path}: too large once decompressed ({total / 2**20:.0f} MiB, at most {max_bytes >> 20} MiB)"
            )
        if not npy:
            return
        from numpy.lib import format as npformat

        for i in infos:
            try:
                with z.open(i) as f:
                    version = npformat.read_magic(f)
                    read = npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
                    shape, _, dtype = read(f)
                need = int(np.prod(shape, dtype=object)) * dtype.itemsize
            except Exception as exc:
                raise ModelError(
                    f"{path}: entry {i.filename} is not a valid array ({' '.join(str(exc).split())[:120]})"
                ) from None
            if need > i.file_size:
                raise ModelError(f"{path}: entry {i.filename} declares {need} bytes but holds {i.file_size}")


def check_labels(cfg: dict) -> tuple[str, ...]:
    labels = cfg.get("labels")
    if (
        not isinstance(labels, list)
        or len(labels) < 2
        or not all(isinstance(x, str) and x for x in labels)
        or len(set(labels)) != len(labels)
    ):
        raise Invalid("labels must be a list of two or more distinct names")
    return tuple(labels)


def check_number(cfg: dict, key: str, *, default=None, low: float = 0.0, strict: bool = False) -> None:
    v = cfg.get(key, default)
    if v is None and default is None and key not in cfg:
        raise Invalid(f"{key} is missing")
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v < low or (strict and v == low):
        raise Invalid(f"{key} must be a number {'>' if strict else '>='} {low:g}, got {v!r}"[:120])


def read_torch(path: Path) -> dict:
    """A torch weights file's dict of config, dims and state_dict, read with weights_only (no
    code runs); Invalid when it is not such a dict. Torch is imported here."""
    import torch

    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict):
        raise Invalid("not a dict of config, dims and state_dict")
    cfg, dims = blob["config"], blob["dims"]
    if not isinstance(cfg, dict) or not isinstance(dims, dict):
        raise Invalid("its config and dims must be dicts")
    return blob


def save_torch(path: str | os.PathLike, net, config: dict) -> None:
    """Save a state_dict with its dims and config as plain values (loadable with weights_only)."""
    import dataclasses

    import torch

    torch.save({"config": config, "dims": dataclasses.asdict(net.dims), "state_dict": net.state_dict()}, path)


def load_state(net, blob: dict, labels: tuple[str, ...]):
    """`net` holding the file's state_dict, checked to have one output per label."""
    net.load_state_dict(blob["state_dict"])
    if net.dims.n_labels != len(labels):
        raise Invalid(f"{len(labels)} labels for {net.dims.n_labels} outputs")
    return net
