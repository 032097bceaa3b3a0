"""What the fine-tuning probes share (train.finetune_base, train.finetune_tiny): scoring a split
in batches of similar length, and the training loop (AdamW, one-cycle learning rate,
class-weighted cross-entropy with label smoothing, batches of similar length in random order,
the epoch with the best val UAR kept, test scored once at the end)."""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
import torch.nn.functional as F

from sercli.metrics import evaluate


def score_split(model, logits_of, lengths, clips, labels: list[str], bf16: bool) -> dict:
    """sercli.metrics.evaluate of `model` on `clips`: logits_of(idx) gives the logits of the
    clips at those positions, run 64 at a time in order of length, under bf16 autocast if asked."""
    model.eval()
    out = np.zeros((len(clips), len(labels)), np.float32)
    order = np.argsort(lengths)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for s in range(0, len(order), 64):
            idx = order[s : s + 64]
            out[idx] = logits_of(idx).float().numpy()
    return evaluate([c.label for c in clips], [labels[i] for i in out.argmax(1)], labels, [c.corpus for c in clips])


def fine_tune(model, groups, y_train, lengths, logits_of, score, *, epochs: int, batch: int, jitter: float, rng) -> int:
    """Train `model` in place and leave it at the epoch with the best val UAR (returned); print
    each epoch's val UAR, then that epoch's test UAR. groups: (parameters, peak learning rate) pairs;
    logits_of(idx): the training clips' logits at those positions; score(split): evaluate's dict;
    jitter: the random frames added to each length before batches are cut (their mix)."""
    opt = torch.optim.AdamW([{"params": p, "lr": lr} for p, lr in groups], weight_decay=1e-2)
    n_tr, n_labels = len(y_train), int(y_train.max()) + 1
    steps = epochs * int(np.ceil(n_tr / batch))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[lr for _, lr in groups], total_steps=steps, pct_start=0.1)
    w = torch.tensor(n_tr / (n_labels * np.bincount(y_train, minlength=n_labels)), dtype=torch.float32)
    best = (-1.0, None, 0)
    for ep in range(1, epochs + 1):
        t = time.time()
        model.train()
        order = np.argsort(lengths + rng.uniform(0, jitter, n_tr))  # batches of similar length
        batches = [order[s : s + batch] for s in range(0, n_tr, batch)]
        for b_i, bi in enumerate(rng.permutation(len(batches))):
            idx = batches[bi]
            logits = logits_of(idx)
            loss = F.cross_entropy(logits.float(), torch.from_numpy(y_train[idx]), weight=w, label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if ep == 1 and b_i == 9:
                print(f"  10 steps: {time.time() - t:.1f} s", flush=True)
        m = score("val")
        print(f"epoch {ep}: val UAR {m['uar']:.4f} ({time.time() - t:.0f} s)", flush=True)
        if m["uar"] > best[0]:
            best = (m["uar"], copy.deepcopy(model.state_dict()), ep)
    model.load_state_dict(best[1])
    mt = score("test")
    per = ", ".join(f"{k} {v['uar']:.3f}" for k, v in mt["per_corpus"].items())
    print(f"best epoch {best[2]}: val UAR {best[0]:.4f}, test UAR {mt['uar']:.4f} ({per})", flush=True)
    return best[2]
