"""Scoring a model on labelled data: the library behind `sercli evaluate`.

Any data `corpora.scan` recognises (corpus file names, one folder per label, CSV manifests)
is restricted to a split of the canonical speaker split, its labels are mapped onto the
model's label set (clips whose label the model lacks are skipped and counted by label), its
features come from `dataset.extract_dataset` (cached, parallel) and the model scores whole
clips in length-sorted batches.

Whole clips versus `sercli classify`: classify cuts recordings longer than 1.25 x its window
(5 s by default) into windows and averages them; for shorter clips it scores the whole clip,
as here. The one difference is that the feature cache stores the CNN's log-mel as float16
(classify computes float32); the models are trained on the same float16 features, and the
change in probabilities is below 1e-3 (tests/test_evaluate.py bounds it). Clips that classify
refuses (silent, too short, undecodable; `runtime.windows.refusal`, the same rule) are refused here
too, counted as failed with classify's message.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .corpora import Clip, harmonise, scan, speaker_split, split_of, splits_of
from .errors import CorpusError
from .runtime.grouping import clip_groups

SPLITS = ("test", "val", "train", "all")
#: clips per model call
BATCH_CLIPS = 64


def select_split(clips: list[Clip], split: str | None, table: dict | None = None) -> tuple[list[Clip], str]:
    """Clips of one canonical split ("test", "val", "train") or all of them ("all").

    split None: "test" when some clip belongs to a test speaker of the canonical split, else
    "all". Speakers not in speakers.csv get the split that `train` gives them (splits_of);
    clips without a speaker (one folder per label) count only for "all".
    """
    table = speaker_split() if table is None else table
    if split is None:
        split = "test" if any(split_of(c, table) == "test" for c in clips) else "all"
    if split not in SPLITS:
        raise CorpusError(f"unknown split {split!r} (choose {', '.join(SPLITS)})")
    if split == "all":
        return list(clips), split
    # clips without a speaker have no speaker-independent split: they count only for "all"
    return [c for c, s in zip(clips, splits_of(list(clips), table)) if s == split and c.speaker], split


class EncodedSet:
    """Clips with their feature dicts, for models that read a Whisper encoder's outputs (and
    whatever classic features an ensemble's other members need)."""

    def __init__(self, clips, feats, failed):
        self.clips, self.feats, self.failed = clips, feats, failed


def extract_for_model(m, clips: list[Clip], *, jobs: int, cache_dir, progress: bool):
    """A dataset.FeatureSet, or an EncodedSet when the model reads encoder outputs."""
    from .dataset import extract_dataset
    from .models import parse_encoded_key, pooled_stats

    keys = [k for k in m.needs if parse_encoded_key(k)]
    if not keys:
        return extract_dataset(clips, jobs=jobs, cache_dir=cache_dir, progress=progress)
    from .encoded import encode_clips
    from .models import weights_dir

    # encoder outputs are large (about 0.3 MB per clip): cached only where --cache asks
    enc_cache = Path(cache_dir) / "encoded" if cache_dir is not None else None
    kept = {c.path: {} for c in clips}
    failed: list[str] = []
    for key in keys:
        fname, layers, precision = parse_encoded_key(key)
        full = tuple(range(1, max(layers) + 1))  # the cache holds every block up to the top one
        got, hs, bad = encode_clips(
            clips,
            weights_dir() / fname,
            full,
            jobs=jobs,
            cache_dir=enc_cache,
            progress=progress,
            precision=precision,
        )
        failed += bad
        have = {c.path: h for c, h in zip(got, hs)}
        for p in list(kept):
            if p in have:
                kept[p][key] = pooled_stats(have[p][[x - 1 for x in layers]])
            else:
                del kept[p]
    classic = [k for k in m.needs if not parse_encoded_key(k)]
    if classic:
        fs = extract_dataset([c for c in clips if c.path in kept], jobs=jobs, cache_dir=cache_dir, progress=progress)
        failed += fs.failed
        rest = {c.path: i for i, c in enumerate(fs.clips)}
        for p in list(kept):
            if p not in rest:
                del kept[p]
                continue
            i = rest[p]
            kept[p].update(
                logmel=fs.logmel[i], paper_mel=fs.paper_mel[i], paper_mfcc=fs.paper_mfcc[i], summary=fs.summary[i]
            )
    out = [c for c in clips if c.path in kept]
    return EncodedSet(out, [kept[c.path] for c in out], sorted(set(failed)))


def _feature_dicts(fs, idx) -> list[dict]:
    if isinstance(fs, EncodedSet):
        return [fs.feats[i] for i in idx]
    return [
        {"logmel": fs.logmel[i], "paper_mel": fs.paper_mel[i], "paper_mfcc": fs.paper_mfcc[i], "summary": fs.summary[i]}
        for i in idx
    ]


