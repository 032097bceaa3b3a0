"""Classification metrics, computed from a confusion matrix (numpy only)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np


def confusion(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Counts (n_labels, n_labels): rows are true labels, columns predictions."""
    idx = {lab: i for i, lab in enumerate(labels)}
    cm = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        cm[idx[t], idx[p]] += 1
    return cm


def _div(a, b):
    return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b > 0)


def from_confusion(cm: np.ndarray, labels: Sequence[str]) -> dict:
    """accuracy, uar (balanced accuracy over classes present), macro_f1, per_class, confusion."""
    cm = np.asarray(cm)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(1)
    predicted = cm.sum(0)
    recall = _div(tp, support)
    precision = _div(tp, predicted)
    f1 = _div(2 * precision * recall, precision + recall)
    present = support > 0
    n = int(cm.sum())
    return {
        "n": n,
        "labels": list(labels),
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "uar": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": {
            lab: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, lab in enumerate(labels)
        },
        "confusion": cm.astype(int).tolist(),
        "confusion_normalized": np.round(_div(cm.astype(np.float64), support[:, None]), 4).tolist(),
    }


def evaluate(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str], groups: Sequence[str] | None = None
) -> dict:
    """Metrics overall, and per group (e.g. corpus) when groups are given."""
    out = from_confusion(confusion(y_true, y_pred, labels), labels)
    if groups is not None:
        by = defaultdict(lambda: ([], []))
        for t, p, g in zip(y_true, y_pred, groups):
            by[g][0].append(t)
            by[g][1].append(p)
        out["per_corpus"] = {}
        for g in sorted(by):
            m = from_confusion(confusion(*by[g], labels), labels)
            out["per_corpus"][g] = {k: m[k] for k in ("n", "accuracy", "uar", "macro_f1")}
    return out
