"""Model registry and safe loading.

Weights files hold tensors and plain values only: torch files are read with
`weights_only=True`, SVM files are .npz read with `allow_pickle=False`, ensembles are JSON
naming member files with their sha256, and each bundled file is checked against the sha256
pinned below before it is read (as demucs stamps its weights).
The SVM path needs only numpy, so it still works when torch cannot be imported.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelError

#: name -> (file in weights/, pinned sha256). Updated only by retraining the bundled weights.
REGISTRY: dict[str, tuple[str, str]] = {
    # the default: frozen Whisper tiny.en encoder + MLP head over pooled block statistics
    "whisper-tiny": ("whisper-tiny.pt", "5d5ac5bc979b88543a522c36825188bcb21c0ed0f6052742388665c5fe606c06"),
    # ... trained on vectors z-scored per speaker, for --normalize-by speaker|folder
    "whisper-tiny-spk": ("whisper-tiny-spk.pt", "4f17a8a71c03f45a2a9ffe40a0ed10ceaec0960952a20066b70cadf12a4e03a8"),
    # the same on the larger Whisper base encoder: about 3x the cost; lower val UAR than
    # whisper-tiny, higher test UAR (README)
    "whisper-base": ("whisper-base.pt", "04ea69757a29fc39114f379e789c49236e4c6739b159ef2889d160f6f9ad1112"),
    "whisper-base-spk": ("whisper-base-spk.pt", "0bb84be4037f038e4a92e1967f981b30204cab9d68c97cfb67a2ef1b457eac43"),
    # the fast model: 2-D CNN on log-mel, no pretrained encoder
    "cnn": ("cnn.pt", "9234e15c69dbc0f3072a391f67a2f6f24f7288ad82c99a82f948a6586d785372"),
    # for --normalize-by speaker|folder on batches of about 20 or more clips per speaker (README)
    "cnn-spk": ("cnn-spk.pt", "3114d4488b3713fdf6d8f5c729b7d7602c5f6b2ba1205fb71c850c9a5a9731df"),
    # cnn (each clip alone), cnn-spk2, cnn-spk3 and svm-spk averaged (train/ensemble.py); the file
    # pins their hashes
    "cnn-spk-ens": ("cnn-spk-ens.json", "7aa0463addd41f332a0e3c30e8b67d8287b79b30c327eb19f3c32d3d6e40a033"),
    "seed-cnn": ("seed-cnn.pt", "cc22e21e7184d4ab15cfaf679eda740fdf5af966b797456f666865a560bae10e"),
    "svm": ("svm.npz", "fe3dd4a06b996880d07d13aa06081a72fc36bb20744d6d6338c3b043ed04354b"),
}
#: Whisper encoders the heads run on: name -> (file in weights/, pinned sha256, blocks in the
#: file). Written by train/whisper_weights.py from OpenAI's MIT-licensed weights.
ENCODERS: dict[str, tuple[str, str, int]] = {
    "whisper-tiny.en": ("whisper-tiny.en-encoder.pt",
                        "26f15445c3d9e63cdc01bbf591e7b9e8f6923a0909a1f7e991b8f84191319293", 4),
    "whisper-base": ("whisper-base-encoder.pt",
                     "c7290a3eca4cd011c0b673aa68d430e58bfefe7464cd14e13fb6ca0f583b43f6", 6),
}
DEFAULT_MODEL = "whisper-tiny"
FALLBACK_MODEL = "svm"
#: The features each bundled model needs (its Model.needs; a test keeps the two equal), known
#: before torch is imported, so that classify can start extracting them while the model loads.
#: (Should the default model fall back to the SVM, classify extracts the SVM's features then.)
BUNDLED_NEEDS: dict[str, tuple[str, ...]] = {
    "whisper-tiny": ("encoder:whisper-tiny.en-encoder.pt:2,3,4",),
    "whisper-tiny-spk": ("encoder:whisper-tiny.en-encoder.pt:2,3,4",),
    "whisper-base": ("encoder:whisper-base-encoder.pt:3,4,5,6",),
    "whisper-base-spk": ("encoder:whisper-base-encoder.pt:3,4,5,6",),
    "cnn": ("logmel",),
    "cnn-spk": ("logmel", "summary"),
    "cnn-spk-ens": ("logmel", "summary"),
    "seed-cnn": ("paper_mel", "paper_mfcc"),
    "svm": ("summary",),
}


def needs_before_loading(name_or_path) -> tuple[str, ...] | None:
    """The features a bundled model needs, without loading it; None for a model file (its
    needs are known once it is loaded)."""
    return BUNDLED_NEEDS.get(str(name_or_path))


def weights_dir() -> Path:
    """Folder of the bundled weights: package data when installed, weights/ in a checkout."""
    d = Path(__file__).resolve().parent / "weights"   # installed: package data
    if d.is_dir():
        return d
    return Path(__file__).resolve().parent.parent / "weights"


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def card_path(weights: str | os.PathLike) -> Path:
    p = Path(weights)
    return p.with_name(p.stem + ".card.json")


@dataclass
class Model:
    """A loaded model: what it predicts and which features it needs."""
    name: str
    kind: str                    # "whisper-head" | "cnn" | "seed-cnn" | "seed-rnn" | "svm" | "ensemble"
    labels: tuple[str, ...]
    path: str
    sha256: str
    card: dict = field(default_factory=dict)
    impl: Any = None

    @property
    def needs(self) -> tuple[str, ...]:
        if self.kind == "ensemble":
            return tuple(dict.fromkeys(k for m in self.impl.members for k in m.needs))
        if self.kind == "cnn":
            return ("logmel", "summary") if self.impl.dims.n_summary else ("logmel",)
        if self.kind in SEED_KINDS:
            return ("paper_mel", "paper_mfcc")
        if self.kind == "whisper-head":
            return (self.impl.feature_key,)
        return self.impl.needs

    @property
    def supports_group_norm(self) -> bool:
        """Whether group normalisation (--normalize-by) applies: SVMs, whose input is one small
        vector per clip, and CNNs trained on group-normalised inputs (a per-band offset of the
        log-mel, from one vector of band means per clip); an ensemble when all its members do,
        leaving out those it runs per clip, and at least one is left."""
        if self.kind == "ensemble":
            grouped = self.impl.grouped_members()
            return bool(grouped) and all(m.supports_group_norm for m in grouped)
        return self.kind == "svm" or self.group_trained

    def use_device(self, device: str) -> None:
        """Run the pretrained encoder of this model (or of its members) on `device` in this
        process; models without one run as before."""
        if self.kind == "ensemble":
            for m in self.impl.members:
                m.use_device(device)
        elif self.kind == "whisper-head":
            self.impl.use_device(device)

    @property
    def encoder(self) -> str | None:
        """The pretrained encoder the model runs on (an ensemble: its members'), or None."""
        if self.kind == "ensemble":
            names = [m.encoder for m in self.impl.members if m.encoder]
            return ", ".join(dict.fromkeys(names)) or None
        return self.impl.dims.encoder if self.kind == "whisper-head" else None

    @property
    def group_trained(self) -> bool:
        """Trained on group-normalised inputs (recipe normalize = "group"); an ensemble when any
        of its members was."""
        if self.kind == "ensemble":
            return any(m.group_trained for m in self.impl.members)
        if self.kind == "svm":
            return self.impl.normalize == "group"
        if self.kind == "whisper-head":
            return self.impl.dims.group_norm
        return self.kind == "cnn" and self.impl.dims.group_norm

    def predict_proba_grouped(self, feats: list[dict[str, np.ndarray]], groups: list) -> np.ndarray:
        """Class probabilities (B, n_labels) with the inputs normalised per group (one key per
        feature dict; see sercli.normalize). Only for models with supports_group_norm."""
        if not self.supports_group_norm:
            raise ModelError(f"model {self.name} ({self.kind}) does not support group normalisation "
                             "(SVMs and CNNs trained with normalize = \"group\" do)")
        if not feats:
            return np.zeros((0, len(self.labels)), np.float32)
        if self.kind == "ensemble":
            return self.impl.combine([m.predict_proba(feats) if per_clip else m.predict_proba_grouped(feats, groups)
                                      for m, per_clip in zip(self.impl.members, self.impl.per_clip)])
        if self.kind == "cnn":
            return self._predict_cnn(feats, groups)
        if self.kind == "whisper-head":
            return self.impl.predict_proba(self.impl.vectors(feats), groups, grouped=True)
        X = self.impl.group_normalize(self.impl.inputs(feats), groups)
        # batches bound the kernel matrix (rows x support vectors)
        return np.concatenate([self.impl.predict_proba(X[s:s + 256]) for s in range(0, len(X), 256)])

    def predict_proba(self, feats: list[dict[str, np.ndarray]]) -> np.ndarray:
        """Class probabilities (B, n_labels) for a batch of feature dicts (see dataset.clip_features)."""
        if not feats:
            return np.zeros((0, len(self.labels)), np.float32)
        if self.kind == "ensemble":
            return self.impl.combine([m.predict_proba(feats) for m in self.impl.members])
        if self.kind == "whisper-head":
            return self.impl.predict_proba(self.impl.vectors(feats))
        if self.kind == "svm":
            X = self.impl.inputs(feats)
            if self.impl.normalize == "group":   # no groups given: each clip is a group of one
                X = self.impl.group_normalize(X, None)
            return self.impl.predict_proba(X)
        import torch
        with torch.inference_mode():
            if self.kind in SEED_KINDS:
                mel = torch.from_numpy(np.stack([f["paper_mel"] for f in feats]).astype(np.float32))
                mfcc = torch.from_numpy(np.stack([f["paper_mfcc"] for f in feats]).astype(np.float32))
                logits = self.impl(mel, mfcc)
            else:
                return self._predict_cnn(feats, None)
            return torch.softmax(logits.float(), dim=-1).numpy()

    def _predict_cnn(self, feats: list[dict[str, np.ndarray]], groups: list | None) -> np.ndarray:
        # One window per forward pass, never padded: on a CPU that is the fastest per window
        # (a padded batch computes the padding and misses the caches), and padding would shift
        # the scores a little, making a file's scores depend on the files batched with it.
        import torch
        dims = self.impl.dims
        fuse = bool(dims.n_summary)
        offsets = z = None
        if self.group_trained:    # groups None: each clip is a group of one
            from .normalize import cnn_group_inputs
            offsets, z = cnn_group_inputs([f["logmel"] for f in feats],
                                          np.stack([f["summary"] for f in feats]) if fuse else None,
                                          groups, self.impl.group_mean.numpy(),
                                          self.impl.group_std.numpy(), dims.group_prior)
        out = np.zeros((len(feats), len(self.labels)), np.float32)
        with torch.inference_mode():
            for i, f in enumerate(feats):
                m = np.asarray(f["logmel"], dtype=np.float32)
                m = np.ascontiguousarray(m - offsets[i][:, None] if offsets is not None else m)
                x = torch.from_numpy(m[None])
                summ = None
                if fuse:
                    summ = torch.from_numpy((z[i] if z is not None else np.asarray(f["summary"], np.float32))[None])
                logits = self.impl(x, torch.tensor([x.shape[-1]]), summ)
                out[i] = torch.softmax(logits.float(), dim=-1).numpy()[0]
        return out


@dataclass
class Ensemble:
    """Models whose class probabilities are averaged with fixed weights (summing to 1).

    A member marked per_clip sees each clip alone even under --normalize-by: a single-clip
    model (`cnn`) beside group-normalised ones keeps the ensemble sound on small groups and on
    groups of one emotion, where group normalisation fails."""
    members: list[Model]
    weights: np.ndarray
    per_clip: list[bool]        # one flag per member

    def grouped_members(self) -> list[Model]:
        return [m for m, pc in zip(self.members, self.per_clip) if not pc]

    def combine(self, probs: list[np.ndarray]) -> np.ndarray:
        return sum(w * p for w, p in zip(self.weights, probs)).astype(np.float32)


#: what an ensemble file (JSON, no code) says of itself and its members
ENSEMBLE_FORMAT = "sercli-ensemble"

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


def _read_json(path: Path):
    """A JSON file's value; ValueError when it is too large, not JSON or nested too deeply."""
    if path.stat().st_size > MAX_JSON_BYTES:
        raise ValueError(f"larger than {MAX_JSON_BYTES >> 20} MiB")
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _check_zip(path: Path, max_bytes: int, npy: bool = False) -> None:
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
            raise ModelError(f"{path}: too large once decompressed ({total / 2**20:.0f} MiB, at "
                             f"most {max_bytes >> 20} MiB)")
        if not npy:
            return
        from numpy.lib import format as npformat
        for i in infos:
            try:
                with z.open(i) as f:
                    version = npformat.read_magic(f)
                    read = (npformat.read_array_header_1_0 if version == (1, 0) else
                            npformat.read_array_header_2_0)
                    shape, _, dtype = read(f)
                need = int(np.prod(shape, dtype=object)) * dtype.itemsize
            except Exception as exc:
                raise ModelError(f"{path}: entry {i.filename} is not a valid array "
                                 f"({' '.join(str(exc).split())[:120]})") from None
            if need > i.file_size:
                raise ModelError(f"{path}: entry {i.filename} declares {need} bytes but holds "
                                 f"{i.file_size}")


def load_ensemble(path: Path, digest: str, name: str | None) -> Model:
    """An ensemble file: JSON naming member model files (relative to it), each with its pinned
    sha256 and weight. Members are loaded as any model file, hash-checked."""
    try:
        spec = _read_json(path)
        if not isinstance(spec, dict) or spec.get("format") != ENSEMBLE_FORMAT:
            raise ValueError(f"not a {ENSEMBLE_FORMAT} file")
        entries = spec["members"]
        if not isinstance(entries, list) or not entries:
            raise ValueError("members must be a non-empty list")
        if len(entries) > MAX_ENSEMBLE_MEMBERS:
            raise ValueError(f"{len(entries)} members, at most {MAX_ENSEMBLE_MEMBERS}")
        if not all(isinstance(e, dict) and isinstance(e.get("file"), str) for e in entries):
            raise ValueError("each member must be an object with a file name")
        files = [path.parent / str(e["file"]) for e in entries]
        pins = [str(e["sha256"]) for e in entries]
        weights = np.array([float(e["weight"]) for e in entries])
        per_clip = [e.get("per_clip", False) for e in entries]
        if not all(isinstance(pc, bool) for pc in per_clip):
            raise ValueError("per_clip must be true or false")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelError(f"{path}: not a valid sercli ensemble file ({' '.join(str(exc).split())[:160]})") from exc
    if not np.all(np.isfinite(weights)) or np.any(weights < 0) or abs(weights.sum() - 1) > 1e-6:
        raise ModelError(f"{path}: ensemble weights must be non-negative and sum to 1, got {weights.tolist()}")
    members = []
    loaded: dict[tuple[str, str], Model] = {}       # a member listed twice is loaded once
    for f, pin, e in zip(files, pins, entries):
        if f.suffix.lower() == ".json":
            raise ModelError(f"{path}: member {f.name} is an ensemble (members must be model files)")
        member_name = str(e.get("name") or f.stem)
        key = (os.path.realpath(f), pin)
        if key in loaded:
            import dataclasses
            members.append(dataclasses.replace(loaded[key], name=member_name))
            continue
        try:
            loaded[key] = load_file(f, name=member_name, sha256=pin)
        except ModelError as exc:      # name the ensemble too: the member path is relative to it
            raise ModelError(f"{path}: member {exc}") from exc
        members.append(loaded[key])
    labels = members[0].labels
    for m in members[1:]:
        if m.labels != labels:
            raise ModelError(f"{path}: member {m.name} has labels {', '.join(m.labels)}, "
                             f"{members[0].name} has {', '.join(labels)} (they must be the same, in order)")
    card = {k: v for k, v in spec.items() if k not in ("format", "members")}
    card["members"] = [{"name": m.name, "file": Path(m.path).name, "sha256": m.sha256, "weight": float(w),
                        **({"per_clip": True} if pc else {})}
                       for m, w, pc in zip(members, weights, per_clip)]
    return Model(name or path.stem, "ensemble", labels, str(path), digest, card,
                 Ensemble(members, weights, per_clip))


def pad_batch(mels: list[np.ndarray]):
    """List of (n_mels, T_i) -> zero-padded float tensor (B, n_mels, T_max) and lengths (B,)."""
    import torch
    T = max(m.shape[1] for m in mels)
    x = np.zeros((len(mels), mels[0].shape[0], T), np.float32)
    for i, m in enumerate(mels):
        x[i, :, :m.shape[1]] = m
    return torch.from_numpy(x), torch.tensor([m.shape[1] for m in mels])


#: torch models on the seed paper's inputs (time-means of 128-band log-mel and 20 MFCCs).
SEED_KINDS = ("seed-cnn", "seed-rnn")
#: what an SVM reads: sercli's summary vector, or the seed paper's mean log-mel + MFCC vectors.
SVM_FEATURES = {"summary": ("summary",), "paper": ("paper_mel", "paper_mfcc")}
SVM_KERNELS = ("rbf", "linear")


class NumpySVM:
    """An RBF or linear SVM (one-vs-one, as libsvm) evaluated in numpy from its stored arrays.

    Scores are a softmax over sklearn's one-vs-rest decision values with a temperature fitted
    on validation data; the arg-max equals sklearn's SVC.predict. `features` names its input
    (see SVM_FEATURES); files without `kernel`/`features` in their config are RBF on summary.

    `normalize="group"`: trained on inputs z-scored per speaker (sercli.normalize), with the
    prior statistics `group_mean`/`group_std` (training set) and pseudo-count `group_prior`;
    its input must go through group_normalize first (predict_proba does not do it).
    """
    ARRAYS = ("mean", "scale", "support_vectors", "dual_coef", "intercept", "n_support")
    GROUP_ARRAYS = ("group_mean", "group_std")
    NORMALIZE = ("none", "group")

    def __init__(self, mean, scale, support_vectors, dual_coef, intercept, n_support,
                 gamma: float, temperature: float = 1.0, kernel: str = "rbf",
                 features: str = "summary", normalize: str = "none", group_mean=None,
                 group_std=None, group_prior: float | None = None):
        if kernel not in SVM_KERNELS:
            raise ModelError(f"unsupported SVM kernel {kernel!r} (supported: {', '.join(SVM_KERNELS)})")
        if features not in SVM_FEATURES:
            raise ModelError(f"unknown SVM features {features!r} (known: {', '.join(SVM_FEATURES)})")
        self.kernel, self.features = kernel, features
        self.mean, self.scale = mean.astype(np.float64), scale.astype(np.float64)
        self.sv = support_vectors.astype(np.float64)
        self.dual_coef = dual_coef.astype(np.float64)
        self.intercept = intercept.astype(np.float64)
        self.n_support = n_support.astype(np.int64)
        self.gamma = float(gamma)
        self.temperature = float(temperature)
        from .normalize import GROUP_PRIOR
        if normalize not in self.NORMALIZE:
            raise ModelError(f"unknown SVM normalisation {normalize!r} (known: {', '.join(self.NORMALIZE)})")
        if normalize == "group" and (group_mean is None or group_std is None):
            raise ModelError("a group-normalised SVM needs its group_mean and group_std arrays")
        self.normalize = normalize
        self.group_mean = None if group_mean is None else np.asarray(group_mean, np.float64)
        self.group_std = None if group_std is None else np.asarray(group_std, np.float64)
        self.group_prior = float(GROUP_PRIOR if group_prior is None else group_prior)

    @classmethod
    def from_sklearn(cls, scaler, svc, temperature: float = 1.0, features: str = "summary") -> "NumpySVM":
        return cls(scaler.mean_, scaler.scale_, svc.support_vectors_, svc.dual_coef_,
                   svc.intercept_, svc.n_support_, float(getattr(svc, "_gamma", 0.0)), temperature,
                   kernel=svc.kernel, features=features)

    @property
    def needs(self) -> tuple[str, ...]:
        return SVM_FEATURES[self.features]

    def inputs(self, feats: list[dict[str, np.ndarray]]) -> np.ndarray:
        """The input matrix (B, D) from a batch of feature dicts."""
        return np.concatenate([np.stack([np.asarray(f[k]).ravel() for f in feats]) for k in self.needs], axis=1)

    def kernel_matrix(self, Z: np.ndarray) -> np.ndarray:
        if self.kernel == "linear":
            return Z @ self.sv.T
        d2 = (Z ** 2).sum(1)[:, None] + (self.sv ** 2).sum(1)[None, :] - 2 * Z @ self.sv.T
        return np.exp(-self.gamma * np.maximum(d2, 0))

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"mean": self.mean, "scale": self.scale, "support_vectors": self.sv,
               "dual_coef": self.dual_coef, "intercept": self.intercept, "n_support": self.n_support}
        if self.normalize == "group":
            out.update(group_mean=self.group_mean, group_std=self.group_std)
        return out

    def group_normalize(self, X: np.ndarray, groups) -> np.ndarray:
        """Inputs (B, D) normalised per group (one key per row; None: each row alone).

        A group-trained SVM gets the per-group z-scores it was trained on (shrunk toward its
        training statistics). Any other SVM gets each group's z-scores mapped back onto its
        training distribution (mean + scale * z), so its own scaler sees the z-scores.
        """
        from .normalize import normalize_groups
        if self.normalize == "group":
            return normalize_groups(X, groups, self.group_mean, self.group_std, self.group_prior)
        return self.mean + self.scale * normalize_groups(X, groups, self.mean, self.scale,
                                                         self.group_prior)

    def decision_ovo(self, X: np.ndarray) -> np.ndarray:
        Z = (np.asarray(X, np.float64) - self.mean) / self.scale
        K = self.kernel_matrix(Z)
        starts = np.concatenate([[0], np.cumsum(self.n_support)])
        n_class = len(self.n_support)
        out, k = [], 0
        for i in range(n_class):
            for j in range(i + 1, n_class):
                si, sj = slice(starts[i], starts[i + 1]), slice(starts[j], starts[j + 1])
                val = (K[:, si] @ self.dual_coef[j - 1, si] + K[:, sj] @ self.dual_coef[i, sj]
                       + self.intercept[k])
                out.append(val)
                k += 1
        return np.stack(out, axis=1)

    def decision_ovr(self, X: np.ndarray) -> np.ndarray:
        """sklearn's _ovr_decision_function: votes plus bounded confidences."""
        dec = self.decision_ovo(X)
        n_class = len(self.n_support)
        votes = np.zeros((len(dec), n_class))
        conf = np.zeros((len(dec), n_class))
        k = 0
        for i in range(n_class):
            for j in range(i + 1, n_class):
                conf[:, i] += dec[:, k]
                conf[:, j] -= dec[:, k]
                votes[dec[:, k] > 0, i] += 1
                votes[dec[:, k] <= 0, j] += 1
                k += 1
        return votes + conf / (3 * (np.abs(conf) + 1))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        z = self.decision_ovr(X) / self.temperature
        z = np.exp(z - z.max(1, keepdims=True))
        return (z / z.sum(1, keepdims=True)).astype(np.float32)


