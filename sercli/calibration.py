"""How far confidences can be trusted: expected calibration error and a reliability diagram."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def fit_temperature(decision: np.ndarray, y: np.ndarray) -> float:
    """Softmax temperature minimising the NLL of labels `y` (n,) under scores `decision` (n, k);
    a grid search, robust and deterministic."""
    best, best_t = np.inf, 1.0
    for t in np.geomspace(0.05, 5, 60):
        z = decision / t
        z = z - z.max(1, keepdims=True)
        nll = -(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(1))).mean()
        if nll < best:
            best, best_t = nll, float(t)
    return best_t


def calibration(proba: np.ndarray, y: list[int] | np.ndarray, bins: int = 10) -> dict:
    """ECE of the top-class confidence over `bins` equal-width bins (Guo et al. 2017), and the
    table behind it: per bin its clips, accuracy and mean confidence."""
    proba = np.asarray(proba, np.float64)
    y = np.asarray(y)
    conf = proba.max(1)
    correct = (proba.argmax(1) == y).astype(np.float64)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        sel = which == b
        n = int(sel.sum())
        if n:
            acc, c = float(correct[sel].mean()), float(conf[sel].mean())
            ece += n / len(conf) * abs(acc - c)
            table.append(
                {
                    "low": float(edges[b]),
                    "high": float(edges[b + 1]),
                    "n": n,
                    "accuracy": round(acc, 4),
                    "confidence": round(c, 4),
                }
            )
    return {"ece": round(float(ece), 4), "bins": bins, "table": table}


def plot_reliability(cal: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    mids = [(b["low"] + b["high"]) / 2 for b in cal["table"]]
    ax.bar(
        mids,
        [b["accuracy"] for b in cal["table"]],
        width=1 / cal["bins"] * 0.9,
        color="tab:blue",
        alpha=0.8,
        label="accuracy",
    )
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.plot(mids, [b["confidence"] for b in cal["table"]], "o", color="tab:orange", label="mean confidence")
    ax.set_xlabel("confidence (top class)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(f"{title}\nECE {cal['ece']:.3f}", fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
