"""Speed-perturbed training copies for a head over the frozen Whisper encoder: val and test UAR
with and without them, several seeds.

    python -m train.encoder_augment --data ~/corpora --cache ~/.cache/sercli-train \
        > train/results/experiments/encoder-augment.md

Each training clip is encoded again played at each --speeds factor (tempo and pitch together, as
Kaldi's speed perturbation; cached beside the plain encoder outputs); the copies join the training
set with their clip's label and speaker. Val and test clips are never perturbed. Selection (epoch,
temperature) on the val speakers only, as `sercli train`; every number is printed by this script.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from sercli.corpora import SIX_CLASSES, scan
from sercli.metrics import evaluate
from sercli.models import ENCODERS
from sercli.training.head import pooled_vectors, train_head
from sercli.training.recipe import load_recipe
from sercli.training.splits import make_splits


def pooled(clips, encoder: str, layers: list[int], cache: str, jobs: int, speed: float = 1.0) -> dict:
    """path -> pooled vector of the blocks `layers` (sercli's own encode-and-pool step)."""
    _, vectors, _, failed = pooled_vectors(
        clips, encoder, layers, jobs=jobs, cache_dir=cache, progress=False, speed=speed
    )
    assert not failed, failed[:3]
    return vectors


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--cache", required=True, help="the --cache given to sercli train")
    ap.add_argument("--recipe", default="whisper-tiny")
    ap.add_argument("--speeds", default="0.9,1.1", help="comma-separated speed factors of the copies")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    recipe = load_recipe(args.recipe)
    labels = list(recipe.labels)
    assert labels == list(SIX_CLASSES)
    clips = [c for c in scan(args.data).clips if c.label in labels]
    splits = make_splits(clips, labels, recipe.protocol)
    cache = os.path.join(args.cache, "encoded")
    layers = list(recipe.layers)
    t = time.time()
    plain = pooled(splits["train"] + splits["val"] + splits["test"], recipe.encoder, layers, cache, args.jobs)
    print(f"plain encoder outputs: {len(plain)} clips, {time.time() - t:.0f} s", flush=True, file=sys.stderr)
    speeds = [float(s) for s in args.speeds.split(",") if s]
    copies = {}
    for sp in speeds:
        t = time.time()
        copies[sp] = pooled(splits["train"], recipe.encoder, layers, cache, args.jobs, speed=sp)
        print(f"speed {sp}: {len(copies[sp])} clips, {time.time() - t:.0f} s", flush=True, file=sys.stderr)
    fname, sha, _ = ENCODERS[recipe.encoder]

    def data_with(extra: list[float]) -> dict:
        d = {k: (cs, np.stack([plain[c.path] for c in cs])) for k, cs in splits.items()}
        tr = list(splits["train"])
        X = [d["train"][1]]
        for sp in extra:
            X.append(np.stack([copies[sp][c.path] for c in splits["train"]]))
            tr += splits["train"]
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
            model, info = train_head(
                data,
                labels,
                recipe,
                seed,
                recipe.epochs,
                args.threads,
                n_state=data["train"][1].shape[1] // (2 * len(layers)),
                encoder_file=fname,
                encoder_sha256=sha,
                log=lambda *a: None,
            )
            m = {}
            for part in ("val", "test"):
                cs = data[part][0]
                pred = [labels[i] for i in info["scores"](part).argmax(1)]
                m[part] = evaluate([c.label for c in cs], pred, labels, [c.corpus for c in cs])
            pc = ", ".join(f"{k} {v['uar']:.3f}" for k, v in sorted(m["test"]["per_corpus"].items()))
            print(
                f"| {name} | {seed} | {m['val']['uar']:.3f} | {m['test']['uar']:.3f} | "
                f"{m['test']['accuracy']:.3f} | {pc} | {info['best_epoch']} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