def predict_clips(model, fs) -> np.ndarray:
    """Probabilities (n, n_labels) of every clip of a dataset.FeatureSet, whole clips.

    Model.predict_proba never pads a log-mel sequence (padding is not neutral in a trained
    EmotionCNN), so each clip scores as `classify_file` gives it, whatever the chunking here.
    """
    n = len(fs.clips)
    out = np.zeros((n, len(model.labels)), np.float32)
    for s in range(0, n, BATCH_CLIPS):
        idx = range(s, min(n, s + BATCH_CLIPS))
        feats = _feature_dicts(fs, idx)
        out[s : s + len(feats)] = model.predict_proba(feats)
    return out


def predict_clips_grouped(model, fs, groups: list) -> np.ndarray:
    """Like predict_clips, with each group's inputs normalised together (models with
    supports_group_norm)."""
    return model.predict_proba_grouped(_feature_dicts(fs, range(len(fs.clips))), groups)


def evaluate_model(
    data: str | os.PathLike,
    model="whisper-tiny",
    split: str | None = None,
    *,
    jobs: int = -1,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
    warn: Callable[[str], None] | None = None,
    normalize_by: str | None = None,
) -> dict:
    """Score `model` (name, file or loaded Model) on the labelled clips under `data`.

    `normalize_by="speaker"|"folder"` normalises the inputs over each group of the scored
    clips (clip_groups; models with supports_group_norm), as `classify --normalize-by` does.

    Returns a JSON-ready dict: model, data, split, n, labels, accuracy, uar, macro_f1,
    per_class, confusion, confusion_normalized, per_corpus, skipped (label -> clips whose
    label the model lacks), failed (one line per file that could not be decoded), unmatched
    (files whose names no convention matched), and predictions (one dict per scored clip).
    Raises CorpusError when nothing is left to score.
    """
    from .metrics import evaluate
    from .runtime.classify import resolve_model
    from .runtime.grouping import group_setup

    m = resolve_model(model, warn=warn)
    group_setup(m, [], normalize_by, warn=warn)  # checks the model takes it; warns if needed
    by = None if normalize_by in (None, "none") else normalize_by
    sc = scan(data)
    if not sc.clips:
        raise CorpusError(
            f"{data}: no labelled clips found ({len(sc.unmatched)} audio files "
            "match no corpus naming, label folder or manifest)"
        )
    selected, split = select_split(sc.clips, split)
    if not selected:
        raise CorpusError(
            f"{data}: none of its {len(sc.clips)} labelled clips belongs to the "
            f"{split} speakers of the canonical split (try --split all)"
        )
    to_model = {harmonise(lab): lab for lab in m.labels}
    kept, skipped = [], Counter()
    for c in selected:
        if c.label in to_model:
            kept.append(c)
        else:
            skipped[c.label] += 1
    if not kept:
        raise CorpusError(
            f"{data}: no clip in the {split} split has a label of model {m.name} "
            f"({', '.join(m.labels)}); skipped: " + ", ".join(f"{k} {v}" for k, v in sorted(skipped.items()))
        )
    refused = _refusals(kept, jobs, progress)
    fs = extract_for_model(
        m, [c for c, r in zip(kept, refused) if r is None], jobs=jobs, cache_dir=cache_dir, progress=progress
    )
    fs.failed[:0] = [r for r in refused if r is not None]
    if not fs.clips:
        raise CorpusError(
            f"{data}: none of the {len(kept)} clips could be decoded "
            f"(first error: {fs.failed[0] if fs.failed else '?'})"
        )
    proba = predict_clips_grouped(m, fs, clip_groups(fs.clips, by)) if by else predict_clips(m, fs)
    pred = [m.labels[i] for i in proba.argmax(1)]
    true = [to_model[c.label] for c in fs.clips]
    metrics = evaluate(true, pred, list(m.labels), [c.corpus for c in fs.clips])
    predictions = [
        {
            "path": c.path,
            "corpus": c.corpus,
            "speaker": c.speaker,
            "label": t,
            "predicted": p,
            "confidence": round(float(pr.max()), 6),
            "scores": {lab: round(float(v), 6) for lab, v in zip(m.labels, pr)},
        }
        for c, t, p, pr in zip(fs.clips, true, pred, proba)
    ]
    return {
        "model": m.name,
        "model_kind": m.kind,
        "model_path": m.path,
        "model_sha256": m.sha256,
        "data": os.fspath(data),
        "split": split,
        "normalize_by": by or "none",
        **metrics,
        "skipped": dict(sorted(skipped.items())),
        "n_skipped": sum(skipped.values()),
        "failed": list(fs.failed),
        "n_failed": len(fs.failed),
        "unmatched": len(sc.unmatched),
        "predictions": predictions,
    }


def _refusals(clips: list[Clip], jobs: int, progress: bool) -> list[str | None]:
    """For each clip, the error `classify` would give it (silent, too short, undecodable), or
    None: a pass over the audio in parallel, about 1 ms of CPU per clip."""
    from joblib import Parallel, delayed
    from tqdm import tqdm

    from .runtime.windows import refusal

    it = Parallel(n_jobs=jobs, return_as="generator", batch_size=32)(delayed(refusal)(c.path) for c in clips)
    return list(
        tqdm(
            it,
            total=len(clips),
            desc="audio check",
            unit="clip",
            file=sys.stderr,
            disable=not progress,
            mininterval=1.0,
        )
    )


