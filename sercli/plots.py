"""Figures: emotion distributions (the paper's Figures 2 and 3) and one clip as the models see
it (its Figures 4, 5 and 9), with a timeline of segment emotions for long recordings.

matplotlib runs on its Agg backend (no display needed) and is imported only when plotting.
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Callable

from .constants import DEFAULT_WINDOW_S
from .corpora import Clip

DPI = 100
#: figure size in inches of `plot_clip`: waveform, MFCCs, log-mel (the PNG is DPI x this)
CLIP_FIGSIZE = (10.0, 8.0)
#: ... and with the segment timeline of a long recording below them
TIMELINE_FIGSIZE = (10.0, 10.5)
#: recordings longer than this many windows are cut into windows by `classify`
LONG_FACTOR = 1.25


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


def png_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) in pixels from a PNG header; ValueError if it is not a PNG."""
    import struct
    with open(path, "rb") as f:
        head = f.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise ValueError(f"{path}: not a PNG file")
    return struct.unpack(">II", head[16:24])


def _waveform(ax, y, sr: int) -> None:
    import numpy as np
    n = len(y)
    if n > 200_000:        # long recording: min/max envelope per bin instead of every sample
        bins = 4000
        edges = np.linspace(0, n, bins + 1).astype(int)
        lo = np.minimum.reduceat(y, edges[:-1])
        hi = np.maximum.reduceat(y, edges[:-1])
        ax.fill_between(edges[:-1] / sr, lo, hi, color="tab:blue", linewidth=0)
    else:
        ax.plot(np.arange(n) / sr, y, color="tab:blue", linewidth=0.5)
    peak = float(np.abs(y).max()) if n else 0.0
    ax.set_ylim(-max(peak, 1e-3) * 1.05, max(peak, 1e-3) * 1.05)
    ax.set_ylabel("amplitude")
    ax.set_title("waveform (16 kHz mono)")


def _timeline(ax, result, labels) -> None:
    import matplotlib.pyplot as plt
    colors = plt.get_cmap("tab10")
    segs = result.segments or []
    lanes = list(labels)
    has_silent = any(s.silent for s in segs)
    if has_silent:
        lanes = ["(silent)"] + lanes
    for s in segs:
        if s.silent or s.label is None:
            ax.broken_barh([(s.start_s, s.end_s - s.start_s)], (-0.4, 0.8), facecolors="0.85",
                           edgecolor="0.6", hatch="//", linewidth=0.5)
            continue
        k = lanes.index(s.label)
        h = 0.8 * float(s.confidence)
        ax.broken_barh([(s.start_s, s.end_s - s.start_s)], (k - h / 2, h),
                       facecolors=colors(list(labels).index(s.label) % 10), alpha=0.55,
                       edgecolor="black", linewidth=0.5)
        if len(segs) <= 40:
            ax.text((s.start_s + s.end_s) / 2, k, f"{s.confidence:.2f}", ha="center", va="center", fontsize=7)
    ax.set_yticks(range(len(lanes)), lanes)
    ax.set_ylim(-0.6, len(lanes) - 0.4)
    ax.set_xlabel("time (s)")
    head = (f"file: {result.label} ({result.confidence:.2f})" if result.ok
            else f"no label: {result.error.split(': ', 1)[-1]}")
    ax.set_title(f"segment emotions, model {result.model} (bar height = confidence); {head}")


def plot_clip(path: str | os.PathLike, out: str | os.PathLike, *, model="cnn",
              window_s: float = DEFAULT_WINDOW_S, warn: Callable[[str], None] | None = None) -> dict:
    """Waveform, MFCCs and log-mel spectrogram of one recording, decoded to 16 kHz mono and
    computed with sercli's own feature functions (128 mel bands and 20 MFCCs, as the seed
    paper's figures), written as a PNG of DPI x CLIP_FIGSIZE pixels.

    A recording longer than LONG_FACTOR x window_s (5 s by default) is also classified in
    windows (`pipeline.classify_file(..., segments=True)`) and gets a timeline of each
    window's label and confidence below (DPI x TIMELINE_FIGSIZE pixels). Raises AudioError for
    a file that cannot be decoded. Returns what was plotted.
    """
    from .audio import load_audio
    from .constants import N_MELS, N_MFCC, SAMPLE_RATE
    from .errors import AudioError
    from .features import log_mel, mfcc_from_log_mel
    path = os.fspath(path)
    y, info = load_audio(path)
    if y.size == 0:
        raise AudioError(f"{path}: no audio samples (empty audio data)")
    duration = len(y) / SAMPLE_RATE
    result = None
    if duration > LONG_FACTOR * window_s:
        from .pipeline import classify_file, resolve_model
        model = resolve_model(model, warn=warn)
        result = classify_file(path, model=model, segments=True, window_s=window_s)
    S_db = log_mel(y, n_mels=N_MELS)
    mf = mfcc_from_log_mel(S_db, n_mfcc=N_MFCC)

    plt = _plt()
    rows = 4 if result is not None else 3
    fig = plt.figure(figsize=TIMELINE_FIGSIZE if result is not None else CLIP_FIGSIZE, dpi=DPI)
    ratios = [1, 1.2, 1.6] + ([1.3] if result is not None else [])
    gs = fig.add_gridspec(rows, 2, width_ratios=[1, 0.018], height_ratios=ratios, wspace=0.02,
                          hspace=0.45, left=0.08, right=0.93,
                          top=0.92 if result is not None else 0.9, bottom=0.06)
    axes = [fig.add_subplot(gs[0, 0])]
    axes += [fig.add_subplot(gs[i, 0], sharex=axes[0]) for i in range(1, rows)]
    _waveform(axes[0], y, SAMPLE_RATE)
    extent = (0, duration)
    im = axes[1].imshow(mf, origin="lower", aspect="auto", cmap="viridis", interpolation="nearest",
                        extent=(*extent, 0, mf.shape[0]))
    axes[1].set_ylabel("coefficient")
    axes[1].set_title(f"MFCC ({N_MFCC} coefficients of the {N_MELS}-band log-mel)")
    fig.colorbar(im, cax=fig.add_subplot(gs[1, 1]))
    im = axes[2].imshow(S_db, origin="lower", aspect="auto", cmap="magma", interpolation="nearest",
                        extent=(*extent, 0, S_db.shape[0]))
    axes[2].set_ylabel("mel band")
    axes[2].set_title(f"log-mel spectrogram ({N_MELS} bands, dB)")
    fig.colorbar(im, cax=fig.add_subplot(gs[2, 1])).set_label("dB")
    if result is not None:
        _timeline(axes[3], result, list(model.labels))
    else:
        axes[2].set_xlabel("time (s)")
    axes[0].set_xlim(0, duration)
    fig.suptitle(f"{Path(path).name}: {duration:.2f} s (stored {info.sample_rate} Hz, "
                 f"{info.channels} ch)")
    out = Path(out)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, dpi=DPI, format="png")
        os.replace(tmp, out)
    finally:
        plt.close(fig)
        if tmp.exists():
            tmp.unlink()
    w, h = png_size(out)
    return {"path": path, "out": str(out), "duration_s": round(duration, 3),
            "sample_rate": info.sample_rate, "channels": info.channels, "width": w, "height": h,
            "label": result.label if result is not None else None,
            "segments": [s.__dict__ for s in result.segments or []] if result is not None else None}
