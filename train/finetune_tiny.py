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
import copy
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from sercli.corpora import SIX_CLASSES, scan
from sercli.metrics import evaluate
from sercli.models import encoder_path, load_model
from sercli.training.splits import make_splits
from train.finetune_base import Tuned

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

    def score(k):
        enc.eval()
        head.eval()
        out = np.zeros((len(mels[k]), len(labels)), np.float32)
        order = np.argsort([m.shape[1] for m in mels[k]])
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=eval_bf16):
            for s in range(0, len(order), 64):
                idx = order[s : s + 64]
                out[idx] = forward([mels[k][i] for i in idx]).float().numpy()
        cs = splits[k]
        return evaluate([c.label for c in cs], [labels[i] for i in out.argmax(1)], labels, [c.corpus for c in cs])

    aug = "no masks" if args.no_augment else "SpecAugment masks"
    print(f"tune blocks 1-4 from the log-mel, {aug}, lr {args.lr}, head lr {args.head_lr}, {args.epochs} epochs")
    print("frozen start: val UAR", round(score("val")["uar"], 4), flush=True)
    opt = torch.optim.AdamW(
        [{"params": enc.blocks.parameters(), "lr": args.lr}, {"params": head.parameters(), "lr": args.head_lr}],
        weight_decay=1e-2,
    )
    n_tr, bs = len(y["train"]), args.batch
    steps = args.epochs * int(np.ceil(n_tr / bs))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[args.lr, args.head_lr], total_steps=steps, pct_start=0.1)
    counts = np.bincount(y["train"], minlength=len(labels))
    w = torch.tensor(n_tr / (len(labels) * counts), dtype=torch.float32)
    lengths = np.array([m.shape[1] for m in mels["train"]])
    best = (-1.0, None, 0)
    for ep in range(1, args.epochs + 1):
        t = time.time()
        enc.train()
        head.train()
        order = np.argsort(lengths + rng.uniform(0, 40, n_tr))  # batches of similar length
        batches = [order[s : s + bs] for s in range(0, n_tr, bs)]
        for b_i, bi in enumerate(rng.permutation(len(batches))):
            idx = batches[bi]
            ms = [mels["train"][i] if args.no_augment else spec_augment(mels["train"][i], rng) for i in idx]
            loss = F.cross_entropy(forward(ms), torch.from_numpy(y["train"][idx]), weight=w, label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if ep == 1 and b_i == 9:
                print(f"  10 steps: {time.time() - t:.1f} s", flush=True)
        m = score("val")
        print(f"epoch {ep}: val UAR {m['uar']:.4f} ({time.time() - t:.0f} s)", flush=True)
        if m["uar"] > best[0]:
            best = (m["uar"], (copy.deepcopy(enc.state_dict()), copy.deepcopy(head.state_dict())), ep)
    enc.load_state_dict(best[1][0])
    head.load_state_dict(best[1][1])
    mt = score("test")
    per = ", ".join(f"{k} {v['uar']:.3f}" for k, v in mt["per_corpus"].items())
    print(f"best epoch {best[2]}: val UAR {best[0]:.4f}, test UAR {mt['uar']:.4f} ({per})", flush=True)


if __name__ == "__main__":
    main()
