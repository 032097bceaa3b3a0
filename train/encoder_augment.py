"""Speed-perturbed training copies for a head over the frozen Whisper encoder: val and test UAR
with and without them, several seeds.

    python -m train.encoder_augment --data ~/corpora --cache ~/.cache/sercli-train \
        > train/results/experiments/encoder-augment.md

Each training clip is encoded again played at each --speeds factor (tempo and pitch together, as
Kaldi's speed perturbation; cached beside the plain encoder outputs); the copies join the training
set with their clip's label and speaker. Val and test clips are never perturbed. Clips are encoded
as `sercli train` encodes them for the recipe (its precision for training clips and their copies,
its classify precision for val and test). Selection (epoch, temperature) on the val speakers only,
as `sercli train`; every number is printed by this script.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from sercli.corpora import SIX_CLASSES
from sercli.training.head import pooled_vectors
from train.head_lab import fit_seed, head_splits, lab_parser, recipe_data, score_cells, scores


def speed_copies(clips, recipe, cache: str, jobs: int, speed: float) -> dict:
    """path -> pooled vector of a clip played `speed` times as fast, at the recipe's precision."""
    _, vectors, _, failed = pooled_vectors(
        clips,
        recipe.encoder,
        recipe.layers,
        jobs=jobs,
        cache_dir=cache,
        progress=False,
        speed=speed,
        precision=recipe.precision,
    )
    assert not failed, failed[:3]
    return vectors


def main(argv=None) -> None:
    ap = lab_parser(__doc__.split("\n")[0], seeds=3, jobs=2, threads=2)
    ap.add_argument("--speeds", default="0.9,1.1", help="comma-separated speed factors of the copies")
    args = ap.parse_args(argv)
    recipe, labels, splits, cache = head_splits(args)
    assert labels == list(SIX_CLASSES)
    layers = list(recipe.layers)
    t = time.time()
    plain = recipe_data(args, recipe, splits)
    n = sum(len(cs) for cs, _ in plain.values())
    print(f"plain encoder outputs: {n} clips, {time.time() - t:.0f} s", flush=True, file=sys.stderr)
    speeds = [float(s) for s in args.speeds.split(",") if s]
    copies = {}
    for sp in speeds:
        t = time.time()
        copies[sp] = speed_copies(splits["train"], recipe, cache, args.jobs, sp)
        print(f"speed {sp}: {len(copies[sp])} clips, {time.time() - t:.0f} s", flush=True, file=sys.stderr)

    def data_with(extra: list[float]) -> dict:
        d = dict(plain)
        clips = list(d["train"][0])
        tr, X = list(clips), [d["train"][1]]
        for sp in extra:
            X.append(np.stack([copies[sp][c.path] for c in clips]))
            tr += clips
        d["train"] = (tr, np.concatenate(X))
        return d

    print(
        f"recipe `{args.recipe}` ({recipe.encoder}, blocks {layers}, {recipe.epochs} epochs); speed copies {speeds}\n"
    )
    print("| training set | seed | val UAR | test UAR | test acc | test UAR per corpus | epoch kept |")
    print("|---|---|---|---|---|---|---|")
    for name, extra in (("plain", []), ("plain + " + " + ".join(f"speed {s}" for s in speeds), speeds)):
        data = data_with(extra)
        for seed in range(args.seeds):
            model, info = fit_seed(data, labels, recipe, seed, args.threads)
            print(
                f"| {name} | {seed} | {score_cells(scores(model, data, labels))} | {info['best_epoch']} |", flush=True
            )


if __name__ == "__main__":
    main()
