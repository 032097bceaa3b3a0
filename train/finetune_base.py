"""Lab: fine-tune Whisper base's top blocks (5 and 6) at the encoder's own 50 frames per second,
with the bundled whisper-base head on top (pooled statistics of blocks 3-6 + MLP); val UAR per
epoch, the epoch with the best val UAR kept, test scored once at the end.

    python -m train.finetune_base --cache CACHE --epochs 4 --out runs/base-ft

The frozen part (stem and blocks 1-4) runs once per clip and is cached under CACHE/base-b4:
block 4's frames (float16) and the pooled statistics of blocks 3 and 4, computed as classify
computes them. As the whisper-base recipe does, training clips are encoded in float32 and val
and test clips at the precision classify runs (bf16 where the CPU has it); the tuned blocks run
on val and test under the same precision. --out writes the tuned blocks (float32 state dict) and
the head of the kept epoch. A lab probe of whether fine-tuning base pays: nothing here is bundled.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import os
import time
from pathlib import Path

import numpy as np
import torch

from sercli.corpora import SIX_CLASSES, scan
from sercli.models import encoder_path, load_model
from sercli.training.splits import make_splits
from train.finetune_lab import fine_tune, score_split

FROZEN = 4  # blocks 1..FROZEN frozen and cached; the rest of base's 6 are tuned
HEAD_BLOCKS = (3, 4, 5, 6)


def _frozen_one(path: str, precision: str, cache: str):
    """(block FROZEN's frames (T, 512) float16, stats of blocks 3 and 4 (2048,) float32)."""
    from sercli.audio import load_audio
    from sercli.encoded import _encoder, pool_frames, run_precision
    from sercli.features import remove_dc, whisper_log_mel
    from sercli.models.head import pooled_stats
    from sercli.threads import one_blas_thread

    precision = run_precision(precision)
    key = hashlib.sha256(repr((path, os.path.getsize(path), precision, FROZEN, "v1")).encode()).hexdigest()
    target = Path(cache) / key[:2] / f"{key}.npz"
    if target.exists():
        with np.load(target) as z:
            return z["frames"], z["stats"]
    enc = _encoder(str(encoder_path("whisper-base")), precision)
    with one_blas_thread():
        y, _ = load_audio(path)
    mel = whisper_log_mel(remove_dc(y), n_mels=80)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        h3, h4 = enc.hidden_states(torch.from_numpy(mel)[None], (3, FROZEN))
        frames = h4[0].float().to(torch.float16).numpy()
        pooled = pool_frames(torch.stack([h3[0], h4[0]]).float()).to(torch.float16).numpy()
    stats = pooled_stats(pooled)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, frames=frames, stats=stats)
    os.replace(tmp, target)
    return frames, stats


def frozen_part(clips, precision: str, cache: str, jobs: int = 2):
    from joblib import Parallel, delayed

    out = Parallel(n_jobs=jobs, batch_size=8)(delayed(_frozen_one)(c.path, precision, cache) for c in clips)
    return [o[0] for o in out], np.stack([o[1] for o in out])


class Tuned(torch.nn.Module):
    """Blocks FROZEN+1..6 of base and the head: (frames at 50 fps, lengths, frozen stats) -> logits."""

    def __init__(self, blocks, head):
        super().__init__()
        self.blocks, self.head = blocks, head

    def forward(self, x, n, frozen_stats):
        B, T, _ = x.shape
        keep = torch.arange(T)[None, :] < n[:, None]
        feats = [frozen_stats]
        h = x
        for b in self.blocks:
            h = b(h, keep[:, None, None, :])
            feats.append(self.pooled(h.float(), n))
        return self.head(torch.cat(feats, 1))

    @staticmethod
    def pooled(h, n):
        """sercli.encoded.pool_frames then pooled_stats, per clip of length n in a padded batch."""
        B, T, C = h.shape
        odd = (n % 2 == 1) & (n < T)
        if odd.any():  # the short last pair is its own frame's mean: repeat that frame
            h = h.clone()
            idx = torch.nonzero(odd).flatten()
            h[idx, n[idx]] = h[idx, n[idx] - 1]
        if T % 2:
            h = torch.cat([h, h[:, -1:]], 1)
        p = h.unflatten(1, (-1, 2)).mean(2)
        m = (torch.arange(p.shape[1])[None, :] < ((n + 1) // 2)[:, None]).float()[..., None]
        cnt = m.sum(1)
        mean = (p * m).sum(1) / cnt
        std = ((((p - mean[:, None]) ** 2) * m).sum(1) / cnt).sqrt()
        return torch.cat([mean, std], 1)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.path.expanduser("~/corpora"))
    ap.add_argument("--cache", required=True)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--lr", type=float, default=5e-5, help="the blocks' peak learning rate")
    ap.add_argument("--head-lr", type=float, default=3e-4)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--train-bf16", action="store_true", help="the tuned blocks under bf16 autocast in training")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="folder for the kept epoch's blocks and head")
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    labels = list(SIX_CLASSES)
    clips = [c for c in scan(args.data).clips if c.label in labels]
    splits = make_splits(clips, labels)
    cache = os.path.join(args.cache, "base-b4")
    t = time.time()
    data = {}
    for k, cs in splits.items():
        data[k] = frozen_part(cs, "fp32" if k == "train" else "bf16", cache)
        print(f"frozen part of {k}: {len(cs)} clips ({time.time() - t:.0f} s)", flush=True)
    torch.set_num_threads(args.threads)
    y = {k: np.array([labels.index(c.label) for c in cs]) for k, cs in splits.items()}

    from sercli.encoded import native_bf16
    from sercli.whisper import load_encoder

    enc, _ = load_encoder(encoder_path("whisper-base"))
    blocks = torch.nn.ModuleList([copy.deepcopy(enc.blocks[b]) for b in range(FROZEN, len(enc.blocks))])
    del enc
    model = Tuned(blocks, load_model("whisper-base").impl.net)  # standardisation + MLP, trained frozen
    eval_bf16 = native_bf16()

    def batch(k, idx):
        fs = data[k][0]
        T = max(len(fs[i]) for i in idx)
        x = np.zeros((len(idx), T, fs[idx[0]].shape[1]), np.float32)
        for j, i in enumerate(idx):
            x[j, : len(fs[i])] = fs[i]
        n = torch.tensor([len(fs[i]) for i in idx])
        return torch.from_numpy(x), n, torch.from_numpy(data[k][1][idx])

    def score(k):
        lengths = [len(f) for f in data[k][0]]
        return score_split(model, lambda idx: model(*batch(k, idx)), lengths, splits[k], labels, eval_bf16)

    print(f"tune blocks {FROZEN + 1}-6, lr {args.lr}, head lr {args.head_lr}, {args.epochs} epochs", flush=True)
    print("frozen start: val UAR", round(score("val")["uar"], 4), flush=True)

    def train_logits(idx):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.train_bf16):
            return model(*batch("train", idx))

    kept = fine_tune(
        model,
        [(blocks.parameters(), args.lr), (model.head.parameters(), args.head_lr)],
        y["train"],
        np.array([len(f) for f in data["train"][0]]),
        train_logits,
        score,
        epochs=args.epochs,
        batch=args.batch,
        jitter=20,
        rng=rng,
    )
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        torch.save(
            {"blocks": blocks.state_dict(), "head": model.head.state_dict(), "epoch": kept},
            os.path.join(args.out, "tuned.pt"),
        )


if __name__ == "__main__":
    main()
