#!/usr/bin/env python3
"""Reproduce the seed paper's Table 2, and score the same models under stricter protocols.

    python -m train.reproduce --data ~/corpora --out train/results [--epochs-scale F] [--only ...]

Trains and evaluates the paper's three models (linear SVM baseline, dual RNN, dual-branch
CNN) and sercli's CNN, each from its recipe (bundled, or the lab's train/recipes), under three protocols:

- paper:   the paper's 5 classes, balanced by downsampling, random stratified 70/15/15
           (speakers shared between train and test, as in the paper);
- speaker: 6 classes, the canonical speaker-independent split (sercli/data/speakers.csv);
- loco:    leave one corpus out, 6 classes: test on every clip of one corpus; train and
           select on the canonical train / val speakers of the other corpora (see
           sercli.training.splits.loco_split), once for each corpus present in the data.

Each run is `sercli.training.run.run`, which writes weights, a model card with its metrics and plots
to OUT/<model>/<protocol>/. The script then writes OUT/results.json (everything) and
OUT/results.md (the paper's Table 2 beside this run's numbers). Every number of this run is
read from the model cards; the only numbers in this file are the paper's own Table 2.
With --resume, a run whose model card already exists in OUT for the same recipe and epochs
is reused instead of retrained (to continue an interrupted reproduction on the same data).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
import traceback
from pathlib import Path

from sercli.corpora import PAPER_CLASSES, SIX_CLASSES

HERE = Path(__file__).resolve().parent

#: model key -> recipe per protocol family ("*" for any other; a family absent without "*" is
#: not run), and its name in the tables. The *-loco and seed-rnn-short recipes are their base
#: recipe with fewer epochs: four leave-one-corpus-out trainings cost about 2.6 full ones.
MODELS = {
    "svm": ({"*": "paper-svm"}, "SVM baseline (linear, paper features)"),
    "rnn": ({"paper": "seed-rnn", "*": "seed-rnn-short"}, "RNN (paper's dual RNN)"),
    "seed-cnn": ({"*": "seed-cnn"}, "CNN (paper's dual-branch CNN)"),
    "cnn": ({"paper": "cnn-paper", "speaker": "cnn", "loco": "cnn-loco"}, "sercli CNN (ours)"),
    "svm-spk": (
        {"speaker": "svm-spk", "loco": "svm-spk"},
        "sercli SVM, speaker-normalised (ours, --normalize-by speaker)",
    ),
    "cnn-spk": (
        {"speaker": "cnn-spk", "loco": "cnn-spk-loco"},
        "sercli CNN, speaker-normalised (ours, --normalize-by speaker)",
    ),
    "cnn-spk3": (
        {"speaker": "cnn-spk3", "loco": "cnn-spk3-loco"},
        "sercli CNN 3, speaker-normalised (ours, member of cnn-spk-ens, --normalize-by speaker)",
    ),
}
#: the seed paper's Table 2, testing accuracy (its human figure cites Tsai & Chen, 2022)
PAPER_TABLE2 = {"svm": 0.38, "rnn": 0.43, "seed-cnn": 0.62, "human": 0.72}
LOCO_CORPORA = ("cremad", "ravdess", "savee", "tess")
PROTOCOL_NAMES = {
    "paper": "paper protocol (5 classes, balanced, random 70/15/15)",
    "speaker": "speaker-independent (6 classes, canonical split)",
    "loco": "leave one corpus out (6 classes)",
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def plan(corpora_present: list[str]) -> list[dict]:
    """Every (model, protocol) run, in order."""
    runs = []
    for model, (recipes, _) in MODELS.items():
        protocols = [("paper", "paper", list(PAPER_CLASSES)), ("speaker", "speaker", list(SIX_CLASSES))]
        protocols += [("loco", f"loco:{c}", list(SIX_CLASSES)) for c in corpora_present]
        for family, protocol, labels in protocols:
            if family not in recipes and "*" not in recipes:
                continue
            tag = protocol.replace(":", "-")
            runs.append(
                {
                    "id": f"{model}/{protocol}",
                    "model": model,
                    "family": family,
                    "protocol": protocol,
                    "tag": tag,
                    "labels": labels,
                    "recipe": recipes.get(family, recipes.get("*")),
                }
            )
    return runs


def select(runs: list[dict], only: list[str] | None) -> list[dict]:
    """--only: model keys, protocol families or protocols (loco:tess), or run ids (cnn/paper);
    a run is kept when it matches every kind of filter given."""
    if not only:
        return runs
    tokens = [t for arg in only for t in arg.split(",") if t]
    ids = {t for t in tokens if "/" in t}
    models = {t for t in tokens if t in MODELS}
    protocols = {t for t in tokens if t in PROTOCOL_NAMES or t.startswith("loco:")}
    unknown = set(tokens) - ids - models - protocols
    if unknown:
        raise SystemExit(
            f"reproduce.py: --only: unknown {', '.join(sorted(unknown))} (models: "
            f"{', '.join(MODELS)}; protocols: paper, speaker, loco, loco:<corpus>; "
            "or ids such as cnn/paper)"
        )
    return [
        r
        for r in runs
        if r["id"] in ids
        or (
            (models or protocols)
            and (not models or r["model"] in models)
            and (not protocols or r["family"] in protocols or r["protocol"] in protocols)
        )
    ]


def corpora_in(data: str) -> list[str]:
    from sercli.corpora import scan

    sc = scan(data)
    present = {c.corpus for c in sc.clips if c.label in SIX_CLASSES}
    return [c for c in LOCO_CORPORA if c in present]


def short_metrics(m: dict) -> dict:
    return {k: m[k] for k in ("n", "accuracy", "uar", "macro_f1", "per_corpus") if k in m}


def run_one(r: dict, args, command: str) -> dict:
    from sercli.errors import SercliError
    from sercli.training.recipe import load_recipe, training_keys
    from sercli.training.run import run

    recipe = load_recipe(
        r["recipe"],
        {"protocol": r["protocol"], "labels": r["labels"], "name": f"{r['model']}-{r['tag']}"},
        folder=HERE / "recipes",
    )
    epochs = max(1, round(recipe.epochs * args.epochs_scale))
    out = Path(args.out) / r["model"] / r["tag"]
    card_file = out / f"{recipe.name}.card.json"
    row = {
        **{k: r[k] for k in ("id", "model", "family", "protocol", "recipe", "labels")},
        "epochs": epochs if recipe.model != "svm" else None,
    }
    t0 = time.time()
    card, reused = None, False
    if args.resume and card_file.is_file():
        try:
            old = json.loads(card_file.read_text())
            # cnn-loco inherits the default's description: only the training keys decide
            same = training_keys(old.get("recipe", {})) == training_keys(recipe.as_dict())
            if same and old.get("epochs") == epochs:
                card, reused = old, True
        except (OSError, ValueError):
            pass
    if card is None:
        log(f"=== {r['id']}: recipe {r['recipe']}, {epochs} epochs -> {out}")
        try:
            card = run(
                args.data,
                recipe=recipe,
                out=out,
                epochs=epochs,
                jobs=args.jobs,
                threads=args.threads,
                cache_dir=args.cache,
                command=command,
                progress=False,
            )
        except SercliError as exc:
            log(f"--- {r['id']}: not run: {exc}")
            return {**row, "status": "skipped", "reason": " ".join(str(exc).split())}
        except Exception as exc:  # keep going: one broken run must not lose the others
            log(f"--- {r['id']}: failed:\n{traceback.format_exc()}")
            return {
                **row,
                "status": "error",
                "reason": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(),
            }
    base = Path(args.out)
    return {
        **row,
        "status": "ok",
        "reused": reused,
        "card": str(card_file.relative_to(base)),
        "weights": str((out / card["weights"]).relative_to(base)),
        "sha256": card["sha256"],
        "data": card["data"],
        "val": short_metrics(card["metrics"]["val"]) if "val" in card["metrics"] else None,
        "test": short_metrics(card["metrics"]["test"]) if "test" in card["metrics"] else None,
        "seconds": card.get("seconds", {}).get("total") if not reused else None,
        "wall_seconds": round(time.time() - t0, 1),
    }


# ---------------------------------------------------------------- report


def pct(v, digits: int = 1) -> str:
    return "–" if v is None else f"{100 * v:.{digits}f}%"


def _ok(results, model, protocol):
    for x in results:
        if x["model"] == model and x["protocol"] == protocol and x["status"] == "ok" and x["test"]:
            return x["test"]
    return None


def markdown(res: dict) -> str:
    runs = res["runs"]
    loco = [c for c in LOCO_CORPORA if any(x["protocol"] == f"loco:{c}" for x in runs)]
    L = [
        "# Seed paper's Table 2, reproduced",
        "",
        f"Generated by `{res['command']}` on {res['finished']} ({res['seconds']:.0f} s), data "
        f"`{res['data']}`, epochs scaled by {res['epochs_scale']}. Every number of this run is read "
        "from the model cards it wrote (results.json has them all); the paper column is the paper's "
        "Table 2. Accuracy is on each protocol's test set; UAR is the mean recall over classes.",
        "",
        "## Test accuracy beside the paper's Table 2",
        "",
        "| model | paper, Table 2 | paper protocol: accuracy | UAR | speaker-independent: accuracy "
        "| UAR | macro-F1 | leave one corpus out: mean accuracy | mean UAR |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for model, (_, title) in MODELS.items():
        p, s = _ok(runs, model, "paper"), _ok(runs, model, "speaker")
        lo = [m for c in loco if (m := _ok(runs, model, f"loco:{c}"))]
        mean = (lambda k, lo=lo: sum(m[k] for m in lo) / len(lo)) if lo else (lambda k: None)
        n_lo = f" ({len(lo)} of {len(loco)})" if lo and len(lo) < len(loco) else ""
        L.append(
            f"| {title} | {pct(PAPER_TABLE2.get(model), 0)} | {pct(p and p['accuracy'])} | "
            f"{pct(p and p['uar'])} | {pct(s and s['accuracy'])} | {pct(s and s['uar'])} | "
            f"{pct(s and s['macro_f1'])} | {pct(mean('accuracy'))}{n_lo} | {pct(mean('uar'))} |"
        )
    L.append(
        f"| human ear (Tsai & Chen, 2022, as cited by the paper) | {pct(PAPER_TABLE2['human'], 0)} | | | | | | | |"
    )
    if loco:
        L += [
            "",
            "## Leave one corpus out: test UAR by held-out corpus",
            "",
            "| model | " + " | ".join(loco) + " |",
            "|---" * (len(loco) + 1) + "|",
        ]
        for model, (_, title) in MODELS.items():
            cells = [_ok(runs, model, f"loco:{c}") for c in loco]
            L.append(f"| {title} | " + " | ".join(pct(m and m["uar"]) for m in cells) + " |")
        L += [
            "",
            "## Unseen corpus against unseen speakers of a seen corpus",
            "",
            "Per corpus: test UAR when the corpus was left out of training (leave one corpus out) "
            "and when only its speakers were (the speaker-independent run's test speakers of that "
            "corpus); the gap is the second minus the first, in points. The aim is a gap under 10.",
            "",
            "| model | " + " | ".join(f"{c}: unseen corpus / unseen speakers" for c in loco) + " | mean gap |",
            "|---" * (len(loco) + 2) + "|",
        ]
        for model, (_, title) in MODELS.items():
            s_run = _ok(runs, model, "speaker")
            cells, gaps = [], []
            for c in loco:
                lo = _ok(runs, model, f"loco:{c}")
                inc = (s_run or {}).get("per_corpus", {}).get(c)
                if lo and inc:
                    gaps.append(100 * (inc["uar"] - lo["uar"]))
                cells.append(f"{pct(lo and lo['uar'])} / {pct(inc and inc['uar'])}")
            if any(c != "– / –" for c in cells):
                gap = (
                    f"{sum(gaps) / len(gaps):.1f}" + (f" ({len(gaps)} of {len(loco)})" if len(gaps) < len(loco) else "")
                    if gaps
                    else "–"
                )
                L.append(f"| {title} | " + " | ".join(cells) + f" | {gap} |")
    L += [
        "",
        "## Runs",
        "",
        "| run | recipe | epochs | train / val / test clips | test n | accuracy | UAR | macro-F1 | status |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for x in runs:
        if x["status"] == "ok":
            d = x["data"]
            clips = " / ".join(str(d[k]["clips"]) for k in ("train", "val", "test"))
            t = x["test"] or {}
            L.append(
                f"| {x['id']} | {x['recipe']} | {x['epochs'] or '–'} | {clips} | {t.get('n', '–')} | "
                f"{pct(t.get('accuracy'))} | {pct(t.get('uar'))} | {pct(t.get('macro_f1'))} | "
                f"ok{' (reused)' if x.get('reused') else ''} |"
            )
        else:
            L.append(
                f"| {x['id']} | {x['recipe']} | {x['epochs'] or '–'} | | | | | | "
                f"{x['status']}: {x['reason'][:120].replace('|', '/')} |"
            )
    L += ["", "## Protocols", ""] + [f"- {k}: {v}" for k, v in PROTOCOL_NAMES.items()]
    L += [
        "- leave one corpus out: test = every clip of the held-out corpus; train / val = the "
        "canonical train / val speakers of the other corpora (their test speakers are not used).",
        "- The paper's protocol shares speakers between train and test; the other two do not: they "
        "measure what unseen speakers, and unseen corpora, get.",
        "",
    ]
    return "\n".join(L)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", required=True, help="folder of corpora (as for sercli train)")
    ap.add_argument("--out", default=str(HERE / "results"), help="results folder (default: train/results)")
    ap.add_argument(
        "--epochs-scale",
        type=float,
        default=1.0,
        help="multiply every recipe's epochs (at least 1 epoch); e.g. 0.1 for a quick pass",
    )
    ap.add_argument(
        "--only",
        nargs="+",
        default=None,
        help="restrict to models (" + " ".join(MODELS) + "), protocols (paper speaker loco "
        "loco:<corpus>) and/or run ids (cnn/paper)",
    )
    ap.add_argument("--jobs", type=int, default=-1, help="feature workers (default: all cores)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--cache", default=None, help="feature cache (default: $SERCLI_CACHE or ~/.cache/sercli)")
    ap.add_argument(
        "--resume",
        action="store_true",
        help="reuse runs whose model card is already in --out for the same recipe and epochs (same data assumed)",
    )
    args = ap.parse_args(argv)
    if args.epochs_scale <= 0:
        ap.error("--epochs-scale must be positive")
    command = "python -m train.reproduce " + " ".join(sys.argv[1:] if argv is None else argv)
    t0 = time.time()
    started = dt.datetime.now().isoformat(timespec="seconds")
    present = corpora_in(args.data)
    missing = [c for c in LOCO_CORPORA if c not in present]
    if missing:
        log(f"leave-one-corpus-out: no clips of {', '.join(missing)} in {args.data}; those runs are left out")
    runs = select(plan(present), args.only)
    if not runs:
        log("nothing to run")
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for r in runs:
        results.append(run_one(r, args, command))
    from sercli.training.card import library_versions

    res = {
        "command": command,
        "data": str(args.data),
        "epochs_scale": args.epochs_scale,
        "started": started,
        "finished": dt.datetime.now().isoformat(timespec="seconds"),
        "seconds": round(time.time() - t0, 1),
        "paper_table2": PAPER_TABLE2,
        "loco_corpora": present,
        "library_versions": library_versions(),
        "runs": results,
    }
    (out / "results.json").write_text(json.dumps(res, indent=1) + "\n")
    (out / "results.md").write_text(markdown(res))
    n_ok = sum(x["status"] == "ok" for x in results)
    log(f"{n_ok} of {len(results)} runs done; wrote {out / 'results.md'} and {out / 'results.json'}")
    return 1 if any(x["status"] == "error" for x in results) else 0


if __name__ == "__main__":
    sys.exit(main())
