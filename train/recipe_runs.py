"""Runs of the same recipe side by side, from their model cards: how much one run moves.

    python -m train.recipe_runs weights/cnn.card.json train/results/cnn-retrain.card.json \
        train/results/experiments/cnn-e45*.card.json > train/results/experiments/recipe-runs.md

Groups the cards by their recipe's training keys (name and description aside, so a rerun under
another name joins its recipe) and prints, per group, each run's val and test UAR, training
time and command, then the group's mean and range. Every number is read from the cards.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sercli.training.recipe import training_keys


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cards", nargs="+", type=Path)
    a = ap.parse_args(argv)
    groups: dict[str, list[tuple[Path, dict]]] = {}
    for path in a.cards:
        try:
            card = json.loads(path.read_text())
            keys = training_keys(card["recipe"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SystemExit(f"{path}: not a model card ({exc})") from None
        groups.setdefault(json.dumps(keys, sort_keys=True), []).append((path, card))

    out = [
        "# Runs of one recipe (train/recipe_runs.py)",
        "",
        "Command: `python -m train.recipe_runs " + " ".join(str(p) for p in a.cards) + "`",
        "",
    ]
    for runs in groups.values():
        recipe = runs[0][1]["recipe"]
        out += [
            f"## {recipe.get('name')}: {recipe.get('epochs')} epochs",
            "",
            "| card | val UAR | test UAR | test UAR per corpus | minutes | command |",
            "|---|---|---|---|---|---|",
        ]
        vals, tests = [], []
        for path, card in runs:
            m = card["metrics"]
            v, t = m["val"]["uar"], m["test"]["uar"]
            vals.append(v)
            tests.append(t)
            corp = ", ".join(f"{c} {r['uar']:.3f}" for c, r in sorted(m["test"].get("per_corpus", {}).items()))
            seconds = (card.get("seconds") or {}).get("total")
            minutes = f"{seconds / 60:.1f}" if seconds else "–"
            out.append(f"| `{path}` | {v:.3f} | {t:.3f} | {corp} | {minutes} | `{card.get('command', '')}` |")
        if len(runs) > 1:
            out.append(
                f"| mean of {len(runs)} runs | {sum(vals) / len(vals):.3f} | {sum(tests) / len(tests):.3f} | | | |"
            )
            out.append(f"| range | {min(vals):.3f} to {max(vals):.3f} | {min(tests):.3f} to {max(tests):.3f} | | | |")
        out.append("")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
