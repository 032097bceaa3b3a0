"""Lab: fine-tune tiny.en's blocks 3-4 on block 2's cached output (25 frames per second), with the
bundled whisper-tiny head on top (pooled block statistics + MLP); val UAR per epoch, test at the end.

    python -m train.finetune_experiment THREADS EPOCHS LR_BLOCKS CACHE   # corpora in ~/corpora

CACHE is what `sercli train --cache` was given (it reads CACHE/encoded). A first look at whether
fine-tuning the top blocks pays, not a recipe: nothing here is bundled.
"""

import copy
import os
import sys
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

torch.manual_seed(0)
rng = np.random.default_rng(0)
torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
EPOCHS = int(sys.argv[2]) if len(sys.argv) > 2 else 6
LR_BLOCKS = float(sys.argv[3]) if len(sys.argv) > 3 else 3e-5
labels = list(SIX_CLASSES)
clips = [c for c in scan(os.path.expanduser("~/corpora")).clips if c.label in labels]
splits = make_splits(clips, labels)
order = splits["train"] + splits["val"] + splits["test"]
kept, hs, _ = encode_clips(
    order,
    encoder_path("whisper-tiny.en"),
    (1, 2, 3, 4),
    jobs=1,
    cache_dir=os.path.join(sys.argv[4], "encoded"),
    progress=False,
)
pos = {c.path: i for i, c in enumerate(kept)}


def part(k, hs):
    cs = splits[k]
    return cs, [hs[pos[c.path]][1] for c in cs], np.array([labels.index(c.label) for c in cs])


data = {k: part(k, hs) for k in ("train", "val", "test")}
del hs
enc, _ = load_encoder(encoder_path("whisper-tiny.en"))
blocks = torch.nn.ModuleList([copy.deepcopy(enc.blocks[2]), copy.deepcopy(enc.blocks[3])])
head = load_model("whisper-tiny").impl.net  # standardisation + MLP, trained on frozen features


def forward(x, n, train):
    B, T, C = x.shape
    keep = torch.arange(T)[None, :] < n[:, None]
    outs = [x]
    h = x
    for b in blocks:
        h = b(h, keep[:, None, None, :])
        outs.append(h)
    m = keep[..., None].float()
    feats = []
    for o in outs:
        mean = (o * m).sum(1) / n[:, None]
        var = (((o - mean[:, None]) ** 2) * m).sum(1) / n[:, None]
        feats.append(torch.cat([mean, (var + 1e-8).sqrt()], 1))
    return head(torch.cat(feats, 1))


def batch(frames, idx, crop=None):
    T = max(frames[i].shape[0] for i in idx)
    if crop:
        T = min(T, crop)
    x = np.zeros((len(idx), T, frames[idx[0]].shape[1]), np.float32)
    n = []
    for j, i in enumerate(idx):
        f = frames[i]
        if crop and len(f) > crop:
            a = rng.integers(0, len(f) - crop + 1)
            f = f[a : a + crop]
        x[j, : len(f)] = f
        n.append(len(f))
    return torch.from_numpy(x), torch.tensor(n, dtype=torch.float32)


def score(k):
    cs, frames, y = data[k]
    blocks.eval()
    head.eval()
    out = np.zeros((len(frames), 6), np.float32)
    o = np.argsort([len(f) for f in frames])
    with torch.inference_mode():
        for s in range(0, len(o), 64):
            idx = o[s : s + 64]
            x, n = batch(frames, idx)
            out[idx] = forward(x, n, False).numpy()
    m = evaluate([labels[i] for i in y], [labels[i] for i in out.argmax(1)], labels, [c.corpus for c in cs])
    return m, out


print("frozen start: val", round(score("val")[0]["uar"], 4), flush=True)
opt = torch.optim.AdamW(
    [{"params": blocks.parameters(), "lr": LR_BLOCKS}, {"params": head.parameters(), "lr": 3e-4}], weight_decay=1e-2
)
cs, frames, y = data["train"]
counts = np.bincount(y, minlength=6)
w = torch.tensor(len(y) / (6 * counts), dtype=torch.float32)
best = (0, None)
for ep in range(1, EPOCHS + 1):
    t = time.time()
    blocks.train()
    head.train()
    perm = rng.permutation(len(frames))
    # similar lengths together: sort chunks of 512 by length
    for s in range(0, len(perm), 32):
        idx = perm[s : s + 32]
        x, n = batch(frames, idx, crop=100)
        loss = F.cross_entropy(forward(x, n, True), torch.from_numpy(y[idx]), weight=w, label_smoothing=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (s // 32) % 50 == 0:
            print(f"  batch {s // 32} of {len(perm) // 32}: {time.time() - t:.0f} s", flush=True)
    m, _ = score("val")
    print(f"epoch {ep}: val UAR {m['uar']:.4f} ({time.time() - t:.0f} s)", flush=True)
    if m["uar"] > best[0]:
        best = (m["uar"], (copy.deepcopy(blocks.state_dict()), copy.deepcopy(head.state_dict())), ep)
        torch.save({"blocks": blocks.state_dict(), "head": head.state_dict(), "epoch": ep}, "finetuned-best.pt")
blocks.load_state_dict(best[1][0])
head.load_state_dict(best[1][1])
mt, _ = score("test")
print(
    "best epoch",
    best[2],
    "val",
    round(best[0], 4),
    "test",
    round(mt["uar"], 4),
    {k: round(v["uar"], 3) for k, v in mt["per_corpus"].items()},
    flush=True,
)
torch.save({"blocks": blocks.state_dict(), "head": head.state_dict()}, "finetuned.pt")
