"""Training a head over cached Whisper encoder outputs (recipe model = "whisper-head").

Encoder outputs come from sercli.encoded (computed once, cached); each epoch then costs
seconds. The epoch kept is the one with the best val UAR (val speakers only), and the softmax
temperature is fitted on val, so the test speakers are scored once, at the end.
"""
from __future__ import annotations

import time

import numpy as np

from .corpora import Clip
from .errors import CorpusError

#: recipe keys of a whisper-head recipe, with their defaults
HEAD_DEFAULTS = dict(encoder="whisper-base", layers=[3, 4, 5, 6], hidden=256, dropout=0.3, lr=1e-3,
                     weight_decay=1e-2, batch_size=128, label_smoothing=0.1, normalize="none",
                     alone_fraction=0.25, group_prior=1.0, input_noise=0.0)


def head_options(recipe: dict) -> dict:
    """The recipe's head options with defaults filled in; a one-line CorpusError for a bad one."""
    from .models import ENCODERS
    opts = {k: recipe.get(k, v) for k, v in HEAD_DEFAULTS.items()}
    name = recipe.get("name")
    if opts["encoder"] not in ENCODERS:
        raise CorpusError(f"recipe {name}: encoder must be one of {', '.join(ENCODERS)}, got {opts['encoder']!r}")
    n_layer = ENCODERS[opts["encoder"]][2]
    layers = opts["layers"]
    if (not isinstance(layers, list) or not layers or len(set(layers)) != len(layers)
            or not all(isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= n_layer for x in layers)):
        raise CorpusError(f"recipe {name}: layers must be a list of distinct encoder blocks from 1 to "
                          f"{n_layer}, got {layers!r}")
    if opts["normalize"] not in ("none", "group"):
        raise CorpusError(f"recipe {name}: normalize must be \"none\" or \"group\", got {opts['normalize']!r}")
    for key, low in (("hidden", 0), ("batch_size", 1)):
        if isinstance(opts[key], bool) or not isinstance(opts[key], int) or opts[key] < low:
            raise CorpusError(f"recipe {name}: {key} must be a whole number >= {low}, got {opts[key]!r}")
    for key in ("dropout", "label_smoothing", "alone_fraction", "input_noise"):
        v = opts[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
            raise CorpusError(f"recipe {name}: {key} must be a number from 0 to below 1, got {v!r}")
    return opts


def train_head(data: dict[str, tuple[list[Clip], np.ndarray]], labels: list[str], recipe: dict,
               seed: int, epochs: int, threads: int | None, *, n_state: int, encoder_file: str,
               encoder_sha256: str, log=print):
    """Train a WhisperHead on data[split] = (clips, (n, n_input) pooled vectors of the recipe's
    blocks). The epoch kept is the one with the best val UAR; the temperature is fitted on val.
    Returns (HeadModel, {"history", "best_epoch", "scores": split -> logits})."""
    import torch
    import torch.nn.functional as F
    from .models import HeadModel
    from .models.nets import HeadDims, WhisperHead
    from .metrics import evaluate
    from .normalize import prior_stats
    from .train import _set_seed, fit_temperature
    opts = head_options(recipe)
    _set_seed(seed, threads)
    rng = np.random.default_rng(seed)
    lab = {l: i for i, l in enumerate(labels)}
    tr_clips, V_tr = data["train"]
    y_tr = np.array([lab[c.label] for c in tr_clips])
    group = opts["normalize"] == "group"
    dims = HeadDims(encoder=opts["encoder"], layers=list(opts["layers"]), n_state=n_state,
                    n_labels=len(labels), hidden=opts["hidden"], dropout=opts["dropout"],
                    group_norm=group, group_prior=float(opts["group_prior"]))
    net = WhisperHead(dims)
    model = HeadModel(net, encoder_file, encoder_sha256)
    if group:
        spk = [c.speaker_key for c in tr_clips]
        mu, sd = prior_stats(V_tr, spk)
        net.group_mean.copy_(torch.from_numpy(mu.astype(np.float32)))
        net.group_std.copy_(torch.from_numpy(sd.astype(np.float32)))
        Z_group = model.inputs(list(V_tr), spk, grouped=True)
        Z_alone = model.inputs(list(V_tr))
        ref = Z_group
    else:
        ref = V_tr
    net.feat_mean.copy_(torch.from_numpy(ref.mean(0).astype(np.float32)))
    net.feat_std.copy_(torch.from_numpy(np.maximum(ref.std(0), 1e-5).astype(np.float32)))

    def inputs(split: str) -> np.ndarray:
        clips, V = data[split]
        return model.inputs(list(V), [c.speaker_key for c in clips], grouped=True) if len(clips) else V

    def scores(split: str) -> np.ndarray:
        net.eval()
        with torch.inference_mode():
            return net(torch.from_numpy(inputs(split))).numpy()

    counts = np.bincount(y_tr, minlength=len(labels))
    weights = torch.tensor(len(y_tr) / (len(labels) * np.maximum(counts, 1)), dtype=torch.float32)
    opt = torch.optim.AdamW(net.parameters(), lr=opts["lr"], weight_decay=opts["weight_decay"])
    steps = epochs * int(np.ceil(len(y_tr) / opts["batch_size"]))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=opts["lr"], total_steps=max(1, steps), pct_start=0.1)
    has_val = bool(data.get("val") and len(data["val"][0]))
    y_val = [c.label for c in data["val"][0]] if has_val else []
    history, best = [], (-1.0, None, 0)
    X_tr = ref
    for epoch in range(1, epochs + 1):
        t0 = time.time()
        if group:     # a share of clips normalised alone, so that single clips work too
            alone = rng.random(len(y_tr)) < opts["alone_fraction"]
            X_tr = np.where(alone[:, None], Z_alone, Z_group)
        net.train()
        perm = rng.permutation(len(y_tr))
        total, correct = 0.0, 0
        for s in range(0, len(perm), opts["batch_size"]):
            idx = perm[s:s + opts["batch_size"]]
            x = torch.from_numpy(X_tr[idx])
            if opts["input_noise"]:
                x = x + opts["input_noise"] * net.feat_std * torch.randn_like(x)
            logits = net(x)
            target = torch.from_numpy(y_tr[idx])
            loss = F.cross_entropy(logits, target, weight=weights, label_smoothing=opts["label_smoothing"])
            correct += int((logits.argmax(1) == target).sum())
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        row = {"epoch": epoch, "train_loss": round(total / len(perm), 4),
               "train_accuracy": round(correct / len(perm), 4), "seconds": round(time.time() - t0, 2)}
        if has_val:
            m = evaluate(y_val, [labels[i] for i in scores("val").argmax(1)], labels)
            row.update(val_accuracy=round(m["accuracy"], 4), val_uar=round(m["uar"], 4))
            if m["uar"] > best[0]:
                best = (m["uar"], {k: v.clone() for k, v in net.state_dict().items()}, epoch)
        history.append(row)
        log(f"epoch {epoch}/{epochs}: loss {row['train_loss']:.4f}"
            + (f"  val UAR {row['val_uar']:.3f}" if has_val else ""))
    if best[1] is not None:
        net.load_state_dict(best[1])
    net.eval()
    if has_val:
        dims.temperature = fit_temperature(scores("val").astype(np.float64), np.array([lab[c] for c in y_val]))
    return model, {"history": history, "best_epoch": best[2], "scores": scores}


