"""Heads trained on the encoder's outputs at each precision (float32, int8 dynamic quantisation):
val and test UAR over several seeds, and the encoder pass's time.

    python -m train.encoder_precision --data ~/corpora --cache ~/.cache/sercli-train \
        > train/results/experiments/encoder-precision.md

A head trained on float32 outputs loses 0.8 points of val UAR when fed int8 or bfloat16 outputs
(`python -m train.precision_check`); this trains the head on each precision's outputs, as a recipe
with `precision = ...` does, and scores every head on the outputs of every precision (a head
trained at bf16 runs at fp32 on a CPU without native bf16). Selection (epoch, temperature) on the
val speakers only.
"""

from __future__ import annotations

import sys
import time

from sercli.corpora import SIX_CLASSES
from sercli.training.head import pooled_vectors
from train.head_lab import fit_seed, head_splits, lab_parser, score_cells, scores, stacked


def main(argv=None) -> None:
    ap = lab_parser(__doc__.split("\n")[0], seeds=3, jobs=2, threads=2)
    ap.add_argument("--precisions", default="fp32,int8")
    args = ap.parse_args(argv)
    recipe, labels, splits, cache = head_splits(args)
    assert labels == list(SIX_CLASSES)
    order = splits["train"] + splits["val"] + splits["test"]
    layers = list(recipe.layers)
    print(f"recipe `{args.recipe}` ({recipe.encoder}, blocks {layers}, {recipe.epochs} epochs)\n")
    precisions = args.precisions.split(",")
    sets = {}
    for precision in precisions:
        t = time.time()
        _, vectors, _, failed = pooled_vectors(
            order, recipe.encoder, layers, jobs=args.jobs, cache_dir=cache, progress=False, precision=precision
        )
        assert not failed, failed[:3]
        print(f"{precision}: {len(vectors)} clips encoded in {time.time() - t:.0f} s", file=sys.stderr, flush=True)
        sets[precision] = stacked(splits, vectors)
    print("| trained at | scored at | seed | val UAR | test UAR | test acc | test UAR per corpus | epoch kept |")
    print("|---|---|---|---|---|---|---|---|")
    for precision in precisions:
        for seed in range(args.seeds):
            model, info = fit_seed(sets[precision], labels, recipe, seed, args.threads)
            for scored in precisions:
                m = scores(model, sets[scored], labels)
                print(f"| {precision} | {scored} | {seed} | {score_cells(m)} | {info['best_epoch']} |", flush=True)
    print(f"\nCommand: `python -m train.encoder_precision {' '.join(argv or sys.argv[1:])}`")


if __name__ == "__main__":
    main()
