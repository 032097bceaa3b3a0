"""Trained models side by side on the canonical split, alone and in pairs. Writes compare.md/.json.

    python -m train.compare_models --data ~/corpora --cache ~/.cache/sercli/features \
        --model cnn=weights/cnn.pt --model svm=weights/svm.npz \
        --model cnn-spk=runs/cnn-spk/cnn-spk.pt --model svm-spk=runs/svm-spk/svm-spk.npz

For each model file: val and test metrics of single-clip use (each clip alone, as `classify`
without --normalize-by) and, for models that support it, of `--normalize-by speaker` (each
speaker's clips of the split normalised together). Then every pair of those: the weighted
mean of their probabilities, the weight chosen on the val speakers (0, 0.1, ..., 1), scored on
the test speakers (pairs of one mode: both single, or both per speaker). And for the models
that support --normalize-by, UAR by group size: each speaker's clips cut at random into groups
of n clips (as train/normalize_experiment.py does for the SVMs), and groups of one emotion.
With three or more models of one mode, also their plain mean (equal weights, nothing tuned).
Test speakers only ever score: they choose nothing.
Every number in the output is computed here; nothing is typed by hand.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import sys
from pathlib import Path

import numpy as np

from sercli.corpora import scan
from sercli.dataset import extract_dataset
from sercli.evaluate import predict_clips, predict_clips_grouped
from sercli.metrics import evaluate
from sercli.models import load_file
from sercli.runtime.grouping import clip_groups
from sercli.training.splits import make_splits, subset
from train.normalize_experiment import GROUP_SIZES, one_emotion_groups, sized_groups, uar

REPO = Path(__file__).resolve().parents[1]

WEIGHTS = np.round(np.linspace(0, 1, 11), 2)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def val_test_parts(data: str, labels: list[str], jobs: int, cache: str | None, protocol: str = "speaker") -> dict:
    """The clips of `labels` of the val and test parts of `protocol` (the canonical speaker
    split, or loco:CORPUS: val = the other corpora's val speakers, test = every clip of
    CORPUS), with their features (from the cache when there)."""
    splits = make_splits(scan(data).clips, labels, protocol, 0)
    clips = splits["val"] + splits["test"]
    fs = extract_dataset(clips, jobs=jobs, cache_dir=cache, progress=False)
    val = {c.path for c in splits["val"]}
    return {
        "val": subset(fs, [i for i, c in enumerate(fs.clips) if c.path in val]),
        "test": subset(fs, [i for i, c in enumerate(fs.clips) if c.path not in val]),
    }


def proba_in_mode(m, part, mode: str) -> np.ndarray:
    """A model's probabilities on `part`: each clip alone ("single") or with each speaker's
    clips normalised together ("speaker")."""
    if mode == "single":
        return predict_clips(m, part)
    return predict_clips_grouped(m, part, clip_groups(part.clips, "speaker"))


def slim(r: dict) -> dict:
    """The headline numbers of a metrics dict, with per-corpus UAR."""
    return {
        **{k: r[k] for k in ("n", "accuracy", "uar", "macro_f1")},
        "per_corpus_uar": {c: v["uar"] for c, v in r["per_corpus"].items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--cache", default=None)
    ap.add_argument("--jobs", type=int, default=-1)
    ap.add_argument("--model", action="append", required=True, metavar="NAME=PATH")
    ap.add_argument("--out", type=Path, default=REPO / "train" / "results")
    a = ap.parse_args()
    models = dict(m.split("=", 1) for m in a.model)
    loaded = {name: load_file(path, name=name) for name, path in models.items()}
    labels = list(next(iter(loaded.values())).labels)
    if any(list(m.labels) != labels for m in loaded.values()):
        raise SystemExit("all models must share one label order")
    parts = val_test_parts(a.data, labels, a.jobs, a.cache)
    truth = {s: [c.label for c in p.clips] for s, p in parts.items()}
    corpora = {s: [c.corpus for c in p.clips] for s, p in parts.items()}

    proba: dict[str, dict[str, np.ndarray]] = {}  # "name/mode" -> split -> (n, L)
    for name, m in loaded.items():
        modes = ["single"] + (["speaker"] if m.supports_group_norm else [])
        for mode in modes:
            key = f"{name} / {mode}"
            log(f"scoring {key} ...")
            proba[key] = {s: proba_in_mode(m, p, mode) for s, p in parts.items()}

    def score(p: dict[str, np.ndarray]) -> dict:
        return {s: evaluate(truth[s], [labels[i] for i in p[s].argmax(1)], labels, corpora[s]) for s in parts}

    rows = []
    for key, p in proba.items():
        r = score(p)
        rows.append({"what": key, "weight": None, **{s: r[s] for s in parts}})
    for ka, kb in itertools.combinations(proba, 2):
        (ma, moda), (mb, modb) = ka.split(" / "), kb.split(" / ")
        if ma == mb or moda != modb:
            continue  # one model with itself, or mixed modes
        pa, pb = proba[ka], proba[kb]
        val_uar = [
            evaluate(truth["val"], [labels[i] for i in (w * pa["val"] + (1 - w) * pb["val"]).argmax(1)], labels)["uar"]
            for w in WEIGHTS
        ]
        w = float(WEIGHTS[int(np.argmax(val_uar))])
        r = score({s: w * pa[s] + (1 - w) * pb[s] for s in parts})
        rows.append({"what": f"{w:.1f} x ({ka}) + {1 - w:.1f} x ({kb})", "weight": w, **{s: r[s] for s in parts}})

    for mode in ("single", "speaker"):  # every model of one mode, equal weights (nothing tuned)
        keys = [k for k in proba if k.endswith(f" / {mode}")]
        if len(keys) >= 3:
            r = score({s: np.mean([proba[k][s] for k in keys], axis=0) for s in parts})
            rows.append(
                {"what": "mean of " + ", ".join(f"({k})" for k in keys), "weight": None, **{s: r[s] for s in parts}}
            )

    sizes: dict[str, dict] = {}
    for name, m in loaded.items():
        if not m.supports_group_norm:
            continue
        log(f"group sizes for {name} ...")
        row = {}
        for part in ("val", "test"):
            p = parts[part]
            row[part] = {str(n): uar(m, p, sized_groups(p, n)) for n in GROUP_SIZES}
            row[part]["one emotion"] = uar(m, p, one_emotion_groups(p))
        sizes[name] = row

    a.out.mkdir(parents=True, exist_ok=True)
    slimmed = [{"what": r["what"], "weight": r["weight"], **{s: slim(r[s]) for s in parts}} for r in rows]
    command = shlex.join(["python", "-m", "train.compare_models", *sys.argv[1:]])
    (a.out / "compare.json").write_text(
        json.dumps({"command": command, "models": models, "rows": slimmed, "group_size": sizes}, indent=1) + "\n"
    )
    corp = sorted(slimmed[0]["test"]["per_corpus_uar"])
    lines = [
        "# Models alone and in pairs, canonical speaker split (train/compare_models.py)",
        "",
        "Single: each clip alone (`classify` without `--normalize-by`). Speaker: each speaker's "
        "clips of the split normalised together (`--normalize-by speaker`). Pairs: the mean of "
        "the two models' probabilities weighted w : 1-w, w chosen on the val speakers. Mean of: "
        "every model of one mode (three or more), equal weights.",
        "",
        "Models: " + ", ".join(f"`{k}` = `{v}`" for k, v in models.items()),
        "",
        f"Command: `{command}`",
        "",
        "| model / mode | val acc | val UAR | test acc | test UAR | test macro-F1 | "
        + " | ".join(f"test UAR {c}" for c in corp)
        + " |",
        "|---|---|---|---|---|---|" + "---|" * len(corp),
    ]
    for r in slimmed:
        v, t = r["val"], r["test"]
        lines.append(
            f"| {r['what']} | {v['accuracy']:.3f} | {v['uar']:.3f} | {t['accuracy']:.3f} | "
            f"**{t['uar']:.3f}** | {t['macro_f1']:.3f} | "
            + " | ".join(f"{t['per_corpus_uar'][c]:.3f}" for c in corp)
            + " |"
        )
    lines += ["", f"n: val {slimmed[0]['val']['n']}, test {slimmed[0]['test']['n']} clips."]
    if sizes:
        cols = [str(n) for n in GROUP_SIZES] + ["one emotion"]
        lines += [
            "",
            "## UAR by group size (`--normalize-by`)",
            "",
            "Each speaker's clips cut at random into groups of n clips, each group normalised "
            "together (n = 1: every clip alone; all: one group per speaker); `one emotion`: "
            "groups of one speaker and one emotion, the worst case.",
            "",
            "| model | split | " + " | ".join(cols) + " |",
            "|---|---|" + "---|" * len(cols),
        ]
        for name, row in sizes.items():
            for part in ("val", "test"):
                lines.append(f"| {name} | {part} | " + " | ".join(f"{row[part][c]:.3f}" for c in cols) + " |")
    (a.out / "compare.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
