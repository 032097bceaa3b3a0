"""Run-to-run spread of a head: the same recipe trained with seeds 0..N-1 on the cached encoder
outputs, each seed's val and test UAR, and the UAR of their averaged probabilities.

    python -m train.head_seeds --data ~/corpora --cache CACHE --recipe whisper-tiny --seeds 5
"""

import argparse
import os
import sys

import numpy as np

from sercli.corpora import scan
from sercli.encoded import encode_clips
from sercli.metrics import evaluate
from sercli.models import encoder_path, pooled_stats
from sercli.training.head import train_head
from sercli.training.recipe import HeadRecipe, load_recipe
from sercli.training.splits import make_splits


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--cache", required=True, help="the --cache given to sercli train")
    ap.add_argument("--recipe", default="whisper-tiny")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    recipe = load_recipe(args.recipe)
    if not isinstance(recipe, HeadRecipe):
        raise SystemExit(f"head_seeds.py: recipe {recipe.name} is not a whisper-head recipe")
    labels = list(recipe.labels)
    splits = make_splits(scan(args.data).clips, labels, recipe.protocol)
    order = splits["train"] + splits["val"] + splits["test"]
    blocks = tuple(range(1, max(recipe.layers) + 1))
    kept, hs, failed = encode_clips(
        order,
        encoder_path(recipe.encoder),
        blocks,
        jobs=1,
        cache_dir=os.path.join(args.cache, "encoded"),
        progress=False,
    )
    vec = {c.path: pooled_stats(h[[b - 1 for b in recipe.layers]]) for c, h in zip(kept, hs)}
    data = {k: (v, np.stack([vec[c.path] for c in v])) for k, v in splits.items()}
    probs = {"val": [], "test": []}
    print("| seed | val UAR | test UAR | val UAR, mean of probabilities so far | test UAR, same |")
    print("|---|---|---|---|---|")
    for seed in range(args.seeds):
        model, extra = train_head(
            data,
            labels,
            recipe,
            seed,
            recipe.epochs,
            args.threads,
            n_state=hs[0].shape[2],
            encoder_file="-",
            encoder_sha256="-",
            log=lambda m: None,
        )
        row = [str(seed)]
        ens = []
        for k in probs:
            z = extra["scores"](k) / model.dims.temperature
            z = np.exp(z - z.max(1, keepdims=True))
            probs[k].append(z / z.sum(1, keepdims=True))
            y = [c.label for c in data[k][0]]
            row.append(f"{evaluate(y, [labels[i] for i in probs[k][-1].argmax(1)], labels)['uar']:.4f}")
            ens.append(f"{evaluate(y, [labels[i] for i in np.mean(probs[k], 0).argmax(1)], labels)['uar']:.4f}")
        print("| " + " | ".join(row + ens) + " |", flush=True)
    print(f"\nCommand: `python -m train.head_seeds {' '.join(argv or sys.argv[1:])}`")


if __name__ == "__main__":
    main()
