"""Lab: fine-tune tiny.en's top blocks on the cached output of the block below them (25 frames per
second), with the bundled whisper-tiny head on top (pooled statistics of blocks 2-4 + MLP); val
UAR per epoch, the epoch with the best val UAR kept, test scored once at the end.

    python -m train.finetune_experiment --cache CACHE --tune 3,4 --epochs 6 --lr 1e-5
    python -m train.finetune_experiment --cache CACHE --tune 2,3,4 --speeds 0.9,1.1 --lr 5e-5 --epochs 8

CACHE is what `sercli train --cache` was given (it reads CACHE/encoded); --speeds uses the
speed-perturbed copies that `python -m train.encoder_augment` cached, one version of each
training clip drawn per epoch. A lab probe of whether fine-tuning pays, not a recipe: nothing
here is bundled.
"""

from __future__ import annotations

import argparse
import copy
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from sercli.corpora import SIX_CLASSES, scan
from sercli.encoded import encode_clips
from sercli.metrics import evaluate
from sercli.models import encoder_path, load_model
from sercli.training.splits import make_splits
from sercli.whisper import load_encoder

HEAD_BLOCKS = (2, 3, 4)  # what the bundled whisper-tiny head reads


def block_inputs(clips, cache: str, below: int, speed: float = 1.0) -> list[np.ndarray]:
    """Per clip the cached output of block `below` (frames, 384) float16."""
    kept, hs, failed = encode_clips(
        clips, encoder_path("whisper-tiny.en"), (1, 2, 3, 4), jobs=2, cache_dir=cache, progress=False, speed=speed
    )
    assert not failed and len(kept) == len(clips), failed[:3]
    return [h[below - 1].copy() for h in hs]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.path.expanduser("~/corpora"))
    ap.add_argument("--cache", required=True)
    ap.add_argument("--tune", default="3,4", help="blocks fine-tuned (the top ones, e.g. 3,4 or 2,3,4)")
    ap.add_argument("--speeds", default="", help="speed-perturbed copies to draw from, e.g. 0.9,1.1")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--lr", type=float, default=1e-5, help="the blocks' peak learning rate (head: 3e-4)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    torch.set_num_threads(args.threads)
    tune = [int(b) for b in args.tune.split(",")]
    assert tune == list(range(tune[0], 5)), "the tuned blocks are the top ones, up to 4"
    below = tune[0] - 1
    labels = list(SIX_CLASSES)
    clips = [c for c in scan(args.data).clips if c.label in labels]
    splits = make_splits(clips, labels)
    cache = os.path.join(args.cache, "encoded")
    frames = {k: [block_inputs(cs, cache, below)] for k, cs in splits.items()}
    for sp in [float(s) for s in args.speeds.split(",") if s]:
        frames["train"].append(block_inputs(splits["train"], cache, below, speed=sp))
    y = {k: np.array([labels.index(c.label) for c in cs]) for k, cs in splits.items()}

    enc, _ = load_encoder(encoder_path("whisper-tiny.en"))
    blocks = torch.nn.ModuleList([copy.deepcopy(enc.blocks[b - 1]) for b in tune])
    head = load_model("whisper-tiny").impl.net  # standardisation + MLP, trained on frozen features
    del enc

    def forward(x, n):
        T = x.shape[1]
        keep = torch.arange(T)[None, :] < n[:, None]
        outs, h = [x], x
        for b in blocks:
            h = b(h, keep[:, None, None, :])
            outs.append(h)
        outs = outs[-len(HEAD_BLOCKS) :]
        m = keep[..., None].float()
        feats = []
        for o in outs:
            mean = (o * m).sum(1) / n[:, None]
            var = (((o - mean[:, None]) ** 2) * m).sum(1) / n[:, None]
            feats.append(torch.cat([mean, (var + 1e-8).sqrt()], 1))
        return head(torch.cat(feats, 1))

    def batch(fs, crop=None):
        T = max(f.shape[0] for f in fs)
        if crop:
            T = min(T, crop)
        x = np.zeros((len(fs), T, fs[0].shape[1]), np.float32)
        n = []
        for j, f in enumerate(fs):
            if crop and len(f) > crop:
                a = rng.integers(0, len(f) - crop + 1)
                f = f[a : a + crop]
            x[j, : len(f)] = f
            n.append(len(f))
        return torch.from_numpy(x), torch.tensor(n, dtype=torch.float32)

    def score(k):
        fs = frames[k][0]
        blocks.eval()
        head.eval()
        out = np.zeros((len(fs), len(labels)), np.float32)
        order = np.argsort([len(f) for f in fs])
        with torch.inference_mode():
            for s in range(0, len(order), 64):
                idx = order[s : s + 64]
                out[idx] = forward(*batch([fs[i] for i in idx])).numpy()
        cs = splits[k]
        return evaluate([c.label for c in cs], [labels[i] for i in out.argmax(1)], labels, [c.corpus for c in cs])

    print(f"tune blocks {tune}, speeds {args.speeds or 'none'}, lr {args.lr}, {args.epochs} epochs", flush=True)
    print("frozen start: val UAR", round(score("val")["uar"], 4), flush=True)
    opt = torch.optim.AdamW(
        [{"params": blocks.parameters(), "lr": args.lr}, {"params": head.parameters(), "lr": 3e-4}], weight_decay=1e-2
    )
    n_tr, bs = len(y["train"]), 32
    steps = args.epochs * int(np.ceil(n_tr / bs))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[args.lr, 3e-4], total_steps=steps, pct_start=0.1)
    counts = np.bincount(y["train"], minlength=len(labels))
    w = torch.tensor(n_tr / (len(labels) * counts), dtype=torch.float32)
    best = (-1.0, None, 0)
    for ep in range(1, args.epochs + 1):
        t = time.time()
        blocks.train()
        head.train()
        version = rng.integers(0, len(frames["train"]), n_tr)
        perm = rng.permutation(n_tr)
        for s in range(0, n_tr, bs):
            idx = perm[s : s + bs]
            x, n = batch([frames["train"][version[i]][i] for i in idx], crop=100)
            loss = F.cross_entropy(forward(x, n), torch.from_numpy(y["train"][idx]), weight=w, label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        m = score("val")
        print(f"epoch {ep}: val UAR {m['uar']:.4f} ({time.time() - t:.0f} s)", flush=True)
        if m["uar"] > best[0]:
            best = (m["uar"], (copy.deepcopy(blocks.state_dict()), copy.deepcopy(head.state_dict())), ep)
    blocks.load_state_dict(best[1][0])
    head.load_state_dict(best[1][1])
    mt = score("test")
    per = ", ".join(f"{k} {v['uar']:.3f}" for k, v in mt["per_corpus"].items())
    print(f"best epoch {best[2]}: val UAR {best[0]:.4f}, test UAR {mt['uar']:.4f} ({per})", flush=True)


if __name__ == "__main__":
    main()
