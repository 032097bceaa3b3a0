"""Leave-one-corpus-out runs set against the in-corpus run, per corpus, read from model cards.

    python -m train.loco_table --in-corpus train/results/cnn-spk3/speaker/cnn-spk3-speaker.card.json \
        --row "cnn-spk3, 8 epochs=train/results/cnn-spk3/loco-*/*.card.json" \
        --row "cnn-spk3, 30 epochs=train/results/experiments/cnn-spk3-loco30-*.card.json" \
        > train/results/experiments/loco-methods.md

Each --row is LABEL=GLOB; the glob's cards (or ensemble files of train/ensemble.py) are
leave-one-corpus-out runs (protocol loco:CORPUS), one per held-out corpus; --in-corpus is a card
or an ensemble file of the canonical split. A cell is the test UAR on the held-out corpus; the
in-corpus UAR is the --in-corpus run's test UAR on that corpus's test speakers; the gap is
in-corpus minus held-out, in points (the aim of #4: under 10). Every number is read from the
files.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys


def protocol(d: dict) -> str:
    """A model card's protocol (in its recipe) or an ensemble file's (train/ensemble.py)."""
    return d["recipe"].get("protocol", "") if "recipe" in d else d.get("protocol", "")


def per_corpus_uar(d: dict) -> dict[str, float]:
    t = d["metrics"]["test"]
    if "per_corpus_uar" in t:  # an ensemble file
        return dict(t["per_corpus_uar"])
    return {c: m["uar"] for c, m in t["per_corpus"].items()}


BAD = (OSError, ValueError, KeyError, TypeError, AttributeError)


def bad(path: str, exc: Exception):
    sys.exit(f"{path}: not a model card or ensemble file ({type(exc).__name__}: {exc})")


def read(path: str, check) -> dict:
    """A card or ensemble file, with check(d) run on it; anything unreadable or missing exits
    with one line naming the file."""
    try:
        d = json.loads(open(path).read())
        check(d)
    except BAD as exc:
        bad(path, exc)
    return d


def loco_cards(pattern: str) -> dict[str, dict]:
    cards = {}
    for path in sorted(glob.glob(pattern)):
        card = read(path, protocol)
        proto = protocol(card)
        if not proto.startswith("loco:"):
            sys.exit(f"{path}: not a leave-one-corpus-out card (protocol {proto!r})")
        try:
            float(card["metrics"]["test"]["uar"])
        except BAD as exc:
            bad(path, exc)
        cards[proto.split(":", 1)[1]] = card
    if not cards:
        sys.exit(f"{pattern}: no cards")
    return cards


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--in-corpus", required=True, help="the speaker-independent run's card (or ensemble file)")
    ap.add_argument("--row", action="append", required=True, metavar="LABEL=GLOB")
    a = ap.parse_args(argv)
    inside = read(a.in_corpus, per_corpus_uar)
    within = per_corpus_uar(inside)
    corpora = sorted(within)
    print("# Leave one corpus out against unseen speakers of seen corpora (train/loco_table.py)\n")
    print(
        "Command:\n\n```sh\npython -m train.loco_table "
        + " \\\n    ".join([f"--in-corpus {a.in_corpus}"] + [f"--row '{r}'" for r in a.row])
        + "\n```\n"
    )
    name = inside.get("name") or os.path.basename(a.in_corpus)
    print(
        f"In-corpus: `{name}`, test UAR on each corpus's test speakers: "
        + ", ".join(f"{c} {within[c]:.1%}" for c in corpora)
        + ".\n"
    )
    print(
        "| run | "
        + " | ".join(f"{c}: held out / gap" for c in corpora)
        + " | mean UAR held out | mean gap | corpora within 10 points | epochs | minutes |"
    )
    print("|---|" + "---|" * (len(corpora) + 5))
    for spec in a.row:
        label, _, pattern = spec.partition("=")
        cards = loco_cards(pattern)
        cells, uars, gaps = [], [], []
        for c in corpora:
            if c not in cards:
                cells.append("–")
                continue
            u = cards[c]["metrics"]["test"]["uar"]
            gap = 100 * (within[c] - u)
            uars.append(u)
            gaps.append(gap)
            cells.append(f"{u:.1%} / {gap:.1f}")
        if not gaps:
            sys.exit(f"{pattern}: no held-out corpus of these runs is in {a.in_corpus}")
        runs = list(cards.values())
        # an ensemble file has neither: its members' cards have them
        epochs = ", ".join(map(str, sorted({r["epochs"] for r in runs}))) if all("epochs" in r for r in runs) else "–"
        minutes = f"{sum(r['seconds']['total'] for r in runs) / 60:.0f}" if all("seconds" in r for r in runs) else "–"
        print(
            f"| {label} | " + " | ".join(cells) + f" | {sum(uars) / len(uars):.1%} | {sum(gaps) / len(gaps):.1f} | "
            f"{sum(g < 10 for g in gaps)} of {len(gaps)} | {epochs} | {minutes} |"
        )


if __name__ == "__main__":
    main()
