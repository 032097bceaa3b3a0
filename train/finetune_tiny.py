"""Lab: fine-tune all four of tiny.en's blocks from the log-mel, at the encoder's own 50 frames per
second, with SpecAugment masks and the bundled whisper-tiny head on top (pooled statistics of
blocks 2-4 + MLP); val UAR per epoch, the epoch with the best val UAR kept, test scored once at
the end.

    python -m train.finetune_tiny --epochs 5

The convolution stem stays frozen and runs on each clip alone, as at classify time; the log-mel
of every clip is computed once and kept in memory (float16). Val and test run under bf16 where
the CPU has it, as the bundled head runs. A lab probe of whether fine-tuning the whole of tiny.en
pays: nothing here is bundled.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from sercli.corpora import SIX_CLASSES, scan
from sercli.models import encoder_path, load_model
from sercli.training.splits import make_splits
from train.finetune_base import Tuned
from train.finetune_lab import fine_tune, score_split

HEAD_BLOCKS = (2, 3, 4)  # what the bundled whisper-tiny head reads


def _mel(path: str) -> np.ndarray:
    from sercli.audio import load_audio
    from sercli.features import remove_dc, whisper_log_mel
    from sercli.threads import one_blas_thread

    with one_blas_thread():
        y, _ = load_audio(path)
        return whisper_log_mel(remove_dc(y), n_mels=80).astype(np.float16)


def spec_augment(mel: np.ndarray, rng, n_time=2, max_time=20, n_freq=2, max_freq=10) -> np.ndarray:
    """Time and band masks (SpecAugment, no warping), filled with the clip's mean level."""
    m = mel.astype(np.float32)
    fill = m.mean()
    for _ in range(n_time):
        w = int(rng.integers(0, max_time + 1))
        if w and m.shape[1] > w:
            a = int(rng.integers(0, m.shape[1] - w))
            m[:, a : a + w] = fill
    for _ in range(n_freq):
        w = int(rng.integers(0, max_freq + 1))
        a = int(rng.integers(0, m.shape[0] - w))
        m[a : a + w] = fill
    return m


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.path.expanduser("~/corpora"))
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--lr", type=float, default=3e-5, help="the blocks' peak learning rate")
    ap.add_argument("--head-lr", type=float, default=1e-4)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--no-augment", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from joblib import Parallel, delayed

    from sercli.encoded import native_bf16
    from sercli.whisper import load_encoder

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    labels = list(SIX_CLASSES)
    clips = [c for c in scan(args.data).clips if c.label in labels]
    splits = make_splits(clips, labels)
    t = time.time()
    mels = {k: Parallel(n_jobs=2, batch_size=16)(delayed(_mel)(c.path) for c in cs) for k, cs in splits.items()}
    print(f"log-mel of {sum(map(len, mels.values()))} clips ({time.time() - t:.0f} s)", flush=True)
    torch.set_num_threads(args.threads)
    y = {k: np.array([labels.index(c.label) for c in cs]) for k, cs in splits.items()}

    enc, _ = load_encoder(encoder_path("whisper-tiny.en"))
    for p in [*enc.conv1.parameters(), *enc.conv2.parameters()]:
        p.requires_grad_(False)
    head = load_model("whisper-tiny").impl.net
    eval_bf16 = native_bf16()

    def forward(ms: list[np.ndarray]):
        with torch.no_grad():  # the frozen stem, each clip alone
            stems = [enc.stem(torch.from_numpy(np.asarray(m, np.float32))[None])[0] for m in ms]
        n = torch.tensor([len(s) for s in stems])
        x = torch.nn.utils.rnn.pad_sequence(stems, batch_first=True)
        keep = torch.arange(x.shape[1])[None, :] < n[:, None]
        hs = enc.run_blocks(x, HEAD_BLOCKS, keep[:, None, None, :])
        return head(torch.cat([Tuned.pooled(h.float(), n) for h in hs], 1))

    model = torch.nn.ModuleDict({"encoder": enc, "head": head})

    def score(k):
        lengths = [m.shape[1] for m in mels[k]]
        return score_split(model, lambda idx: forward([mels[k][i] for i in idx]), lengths, splits[k], labels, eval_bf16)

    aug = "no masks" if args.no_augment else "SpecAugment masks"
    print(f"tune blocks 1-4 from the log-mel, {aug}, lr {args.lr}, head lr {args.head_lr}, {args.epochs} epochs")
    print("frozen start: val UAR", round(score("val")["uar"], 4), flush=True)

    def train_logits(idx):
        return forward([mels["train"][i] if args.no_augment else spec_augment(mels["train"][i], rng) for i in idx])

    fine_tune(
        model,
        [(enc.blocks.parameters(), args.lr), (head.parameters(), args.head_lr)],
        y["train"],
        np.array([m.shape[1] for m in mels["train"]]),
        train_logits,
        score,
        epochs=args.epochs,
        batch=args.batch,
        jitter=40,
        rng=rng,
    )


if __name__ == "__main__":
    main()