def save_svm(path: str | os.PathLike, svm: NumpySVM, config: dict) -> None:
    cfg = {**config, "gamma": svm.gamma, "temperature": svm.temperature, "kernel": svm.kernel,
           "features": svm.features}
    if svm.normalize != "none":      # plain SVM files stay byte-identical to earlier ones
        cfg.update(normalize=svm.normalize, group_prior=svm.group_prior)
    with open(path, "wb") as f:
        np.savez(f, **svm.arrays(), config=np.frombuffer(json.dumps(cfg).encode(), dtype=np.uint8))


def save_torch(path: str | os.PathLike, net, config: dict) -> None:
    """Save a state_dict with its dims and config as plain values (loadable with weights_only)."""
    import dataclasses
    import torch
    torch.save({"config": config, "dims": dataclasses.asdict(net.dims),
                "state_dict": net.state_dict()}, path)


def _is_pickle(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(2)
    return len(head) == 2 and head[0] == 0x80 and head[1] <= 5


def load_file(path: str | os.PathLike, *, name: str | None = None, sha256: str | None = None) -> Model:
    """Load a model file (.pt state dict, .npz SVM or .json ensemble) without running code from it."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    digest = sha256_file(path)
    if sha256 is not None and digest != sha256:
        raise ModelError(f"{path}: sha256 {digest[:12]}… does not match the pinned "
                         f"{sha256[:12]}… (corrupted or replaced weights file)")
    if _is_pickle(path):
        raise ModelError(f"{path}: refusing a pickle file (it could run code); "
                         "use a torch state_dict (.pt) or an .npz model")
    if path.suffix.lower() == ".json":
        return load_ensemble(path, digest, name)
    card = {}
    if card_path(path).is_file():     # a card that cannot be read is no card (it runs nothing)
        try:
            card = _read_json(card_path(path))
        except (OSError, ValueError):
            card = {}
        card = card if isinstance(card, dict) else {}
    suffix = path.suffix.lower()
    if suffix == ".npz":
        _check_zip(path, MAX_NPZ_BYTES, npy=True)
        try:
            with np.load(path, allow_pickle=False) as z:
                cfg = json.loads(bytes(z["config"]).decode())
                if not isinstance(cfg, dict):
                    raise ValueError("its config is not a JSON object")
                arrays = {k: z[k] for k in NumpySVM.ARRAYS}
                if cfg.get("normalize", "none") == "group":
                    arrays.update({k: z[k] for k in NumpySVM.GROUP_ARRAYS})
            labels = _check_svm(cfg, arrays)
            svm = NumpySVM(**arrays, gamma=cfg["gamma"], temperature=cfg.get("temperature", 1.0),
                           kernel=cfg.get("kernel", "rbf"), features=cfg.get("features", "summary"),
                           normalize=cfg.get("normalize", "none"), group_prior=cfg.get("group_prior"))
        except Exception as exc:
            reason = str(exc) if isinstance(exc, (ModelError, _Invalid)) else f"{type(exc).__name__}: {exc}"
            raise ModelError(f"{path}: not a valid sercli SVM file "
                             f"({' '.join(reason.split())[:200]})") from exc
        return Model(name or path.stem, "svm", labels, str(path), digest, card, svm)
    try:
        import torch
    except ImportError as exc:
        raise ModelError(f"{path}: torch is not installed, cannot load a torch model") from exc
    _check_zip(path, MAX_TORCH_BYTES)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(blob, dict):
            raise _Invalid("not a dict of config, dims and state_dict")
        cfg, dims = blob["config"], blob["dims"]
        if not isinstance(cfg, dict) or not isinstance(dims, dict):
            raise _Invalid("its config and dims must be dicts")
        if cfg.get("kind") not in TORCH_KINDS:
            raise _Invalid(f"config kind {cfg.get('kind')!r} is not a torch model kind "
                           f"({', '.join(TORCH_KINDS)})")
        labels = _check_labels(cfg)
        from . import nets
        if cfg["kind"] == "whisper-head":
            return _load_head(path, digest, name, card, blob)
        if cfg["kind"] == "seed-cnn":
            net = nets.SeedCNN(nets.SeedCNNDims(**dims))
        elif cfg["kind"] == "seed-rnn":
            net = nets.SeedRNN(nets.SeedRNNDims(**dims))
        else:
            net = nets.EmotionCNN(nets.CNNDims(**dims))
        net.load_state_dict(blob["state_dict"])
        if net.dims.n_labels != len(labels):
            raise _Invalid(f"{len(labels)} labels for {net.dims.n_labels} outputs")
    except ModelError:
        raise
    except Exception as exc:
        reason = str(exc) if isinstance(exc, _Invalid) else f"{type(exc).__name__}: {exc}"
        raise ModelError(f"{path}: not a valid sercli model file "
                         f"({' '.join(reason.split())[:200]})") from exc
    net.eval()
    if isinstance(net, nets.EmotionCNN):
        net = net.fuse_for_inference()
    return Model(name or path.stem, cfg["kind"], labels, str(path), digest, card, net)


class _Invalid(ValueError):
    """What is wrong with a model file, in words (the message is shown as is)."""


#: torch model kinds a .pt file's config may name
TORCH_KINDS = ("cnn", "whisper-head") + SEED_KINDS


def _check_labels(cfg: dict) -> tuple[str, ...]:
    labels = cfg.get("labels")
    if (not isinstance(labels, list) or len(labels) < 2
            or not all(isinstance(x, str) and x for x in labels) or len(set(labels)) != len(labels)):
        raise _Invalid("labels must be a list of two or more distinct names")
    return tuple(labels)


def _check_number(cfg: dict, key: str, *, default=None, low: float = 0.0, strict: bool = False) -> None:
    v = cfg.get(key, default)
    if v is None and default is None and key not in cfg:
        raise _Invalid(f"{key} is missing")
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v < low \
            or (strict and v == low):
        raise _Invalid(f"{key} must be a number {'>' if strict else '>='} {low:g}, got {v!r}"[:120])


def _check_svm(cfg: dict, arrays: dict[str, np.ndarray]) -> tuple[str, ...]:
    """Everything an SVM file must hold, checked before it is used: kind, labels, numbers,
    and the shapes of its arrays against each other, its labels and its features."""
    if cfg.get("kind", "svm") != "svm":
        raise _Invalid(f"config kind {cfg.get('kind')!r} where an SVM was expected")
    labels = _check_labels(cfg)
    _check_number(cfg, "gamma")
    _check_number(cfg, "temperature", default=1.0, strict=True)
    if cfg.get("group_prior") is not None:
        _check_number(cfg, "group_prior")
    for key in ("kernel", "features", "normalize"):
        if key in cfg and not isinstance(cfg[key], str):
            raise _Invalid(f"{key} must be a string")
    for k, a in arrays.items():
        if a.dtype.kind not in "iuf" or not np.isfinite(a).all():
            raise _Invalid(f"array {k} must hold finite numbers")
    from .constants import N_MELS, N_MFCC
    from .features import SUMMARY_DIM
    dim = {"summary": SUMMARY_DIM, "paper": N_MELS + N_MFCC}.get(cfg.get("features", "summary"))
    C = len(labels)
    mean, scale, sv = arrays["mean"], arrays["scale"], arrays["support_vectors"]
    n_support = arrays["n_support"]
    S = sv.shape[0] if sv.ndim == 2 else -1
    want = {"mean": (dim,), "scale": (dim,), "support_vectors": (S, dim), "n_support": (C,),
            "dual_coef": (C - 1, S), "intercept": (C * (C - 1) // 2,),
            "group_mean": (dim,), "group_std": (dim,)}
    for k, a in arrays.items():
        if a.shape != want[k]:
            raise _Invalid(f"array {k} has shape {a.shape}, expected {want[k]} for {C} labels "
                           f"and {dim} features")
    if n_support.dtype.kind not in "iu" or (n_support < 0).any() or int(n_support.sum()) != S:
        raise _Invalid(f"n_support must count the {S} support vectors")
    if (scale == 0).any() or ("group_std" in arrays and (arrays["group_std"] <= 0).any()):
        raise _Invalid("a scale of 0")
    return labels


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
        raise ModelError(f"the model was trained on another {name} encoder (sha256 "
                         f"{expected_sha256[:12]}…, bundled {pinned[:12]}…)")
    digest = _verified.get(str(path)) or sha256_file(path)
    if digest != pinned:
        raise ModelError(f"{path}: sha256 {digest[:12]}… does not match the pinned {pinned[:12]}… "
                         "(corrupted or replaced encoder file)")
    _verified[str(path)] = digest
    return path


_verified: dict[str, str] = {}


def _load_head(path: Path, digest: str, name: str | None, card: dict, blob: dict) -> Model:
    """A whisper-head file: the head's state dict, its dims, and the encoder it reads (by
    bundled name and sha256; the encoder's own file is checked and loaded by the workers)."""
    from .heads import HeadDims, HeadModel, WhisperHead
    cfg = blob["config"]
    dims = HeadDims(**blob["dims"])
    enc = encoder_path(dims.encoder, cfg.get("encoder_sha256"))
    if max(dims.layers) > ENCODERS[dims.encoder][2] or min(dims.layers) < 1:
        raise ModelError(f"{path}: layers {dims.layers} outside the encoder's blocks")
    labels = tuple(cfg["labels"])
    if len(labels) != dims.n_labels:
        raise ModelError(f"{path}: {len(labels)} labels for {dims.n_labels} outputs")
    net = WhisperHead(dims)
    net.load_state_dict(blob["state_dict"])
    net.eval()
    return Model(name or path.stem, "whisper-head", labels, str(path), digest, card,
                 HeadModel(net, enc.name, ENCODERS[dims.encoder][1]))


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
