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


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--cache", required=True, help="the --cache given to sercli train")
    ap.add_argument("--recipe", default="whisper-tiny")
    ap.add_argument("--precisions", default="fp32,int8")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    recipe = load_recipe(args.recipe)
    labels = list(recipe.labels)
    assert labels == list(SIX_CLASSES)
    clips = [c for c in scan(args.data).clips if c.label in labels]
    splits = make_splits(clips, labels, recipe.protocol)
    order = splits["train"] + splits["val"] + splits["test"]
    cache = os.path.join(args.cache, "encoded")
    layers = list(recipe.layers)
    fname, sha, _ = ENCODERS[recipe.encoder]
    print(f"recipe `{args.recipe}` ({recipe.encoder}, blocks {layers}, {recipe.epochs} epochs)\n")
    precisions = args.precisions.split(",")
    sets = {}
    for precision in precisions:
        t = time.time()
        _, vectors, n_state, failed = pooled_vectors(
            order, recipe.encoder, layers, jobs=args.jobs, cache_dir=cache, progress=False, precision=precision
        )
        assert not failed, failed[:3]
        print(f"{precision}: {len(vectors)} clips encoded in {time.time() - t:.0f} s", file=sys.stderr, flush=True)
        sets[precision] = {k: (cs, np.stack([vectors[c.path] for c in cs])) for k, cs in splits.items()}
    print("| trained at | scored at | seed | val UAR | test UAR | test acc | test UAR per corpus | epoch kept |")
    print("|---|---|---|---|---|---|---|---|")
    for precision in precisions:
        data = sets[precision]
        for seed in range(args.seeds):
            model, info = train_head(
                data,
                labels,
                recipe,
                seed,
                recipe.epochs,
                args.threads,
                n_state=n_state,
                encoder_file=fname,
                encoder_sha256=sha,
                log=lambda *a: None,
            )
            for scored in precisions:
                m = {}
                for part in ("val", "test"):
                    cs, V = sets[scored][part]
                    # a group head is scored per speaker, as --normalize-by speaker runs it
                    p = model.predict_proba(list(V), [c.speaker_key for c in cs], grouped=True)
                    pred = [labels[i] for i in p.argmax(1)]
                    m[part] = evaluate([c.label for c in cs], pred, labels, [c.corpus for c in cs])
                pc = ", ".join(f"{k} {v['uar']:.3f}" for k, v in sorted(m["test"]["per_corpus"].items()))
                print(
                    f"| {precision} | {scored} | {seed} | {m['val']['uar']:.3f} | {m['test']['uar']:.3f} | "
                    f"{m['test']['accuracy']:.3f} | {pc} | {info['best_epoch']} |",
                    flush=True,
                )
    print(f"\nCommand: `python -m train.encoder_precision {' '.join(argv or sys.argv[1:])}`")


if __name__ == "__main__":
    main()
