"""Build an ensemble file: member models' probabilities averaged, weights chosen on the val speakers.

    python -m train.ensemble --data ~/corpora --cache ~/.cache/sercli/features --mode speaker \
        --member weights/cnn.pt --member weights/cnn-spk3.pt --out runs/ens.json

Scores every member on the canonical split's val and test speakers (or, with --protocol
loco:CORPUS, on the other corpora's val speakers and every clip of CORPUS), either each clip alone
(`--mode single`, as `classify`) or with each speaker's clips normalised together (`--mode
speaker`, as `classify --normalize-by speaker`; a member that cannot be normalised by group,
such as `cnn`, then sees each clip alone and is marked per_clip in the file). The weights (a
grid of step --step over the simplex) are those with the best val UAR; test speakers only
score the result. The output is a JSON file that sercli loads as a model
(sercli.models.load_ensemble): the members' files relative to it, each pinned by sha256, their
weights, and the val and test metrics measured here. Every number in it is computed here;
nothing is typed by hand.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shlex
import sys
from pathlib import Path

import numpy as np

from sercli.errors import ModelError
from sercli.metrics import evaluate
from sercli.models import ENSEMBLE_FORMAT, load_file
from train.compare_models import log, proba_in_mode, slim, val_test_parts


def simplex(n: int, step: float) -> list[tuple[float, ...]]:
    """Every n-tuple of non-negative multiples of `step` that sums to 1."""
    k = round(1 / step)
    return [tuple(c / k for c in combo) for combo in itertools.product(range(k + 1), repeat=n) if sum(combo) == k]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--cache", default=None)
    ap.add_argument("--jobs", type=int, default=-1)
    ap.add_argument(
        "--member",
        action="append",
        required=True,
        metavar="[NAME=]MODEL_FILE",
        help="A member model file; its name is the file's stem unless NAME= is given.",
    )
    ap.add_argument("--mode", choices=("single", "speaker"), required=True)
    ap.add_argument(
        "--protocol",
        default="speaker",
        help="speaker (the canonical split, default) or loco:CORPUS (val: the other "
        "corpora's val speakers; test: every clip of CORPUS), for members "
        "trained without CORPUS.",
    )
    ap.add_argument(
        "--step", type=float, default=0.1, help="Grid step of the weights (1/step must be a whole number; default 0.1)."
    )
    ap.add_argument("--description", default=None)
    ap.add_argument("--out", type=Path, required=True, help="The ensemble file to write (.json).")
    a = ap.parse_args(argv)
    if not 0 < a.step <= 1 or abs(1 / a.step - round(1 / a.step)) > 1e-6:
        raise SystemExit(f"--step must divide 1 into whole steps (0.1, 0.05, 0.25, ...), got {a.step}")
    if len(a.member) < 2:
        raise SystemExit("an ensemble needs two or more --member files")
    if a.out.suffix.lower() != ".json":
        raise SystemExit(f"{a.out}: the ensemble file must end in .json")
    named = [m.split("=", 1) if "=" in m else [Path(m).stem, m] for m in a.member]
    if len({n for n, _ in named}) < len(named):
        raise SystemExit("two members have the same name: give them NAME=MODEL_FILE")
    try:
        members = [load_file(p, name=n) for n, p in named]
    except ModelError as exc:
        raise SystemExit(str(exc)) from None
    labels = list(members[0].labels)
    if any(list(m.labels) != labels for m in members):
        raise SystemExit("all members must share one label order")
    # In speaker mode a member that cannot be normalised by group (a single-clip CNN) sees each
    # clip alone, in this scoring and in the written file, as classify --normalize-by runs it.
    per_clip = [a.mode == "speaker" and not m.supports_group_norm for m in members]
    if a.mode == "speaker" and all(per_clip):
        raise SystemExit("--mode speaker needs at least one member that supports --normalize-by")

    if a.protocol != "speaker" and not a.protocol.startswith("loco:"):
        raise SystemExit(f"--protocol must be speaker or loco:CORPUS, got {a.protocol!r}")
    parts = val_test_parts(a.data, labels, a.jobs, a.cache, a.protocol)
    if not len(parts["val"].clips) or not len(parts["test"].clips):
        raise SystemExit(f"{a.data}: no val or no test clips under protocol {a.protocol}")
    truth = {s: [c.label for c in p.clips] for s, p in parts.items()}
    corpora = {s: [c.corpus for c in p.clips] for s, p in parts.items()}

    proba = []
    for m, pc in zip(members, per_clip):
        mode = "single" if pc else a.mode
        log(f"scoring {m.name} ({mode}) ...")
        proba.append({s: proba_in_mode(m, p, mode) for s, p in parts.items()})

    def metrics(w, split, by_corpus=False) -> dict:
        p = sum(wi * pr[split] for wi, pr in zip(w, proba))
        return evaluate(truth[split], [labels[i] for i in p.argmax(1)], labels, corpora[split] if by_corpus else None)

    grid = simplex(len(members), a.step)
    val_uar = [metrics(w, "val")["uar"] for w in grid]
    best = grid[int(np.argmax(val_uar))]  # the first of equals, in grid order
    log(f"weights {best}: val UAR {max(val_uar):.3f} (best of {len(grid)} on the val speakers)")

    out_dir = a.out.resolve().parent
    spec = {
        "format": ENSEMBLE_FORMAT,
        "description": a.description
        or (f"Ensemble of {', '.join(m.name for m in members)} ({a.mode} mode), weights chosen on the val speakers."),
        "labels": labels,
        "protocol": a.protocol,
        "mode": a.mode,
        "weights_chosen_on": f"val UAR, simplex grid of step {a.step:g} ({len(grid)} candidates)",
        "metrics": {s: slim(metrics(best, s, True)) for s in parts},
        "member_metrics": {
            m.name: {
                s: slim(evaluate(truth[s], [labels[i] for i in pr[s].argmax(1)], labels, corpora[s])) for s in parts
            }
            for m, pr in zip(members, proba)
        },
        "command": shlex.join(["python", "-m", "train.ensemble", *(sys.argv[1:] if argv is None else argv)]),
        "members": [
            {
                "name": m.name,
                "file": os.path.relpath(Path(m.path).resolve(), out_dir),
                "sha256": m.sha256,
                "weight": w,
                **({"per_clip": True} if pc else {}),
            }
            for m, w, pc in zip(members, best, per_clip)
        ],
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(spec, indent=1) + "\n")
    for s in parts:
        r = spec["metrics"][s]
        alone = ", ".join(f"{n} {mm[s]['uar']:.3f}" for n, mm in spec["member_metrics"].items())
        print(
            f"{s}: n {r['n']}  accuracy {r['accuracy']:.3f}  UAR {r['uar']:.3f}  "
            f"macro-F1 {r['macro_f1']:.3f}  (members alone: {alone})"
        )
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