def report(result: dict) -> dict:
    """The result without per-clip predictions (what --format json prints and metrics.json holds)."""
    return {k: v for k, v in result.items() if k != "predictions"}


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    from .report import csv_cell

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows([[csv_cell(c) for c in r] for r in rows])  # no formulas from file names


def write_outputs(result: dict, out: str | os.PathLike) -> list[Path]:
    """metrics.json, per_class.csv, per_corpus.csv, confusion.csv, confusion_normalized.csv,
    predictions.csv and confusion.png in folder `out`; returns their paths."""
    from .plots import plot_confusion

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    labels = result["labels"]
    paths = {
        k: out / k
        for k in (
            "metrics.json",
            "per_class.csv",
            "per_corpus.csv",
            "confusion.csv",
            "confusion_normalized.csv",
            "predictions.csv",
            "confusion.png",
        )
    }
    paths["metrics.json"].write_text(json.dumps(report(result), indent=1, allow_nan=False) + "\n")
    _write_csv(
        paths["per_class.csv"],
        ["label", "precision", "recall", "f1", "support"],
        [
            [lab, f"{v['precision']:.6f}", f"{v['recall']:.6f}", f"{v['f1']:.6f}", v["support"]]
            for lab, v in result["per_class"].items()
        ],
    )
    _write_csv(
        paths["per_corpus.csv"],
        ["corpus", "n", "accuracy", "uar", "macro_f1"],
        [
            [c, v["n"], f"{v['accuracy']:.6f}", f"{v['uar']:.6f}", f"{v['macro_f1']:.6f}"]
            for c, v in result["per_corpus"].items()
        ],
    )
    _write_csv(
        paths["confusion.csv"],
        ["true\\predicted"] + labels,
        [[lab] + row for lab, row in zip(labels, result["confusion"])],
    )
    _write_csv(
        paths["confusion_normalized.csv"],
        ["true\\predicted"] + labels,
        [[lab] + row for lab, row in zip(labels, result["confusion_normalized"])],
    )
    _write_csv(
        paths["predictions.csv"],
        ["path", "corpus", "speaker", "label", "predicted", "correct", "confidence"]
        + [f"score_{lab}" for lab in labels],
        [
            [
                p["path"],
                p["corpus"],
                p["speaker"] or "",
                p["label"],
                p["predicted"],
                int(p["label"] == p["predicted"]),
                p["confidence"],
            ]
            + [p["scores"][lab] for lab in labels]
            for p in result.get("predictions", [])
        ],
    )
    plot_confusion(result, paths["confusion.png"], f"{result['model']} on {result['split']}")
    return list(paths.values())


def render_table(result: dict, console) -> None:
    """The result as rich tables on `console`."""
    from rich.table import Table

    console.print(
        f"[bold]{result['model']}[/bold] ({result['model_kind']}) on {result['data']}, "
        f"split [bold]{result['split']}[/bold]: {result['n']} clips"
        + (f", features normalised by {result['normalize_by']}" if result.get("normalize_by", "none") != "none" else "")
    )
    t = Table(title="overall")
    for col in ("n", "accuracy", "UAR", "macro-F1"):
        t.add_column(col, justify="right")
    t.add_row(str(result["n"]), f"{result['accuracy']:.3f}", f"{result['uar']:.3f}", f"{result['macro_f1']:.3f}")
    console.print(t)
    t = Table(title="per class")
    t.add_column("label")
    for col in ("precision", "recall", "F1", "support"):
        t.add_column(col, justify="right")
    for lab, v in result["per_class"].items():
        t.add_row(lab, f"{v['precision']:.3f}", f"{v['recall']:.3f}", f"{v['f1']:.3f}", str(v["support"]))
    console.print(t)
    t = Table(title="confusion (rows true, columns predicted; counts)")
    t.add_column("true")
    for lab in result["labels"]:
        t.add_column(lab[:7], justify="right")
    for lab, row in zip(result["labels"], result["confusion"]):
        t.add_row(lab, *(str(v) for v in row))
    console.print(t)
    if result.get("per_corpus"):
        t = Table(title="per corpus")
        t.add_column("corpus")
        for col in ("n", "accuracy", "UAR", "macro-F1"):
            t.add_column(col, justify="right")
        for c, v in result["per_corpus"].items():
            t.add_row(c, str(v["n"]), f"{v['accuracy']:.3f}", f"{v['uar']:.3f}", f"{v['macro_f1']:.3f}")
        console.print(t)
    notes = []
    if result["n_skipped"]:
        notes.append(
            f"skipped {result['n_skipped']} clips with labels the model lacks: "
            + ", ".join(f"{k} {v}" for k, v in result["skipped"].items())
        )
    if result["n_failed"]:
        notes.append(f"{result['n_failed']} files could not be decoded (listed on stderr)")
    for line in notes:
        console.print(line)
