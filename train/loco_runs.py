"""Leave-one-corpus-out runs of a recipe: for each corpus, train on the other corpora's
canonical train speakers (selection on their val speakers) and test on every clip of it.

    python -m train.loco_runs --data ~/corpora --recipe whisper-tiny --out train/results/experiments/loco-whisper-tiny

Each run is `sercli train --recipe RECIPE --set protocol=loco:CORPUS`, named RECIPE-loco-CORPUS;
RECIPE is a bundled recipe's name, a lab recipe's name (train/recipes/NAME.toml) or a .toml file.
Writes one run folder per held-out corpus (weights, card); `python -m train.loco_table` then
sets the held-out UAR against the in-corpus card.
"""

import argparse
import shlex
import sys
from pathlib import Path

from sercli.training.recipe import load_recipe
from sercli.training.run import run

LAB_RECIPES = Path(__file__).resolve().parent / "recipes"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--recipe", required=True)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--corpora", default="cremad,ravdess,savee,tess")
    ap.add_argument("--cache", default=None)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    for corpus in args.corpora.split(","):
        base = load_recipe(args.recipe, folder=LAB_RECIPES)
        recipe = base.with_overrides(protocol=f"loco:{corpus}", name=f"{base.name}-loco-{corpus}")
        run(
            args.data,
            recipe=recipe,
            out=args.out / corpus,
            cache_dir=args.cache,
            threads=args.threads,
            command="python -m train.loco_runs " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
            progress=False,
        )


if __name__ == "__main__":
    main()
