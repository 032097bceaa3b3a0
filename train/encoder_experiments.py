"""Heads over the frozen Whisper encoders, side by side: val and test UAR of each variant.

    python -m train.encoder_experiments --data ~/corpora --cache ~/.cache/sercli-train \
        > train/results/experiments/encoder-heads.md

Reads the encoder outputs from the cache that `sercli train` fills (sercli.encoded; encoding all
12,162 clips takes about 6 min for tiny.en and 28 min for base on 2 busy cores), pools them per
clip (sercli.models.head.pooled_stats) and trains each head with sercli.training.head on the canonical
split: selection (epoch, temperature) on the val speakers, test speakers scored once. Group rows
z-score each speaker's vectors (as --normalize-by speaker). Every number is printed by this script.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from sercli.corpora import SIX_CLASSES, scan
from sercli.encoded import encode_clips
from sercli.metrics import evaluate
from sercli.models import ENCODERS, encoder_path
from sercli.training.head import train_head
from sercli.training.recipe import build_recipe
from sercli.training.splits import make_splits

#: (label, encoders with their blocks, head keys)
VARIANTS = [
    ("tiny.en, blocks 2-4, linear", {"whisper-tiny.en": [2, 3, 4]}, {"hidden": 0}),
    ("tiny.en, blocks 2-4, MLP 256 (`whisper-tiny`)", {"whisper-tiny.en": [2, 3, 4]}, {}),
    ("tiny.en, blocks 1-4, MLP 256", {"whisper-tiny.en": [1, 2, 3, 4]}, {}),
    ("tiny.en, blocks 3-4, MLP 256", {"whisper-tiny.en": [3, 4]}, {}),
    ("tiny.en, blocks 2-4, MLP 512, dropout 0.5", {"whisper-tiny.en": [2, 3, 4]}, {"hidden": 512, "dropout": 0.5}),
    ("tiny.en, blocks 2-4, MLP 256, input noise 0.2", {"whisper-tiny.en": [2, 3, 4]}, {"input_noise": 0.2}),
    ("base, blocks 3-6, MLP 256 (`whisper-base`)", {"whisper-base": [3, 4, 5, 6]}, {}),
    ("base, blocks 2-6, MLP 256", {"whisper-base": [2, 3, 4, 5, 6]}, {}),
    ("base, blocks 4-6, MLP 256", {"whisper-base": [4, 5, 6]}, {}),
    ("tiny.en 2-4 + base 3-6 concatenated, MLP 256", {"whisper-tiny.en": [2, 3, 4], "whisper-base": [3, 4, 5, 6]}, {}),
    (
        "tiny.en, blocks 2-4, MLP 256, per speaker (`whisper-tiny-spk`)",
        {"whisper-tiny.en": [2, 3, 4]},
        {"normalize": "group"},
    ),
    (
        "base, blocks 3-6, MLP 256, per speaker (`whisper-base-spk`)",
        {"whisper-base": [3, 4, 5, 6]},
        {"normalize": "group"},
    ),
    (
        "tiny.en 2-4 + base 3-6, MLP 256, per speaker",
        {"whisper-tiny.en": [2, 3, 4], "whisper-base": [3, 4, 5, 6]},
        {"normalize": "group"},
    ),
]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--cache", required=True, help="the --cache given to sercli train")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    labels = list(SIX_CLASSES)
    clips = [c for c in scan(args.data).clips if c.label in labels]
    splits = make_splits(clips, labels)
    order = splits["train"] + splits["val"] + splits["test"]
    pooled = {}
    for enc in ENCODERS:
        n = ENCODERS[enc][2]
        kept, hs, failed = encode_clips(
            order,
            encoder_path(enc),
            tuple(range(1, n + 1)),
            jobs=1,
            cache_dir=os.path.join(args.cache, "encoded"),
            progress=False,
        )
        assert not failed, failed[:3]
        # per clip and block: mean and std over time, (n_blocks, 2 * n_state)
        pooled[enc] = {
            c.path: np.concatenate([h.astype(np.float32).mean(1), h.astype(np.float32).std(1)], 1)
            for c, h in zip(kept, hs)
        }
    print("| head | val UAR | val acc | test UAR | test acc | test UAR per corpus | epoch kept | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for label, encs, keys in VARIANTS:
        data = {}
        for part, cs in splits.items():
            X = np.concatenate(
                [
                    np.stack([pooled[e][c.path][[b - 1 for b in blocks]].ravel() for c in cs])
                    for e, blocks in encs.items()
                ],
                axis=1,
            )
            data[part] = (cs, X)
        first, blocks = next(iter(encs.items()))
        width = data["train"][1].shape[1]
        recipe = build_recipe(
            {
                "name": "experiment",
                "model": "whisper-head",
                "labels": labels,
                "encoder": first,
                "layers": [1] if len(encs) > 1 else blocks,
                **keys,
            }
        )
        n_state = width // (2 * len(recipe.layers))
        t = time.time()
        model, extra = train_head(
            data,
            labels,
            recipe,
            0,
            args.epochs,
            args.threads,
            n_state=n_state,
            encoder_file="-",
            encoder_sha256="-",
            log=lambda m: None,
        )
        cells = []
        for part in ("val", "test"):
            cs = data[part][0]
            m = evaluate(
                [c.label for c in cs],
                [labels[i] for i in extra["scores"](part).argmax(1)],
                labels,
                [c.corpus for c in cs],
            )
            cells.append(m)
        v, te = cells
        corp = ", ".join(f"{c} {x['uar']:.3f}" for c, x in te["per_corpus"].items())
        print(
            f"| {label} | {v['uar']:.3f} | {v['accuracy']:.3f} | {te['uar']:.3f} | {te['accuracy']:.3f} | "
            f"{corp} | {extra['best_epoch']} | {time.time() - t:.0f} |",
            flush=True,
        )
    print(
        f"\nCommand: `python -m train.encoder_experiments {' '.join(argv or sys.argv[1:])}`; seed 0, "
        f"{args.epochs} epochs each; {len(splits['train'])} train, {len(splits['val'])} val, "
        f"{len(splits['test'])} test clips."
    )


if __name__ == "__main__":
    main()
