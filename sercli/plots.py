"""Figures: emotion distributions (the paper's Figures 2 and 3) and one clip as the models see
it (its Figures 4, 5 and 9), with a timeline of segment emotions for long recordings.

matplotlib runs on its Agg backend (no display needed) and is imported only when plotting.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

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
    fig.tight_layout()
    fig.savefig(per_corpus_png, dpi=100)
    plt.close(fig)
    cnt = Counter(c.label for c in clips)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(labels, [cnt.get(lab, 0) for lab in labels])
    ax.set_title(f"all corpora ({len(clips)} clips)")
    ax.tick_params(axis="x", rotation=60)
    fig.tight_layout()
    fig.savefig(combined_png, dpi=100)
    plt.close(fig)


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
    if n > 200_000:  # long recording: min/max envelope per bin instead of every sample
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


def _own_spans(segs, duration: float) -> list[tuple[float, float]]:
    """Each window's own stretch of time: from midway to the previous window's centre to
    midway to the next one's, so that overlapping windows tile the recording without overlap."""
    centres = [(s.start_s + s.end_s) / 2 for s in segs]
    edges = [0.0] + [(a + b) / 2 for a, b in zip(centres, centres[1:])] + [duration]
    return list(zip(edges[:-1], edges[1:]))


def _timeline(ax, result, labels, duration: float, window_s: float) -> None:
    """One column per window, over the stretch of time it is nearest to: its scores stacked
    (colour = emotion, height = score, the winning emotion at the bottom and named on top when
    there is room); silent windows grey. A legend names the colours."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    colors = plt.get_cmap("tab10")
    col = {lab: colors(i % 10) for i, lab in enumerate(labels)}
    segs = result.segments or []
    spans = _own_spans(segs, duration)
    width_px = ax.get_position().width * ax.figure.get_figwidth() * ax.figure.dpi
    px_per_s = width_px / max(duration, 1e-6)
    for s, (a, b) in zip(segs, spans):
        if s.silent or s.label is None or not s.scores:
            ax.bar(a, 1.0, width=b - a, align="edge", color="0.9", edgecolor="0.6", hatch="//", linewidth=0.4)
            if (b - a) * px_per_s >= 40:
                ax.text((a + b) / 2, 0.5, "silent", ha="center", va="center", fontsize=9, color="0.35")
            continue
        order = sorted(s.scores, key=lambda k: -s.scores[k])
        bottom = 0.0
        for lab in order:
            v = float(s.scores[lab])
            ax.bar(a, v, width=b - a, bottom=bottom, align="edge", color=col[lab], edgecolor="white", linewidth=0.3)
            bottom += v
        if (b - a) * px_per_s >= 44:
            ax.text(
                (a + b) / 2,
                min(float(s.scores[order[0]]), 0.97) / 2,
                f"{s.label}\n{s.confidence:.2f}",
                ha="center",
                va="center",
                fontsize=9,
                color="white",
                fontweight="bold",
            )
    ax.set_xlim(0, duration)
    ax.set_ylim(0, 1)
    ax.set_ylabel("score")
    ax.set_xlabel("time (s)")
    handles = [Patch(color=col[lab], label=lab) for lab in labels]
    if any(s.silent for s in segs):
        handles.append(Patch(facecolor="0.9", edgecolor="0.6", hatch="//", label="silent"))
    ax.legend(
        handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=9, frameon=False, borderaxespad=0.0
    )
    head = (
        f"file: {result.label} ({result.confidence:.2f})"
        if result.ok
        else f"no label: {result.error.split(': ', 1)[-1]}"
    )
    ax.set_title(
        f"emotion per {window_s:g} s window (scores stacked, top emotion at the bottom), model {result.model}; {head}",
        fontsize=10,
    )


def _model_view(model) -> tuple[tuple[str, ...], str]:
    """The features `model` needs (known without loading a bundled model) and its name."""
    from .errors import ModelError
    from .models import DEFAULT_MODEL, Model, needs_before_loading

    if isinstance(model, Model):
        return tuple(model.needs), model.name
    needs = needs_before_loading(model)
    if needs is not None:
        return needs, str(model)
    try:
        from .runtime.classify import resolve_model

        m = resolve_model(model)
        return tuple(m.needs), m.name
    except ModelError:
        return needs_before_loading(DEFAULT_MODEL) or (), DEFAULT_MODEL


def plot_clip(
    path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    model="cnn",
    window_s: float = DEFAULT_WINDOW_S,
    warn: Callable[[str], None] | None = None,
) -> dict:
    """One recording as the selected model sees it, decoded to 16 kHz mono with the DC offset
    removed, computed with sercli's own feature functions, written as a PNG of DPI x
    CLIP_FIGSIZE pixels: the waveform; the MFCCs 1-19 when the model uses MFCCs (seed-cnn,
    svm; c0, the overall level, would swamp the colour scale); the log-mel spectrogram with the
    model's bands (64 for the CNNs, 128 for seed-cnn, 40 for the SVM).

    A recording longer than LONG_FACTOR x window_s (5 s by default) is also classified in
    windows (`classify_file(..., segments=True)`) and gets a timeline below (DPI x
    TIMELINE_FIGSIZE pixels): each window's scores stacked over the stretch of time nearest to
    it. Raises AudioError for a file that cannot be decoded. Returns what was plotted.
    """
    import numpy as np

    from .audio import load_audio
    from .constants import SAMPLE_RATE
    from .dataset import CNN_MELS
    from .errors import AudioError
    from .features import mel_filterbank, mfcc_from_log_mel, power_spectrogram, power_to_db, remove_dc

    path = os.fspath(path)
    y, info = load_audio(path)
    if y.size == 0:
        raise AudioError(f"{path}: no audio samples (empty audio data)")
    duration = len(y) / SAMPLE_RATE
    result = None
    if duration > LONG_FACTOR * window_s:
        from .runtime.classify import classify_file, resolve_model

        model = resolve_model(model, warn=warn)
        result = classify_file(path, model=model, segments=True, window_s=window_s)
    needs, model_name = _model_view(model)
    y = remove_dc(y)
    P = power_spectrogram(y)
    from .models import parse_encoded_key

    whisper = any(parse_encoded_key(k) for k in needs)
    if whisper:  # a head on a Whisper encoder: the encoder's own log-mel
        bands, uses_mfcc, how = 80, False, "its encoder's input"
    elif "logmel" in needs:
        bands, uses_mfcc, how = CNN_MELS, False, "its input frames"
    elif "paper_mel" in needs or "paper_mfcc" in needs:
        bands, uses_mfcc, how = 128, True, "it sees their time means"
    elif "summary" in needs:
        bands, uses_mfcc, how = 40, True, "it sees their means and deviations"
    else:  # features this function does not know (a pretrained encoder's): the CNNs' view
        bands, uses_mfcc, how = CNN_MELS, False, "not its own input"
    if whisper:
        from .features import whisper_log_mel

        S_db = whisper_log_mel(y, n_mels=bands)
    else:
        S_db = power_to_db(mel_filterbank(n_mels=bands) @ P)
    mf = mfcc_from_log_mel(power_to_db(mel_filterbank(n_mels=128) @ P))[1:] if uses_mfcc else None

    plt = _plt()
    panels = ["wave"] + (["mfcc"] if uses_mfcc else []) + ["mel"] + (["timeline"] if result is not None else [])
    heights = {"wave": 1.0, "mfcc": 1.2, "mel": 1.9 if not uses_mfcc else 1.6, "timeline": 1.5}
    with plt.rc_context({"font.size": 10}):
        fig = plt.figure(figsize=TIMELINE_FIGSIZE if result is not None else CLIP_FIGSIZE, dpi=DPI)
        gs = fig.add_gridspec(
            len(panels),
            2,
            width_ratios=[1, 0.018],
            height_ratios=[heights[p] for p in panels],
            wspace=0.02,
            hspace=0.42,
            left=0.08,
            right=0.86 if result is not None else 0.92,
            top=0.92 if result is not None else 0.9,
            bottom=0.06,
        )
        axes = {}
        for i, name in enumerate(panels):
            axes[name] = fig.add_subplot(gs[i, 0], sharex=axes.get("wave"))
        _waveform(axes["wave"], y, SAMPLE_RATE)
        extent = (0, duration)
        lim = None
        if mf is not None:
            lim = float(np.percentile(np.abs(mf), 99)) or 1.0
            im = axes["mfcc"].imshow(
                mf,
                origin="lower",
                aspect="auto",
                cmap="coolwarm",
                vmin=-lim,
                vmax=lim,
                interpolation="nearest",
                extent=(*extent, 0.5, mf.shape[0] + 0.5),
            )
            axes["mfcc"].set_ylabel("coefficient")
            axes["mfcc"].set_title(f"MFCC 1-{mf.shape[0]} of the 128-band log-mel (c0, the level, left out)")
            fig.colorbar(im, cax=fig.add_subplot(gs[panels.index("mfcc"), 1]))
        lo = float(np.percentile(S_db, 2)) if S_db.size else 0.0
        im = axes["mel"].imshow(
            S_db,
            origin="lower",
            aspect="auto",
            cmap="magma",
            interpolation="nearest",
            vmin=lo,
            vmax=float(S_db.max()) if S_db.size else 1.0,
            extent=(*extent, 0, S_db.shape[0]),
        )
        axes["mel"].set_ylabel("mel band")
        axes["mel"].set_title(
            f"{'Whisper ' if whisper else ''}log-mel, {bands} bands, 10 ms frames (model {model_name}: {how})"
        )
        fig.colorbar(im, cax=fig.add_subplot(gs[panels.index("mel"), 1])).set_label(
            "(log10 power + 4) / 4" if whisper else "dB"
        )
        if result is not None:
            _timeline(axes["timeline"], result, list(model.labels), duration, window_s)
        else:
            axes["mel"].set_xlabel("time (s)")
        axes["wave"].set_xlim(0, duration)
        fig.suptitle(f"{Path(path).name}: {duration:.2f} s (stored {info.sample_rate} Hz, {info.channels} ch)")
    import io
    import struct

    from .report import AtomicFile

    png = io.BytesIO()
    try:
        fig.savefig(png, dpi=DPI, format="png")
    finally:
        plt.close(fig)
    # atomic for a regular file; a device or pipe (-o /dev/stdout) is written in place
    with AtomicFile(out, binary=True) as f:
        f.f.write(png.getvalue())
    w, h = struct.unpack(">II", png.getvalue()[16:24])
    return {
        "path": path,
        "out": str(out),
        "duration_s": round(duration, 3),
        "sample_rate": info.sample_rate,
        "channels": info.channels,
        "width": w,
        "height": h,
        "label": result.label if result is not None else None,
        "segments": [s.__dict__ for s in result.segments or []] if result is not None else None,
        "model": model_name,
        "mel_bands": bands,
        "mel": "whisper" if whisper else "sercli",
        "mfcc_coefficients": list(range(1, mf.shape[0] + 1)) if mf is not None else None,
        "mfcc_colour_limit": lim if mf is not None else None,
        "timeline_spans": _own_spans(result.segments or [], duration) if result is not None else None,
    }


def plot_confusion(metrics: dict, path: Path, title: str) -> None:
    """The confusion matrix of `metrics` (sercli.metrics.evaluate), normalised per true label,
    counts in brackets: used by training's model cards and by `sercli evaluate --output`."""
    import numpy as np

    plt = _plt()
    labels = metrics["labels"]
    cm = np.array(metrics["confusion_normalized"])
    counts = np.array(metrics["confusion"])
    fig, ax = plt.subplots(figsize=(1.1 * len(labels) + 2, 1.1 * len(labels) + 1))
    ax.imshow(cm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(
                j,
                i,
                f"{cm[i, j]:.2f}\n({counts[i, j]})",
                ha="center",
                va="center",
                color="white" if cm[i, j] > 0.5 else "black",
                fontsize=8,
            )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}: acc {metrics['accuracy']:.3f}, UAR {metrics['uar']:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
