"""Figures: emotion distributions (the paper's Figures 2 and 3)."""
from __future__ import annotations

from collections import Counter

from .corpora import Clip


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_distribution(clips: list[Clip], per_corpus_png: str, combined_png: str) -> None:
    """Count of emotions per corpus (Figure 2) and combined (Figure 3)."""
    plt = _plt()
    corpora = sorted({c.corpus for c in clips})
    labels = sorted({c.label for c in clips})
    fig, axes = plt.subplots(1, max(1, len(corpora)), figsize=(4 * max(1, len(corpora)), 3.5), squeeze=False)
    for ax, corpus in zip(axes[0], corpora):
        cnt = Counter(c.label for c in clips if c.corpus == corpus)
        ax.bar(labels, [cnt.get(lab, 0) for lab in labels])
        ax.set_title(corpus)
        ax.tick_params(axis="x", rotation=60)
    fig.tight_layout(); fig.savefig(per_corpus_png, dpi=100); plt.close(fig)
    cnt = Counter(c.label for c in clips)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(labels, [cnt.get(lab, 0) for lab in labels])
    ax.set_title(f"all corpora ({len(clips)} clips)")
    ax.tick_params(axis="x", rotation=60)
    fig.tight_layout(); fig.savefig(combined_png, dpi=100); plt.close(fig)
