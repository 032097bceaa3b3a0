"""Model kind "svm": an SVM evaluated in numpy from its stored arrays (.npz, no pickle).

Needs only numpy, so it still works when torch cannot be imported (the fallback model).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .base import Model
from .files import MAX_NPZ_BYTES, Invalid, check_labels, check_number, check_zip

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

    def __init__(
        self,
        mean,
        scale,
        support_vectors,
        dual_coef,
        intercept,
        n_support,
        gamma: float,
        temperature: float = 1.0,
        kernel: str = "rbf",
        features: str = "summary",
        normalize: str = "none",
        group_mean=None,
        group_std=None,
        group_prior: float | None = None,
    ):
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
        from ..normalize import GROUP_PRIOR

        if normalize not in self.NORMALIZE:
            raise ModelError(f"unknown SVM normalisation {normalize!r} (known: {', '.join(self.NORMALIZE)})")
        if normalize == "group" and (group_mean is None or group_std is None):
            raise ModelError("a group-normalised SVM needs its group_mean and group_std arrays")
        self.normalize = normalize
        self.group_mean = None if group_mean is None else np.asarray(group_mean, np.float64)
        self.group_std = None if group_std is None else np.asarray(group_std, np.float64)
        self.group_prior = float(GROUP_PRIOR if group_prior is None else group_prior)

    @classmethod
    def from_sklearn(cls, scaler, svc, temperature: float = 1.0, features: str = "summary") -> NumpySVM:
        return cls(
            scaler.mean_,
            scaler.scale_,
            svc.support_vectors_,
            svc.dual_coef_,
            svc.intercept_,
            svc.n_support_,
            float(getattr(svc, "_gamma", 0.0)),
            temperature,
            kernel=svc.kernel,
            features=features,
        )

    @property
    def needs(self) -> tuple[str, ...]:
        return SVM_FEATURES[self.features]

    def inputs(self, feats: list[dict[str, np.ndarray]]) -> np.ndarray:
        """The input matrix (B, D) from a batch of feature dicts."""
        return np.concatenate([np.stack([np.asarray(f[k]).ravel() for f in feats]) for k in self.needs], axis=1)

    def kernel_matrix(self, Z: np.ndarray) -> np.ndarray:
        if self.kernel == "linear":
            return Z @ self.sv.T
        d2 = (Z**2).sum(1)[:, None] + (self.sv**2).sum(1)[None, :] - 2 * Z @ self.sv.T
        return np.exp(-self.gamma * np.maximum(d2, 0))

    def arrays(self) -> dict[str, np.ndarray]:
        out = {
            "mean": self.mean,
            "scale": self.scale,
            "support_vectors": self.sv,
            "dual_coef": self.dual_coef,
            "intercept": self.intercept,
            "n_support": self.n_support,
        }
        if self.normalize == "group":
            out.update(group_mean=self.group_mean, group_std=self.group_std)
        return out

    def group_normalize(self, X: np.ndarray, groups) -> np.ndarray:
        """Inputs (B, D) normalised per group (one key per row; None: each row alone).

        A group-trained SVM gets the per-group z-scores it was trained on (shrunk toward its
        training statistics). Any other SVM gets each group's z-scores mapped back onto its
        training distribution (mean + scale * z), so its own scaler sees the z-scores.
        """
        from ..normalize import normalize_groups

        if self.normalize == "group":
            return normalize_groups(X, groups, self.group_mean, self.group_std, self.group_prior)
        return self.mean + self.scale * normalize_groups(X, groups, self.mean, self.scale, self.group_prior)

    def decision_ovo(self, X: np.ndarray) -> np.ndarray:
        Z = (np.asarray(X, np.float64) - self.mean) / self.scale
        K = self.kernel_matrix(Z)
        starts = np.concatenate([[0], np.cumsum(self.n_support)])
        n_class = len(self.n_support)
        out, k = [], 0
        for i in range(n_class):
            for j in range(i + 1, n_class):
                si, sj = slice(starts[i], starts[i + 1]), slice(starts[j], starts[j + 1])
                val = K[:, si] @ self.dual_coef[j - 1, si] + K[:, sj] @ self.dual_coef[i, sj] + self.intercept[k]
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
    cfg = {**config, "gamma": svm.gamma, "temperature": svm.temperature, "kernel": svm.kernel, "features": svm.features}
    if svm.normalize != "none":  # plain SVM files stay byte-identical to earlier ones
        cfg.update(normalize=svm.normalize, group_prior=svm.group_prior)
    with open(path, "wb") as f:
        np.savez(f, **svm.arrays(), config=np.frombuffer(json.dumps(cfg).encode(), dtype=np.uint8))


def check_svm(cfg: dict, arrays: dict[str, np.ndarray]) -> tuple[str, ...]:
    """Everything an SVM file must hold, checked before it is used: kind, labels, numbers,
    and the shapes of its arrays against each other, its labels and its features."""
    if cfg.get("kind", "svm") != "svm":
        raise Invalid(f"config kind {cfg.get('kind')!r} where an SVM was expected")
    labels = check_labels(cfg)
    check_number(cfg, "gamma")
    check_number(cfg, "temperature", default=1.0, strict=True)
    if cfg.get("group_prior") is not None:
        check_number(cfg, "group_prior")
    for key in ("kernel", "features", "normalize"):
        if key in cfg and not isinstance(cfg[key], str):
            raise Invalid(f"{key} must be a string")
    for k, a in arrays.items():
        if a.dtype.kind not in "iuf" or not np.isfinite(a).all():
            raise Invalid(f"array {k} must hold finite numbers")
    from ..constants import N_MELS, N_MFCC
    from ..features import SUMMARY_DIM

    dim = {"summary": SUMMARY_DIM, "paper": N_MELS + N_MFCC}.get(cfg.get("features", "summary"))
    C = len(labels)
    scale, sv = arrays["scale"], arrays["support_vectors"]
    n_support = arrays["n_support"]
    S = sv.shape[0] if sv.ndim == 2 else -1
    want = {
        "mean": (dim,),
        "scale": (dim,),
        "support_vectors": (S, dim),
        "n_support": (C,),
        "dual_coef": (C - 1, S),
        "intercept": (C * (C - 1) // 2,),
        "group_mean": (dim,),
        "group_std": (dim,),
    }
    for k, a in arrays.items():
        if a.shape != want[k]:
            raise Invalid(f"array {k} has shape {a.shape}, expected {want[k]} for {C} labels and {dim} features")
    if n_support.dtype.kind not in "iu" or (n_support < 0).any() or int(n_support.sum()) != S:
        raise Invalid(f"n_support must count the {S} support vectors")
    if (scale == 0).any() or ("group_std" in arrays and (arrays["group_std"] <= 0).any()):
        raise Invalid("a scale of 0")
    return labels


class SVMModel(Model):
    """An SVM (`impl`: NumpySVM) on one small vector per clip: it takes group normalisation
    whether or not it was trained on it."""

    KINDS = ("svm",)

    @classmethod
    def needs_from_card(cls, card: dict) -> tuple[str, ...] | None:
        recipe = card.get("recipe") if isinstance(card.get("recipe"), dict) else {}
        return SVM_FEATURES.get(recipe.get("features", "summary"))

    @classmethod
    def group_from_card(cls, card: dict) -> bool:
        return True

    @classmethod
    def from_file(cls, path: Path, digest: str, name: str | None, card: dict) -> SVMModel:
        """An .npz SVM file, read without pickle and checked before it is used."""
        check_zip(path, MAX_NPZ_BYTES, npy=True)
        try:
            with np.load(path, allow_pickle=False) as z:
                cfg = json.loads(bytes(z["config"]).decode())
                if not isinstance(cfg, dict):
                    raise ValueError("its config is not a JSON object")
                arrays = {k: z[k] for k in NumpySVM.ARRAYS}
                if cfg.get("normalize", "none") == "group":
                    arrays.update({k: z[k] for k in NumpySVM.GROUP_ARRAYS})
            labels = check_svm(cfg, arrays)
            svm = NumpySVM(
                **arrays,
                gamma=cfg["gamma"],
                temperature=cfg.get("temperature", 1.0),
                kernel=cfg.get("kernel", "rbf"),
                features=cfg.get("features", "summary"),
                normalize=cfg.get("normalize", "none"),
                group_prior=cfg.get("group_prior"),
            )
        except Exception as exc:
            reason = str(exc) if isinstance(exc, (ModelError, Invalid)) else f"{type(exc).__name__}: {exc}"
            raise ModelError(f"{path}: not a valid sercli SVM file ({' '.join(reason.split())[:200]})") from exc
        return cls(name or path.stem, "svm", labels, str(path), digest, card, svm)

    @property
    def needs(self) -> tuple[str, ...]:
        return self.impl.needs

    @property
    def group_trained(self) -> bool:
        return self.impl.normalize == "group"

    @property
    def supports_group_norm(self) -> bool:
        return True

    def _predict(self, feats: list[dict[str, np.ndarray]]) -> np.ndarray:
        X = self.impl.inputs(feats)
        if self.impl.normalize == "group":  # no groups given: each clip is a group of one
            X = self.impl.group_normalize(X, None)
        return self.impl.predict_proba(X)

    def _predict_grouped(self, feats: list[dict[str, np.ndarray]], groups: list) -> np.ndarray:
        X = self.impl.group_normalize(self.impl.inputs(feats), groups)
        # batches bound the kernel matrix (rows x support vectors)
        return np.concatenate([self.impl.predict_proba(X[s : s + 256]) for s in range(0, len(X), 256)])