class _Part:
    """A split's clips, the face of a FeatureSet that the card code reads."""

    def __init__(self, clips):
        self.clips = clips


def fit_head(order: list[Clip], splits: dict, labels: list[str], recipe: dict, seed: int, epochs: int,
             threads, jobs: int, cache_dir, progress: bool, t_start: float):
    """Encode the clips (cached), train the head; what sercli.train.run needs to write the card:
    (HeadModel, extra, parts, failed, probabilities of val and test)."""
    import os
    from .encoded import ENCODED_SETTINGS, FRAME_POOL, encode_clips
    from .models import ENCODERS, encoder_path
    from .train import log
    opts = head_options(recipe)
    fname, sha, n_layer = ENCODERS[opts["encoder"]]
    enc = encoder_path(opts["encoder"])
    cache = None
    if cache_dir is not None:
        cache = os.path.join(os.fspath(cache_dir), "encoded")
    else:
        from .dataset import default_cache_dir
        cache = str(default_cache_dir().parent / "encoded")
    # the blocks up to the highest one asked for are computed anyway: caching them all lets
    # recipes that read other blocks share one cache
    layers = tuple(range(1, max(opts["layers"]) + 1))
    kept, hs, failed = encode_clips(order, enc, layers, jobs=jobs, cache_dir=cache, progress=progress)
    for f in failed:
        log(f"skipped: {f}")
    t_feat = time.time() - t_start
    sel = [layers.index(x) for x in opts["layers"]]
    pos = {c.path: i for i, c in enumerate(kept)}
    from .models import pooled_stats
    n_in = 2 * len(sel) * hs[0].shape[2]
    data = {}
    for k, v in splits.items():
        got = [c for c in v if c.path in pos]
        data[k] = (got, np.stack([pooled_stats(hs[pos[c.path]][sel]) for c in got]) if got
                   else np.zeros((0, n_in), np.float32))
    model, extra = train_head(data, labels, recipe, seed, epochs, threads, n_state=hs[0].shape[2],
                              encoder_file=fname, encoder_sha256=sha, log=log)
    scores = extra.pop("scores")
    probas = {}
    for part in ("val", "test"):
        if data[part][0]:
            z = scores(part) / model.dims.temperature
            z = np.exp(z - z.max(1, keepdims=True))
            probas[part] = z / z.sum(1, keepdims=True)
    extra["features"] = {"encoder": opts["encoder"], "layers": list(opts["layers"]), **ENCODED_SETTINGS,
                         "frames_per_second": 50 // FRAME_POOL}
    extra["t_feat"] = t_feat
    parts = {k: _Part(v[0]) for k, v in data.items()}
    return model, extra, parts, failed, probas
