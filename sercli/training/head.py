"""Training a head over cached Whisper encoder outputs (recipe model = "whisper-head").

Encoder outputs come from sercli.encoded (computed once, cached); each epoch then costs
seconds. The epoch kept is the one with the best val UAR (val speakers only), and the softmax
temperature is fitted on val, so the test speakers are scored once, at the end.
"""

from __future__ import annotations

import os
import time

import numpy as np

from ..calibration import fit_temperature
from ..corpora import Clip
from ..metrics import evaluate
from ..models import save_torch
from .job import Fitted, Job, log
from .recipe import HeadRecipe
from .torch_loop import set_seed


def train_head(
    data: dict[str, tuple[list[Clip], np.ndarray]],
    labels: list[str],
    recipe: HeadRecipe,
    seed: int,
    epochs: int,
    threads: int | None,
    *,
    n_state: int,
    encoder_file: str,
    encoder_sha256: str,
    log=print,
):
    """Train a WhisperHead on data[split] = (clips, (n, n_input) pooled vectors of the recipe's
    blocks). The epoch kept is the one with the best val UAR; the temperature is fitted on val.
    Returns (HeadModel, {"history", "best_epoch", "scores": split -> logits})."""
    import torch
    import torch.nn.functional as F

    from ..models import HeadModel
    from ..models.nets import HeadDims, WhisperHead
    from ..normalize import prior_stats

    set_seed(seed, threads)
    rng = np.random.default_rng(seed)
    lab = {name: i for i, name in enumerate(labels)}
    tr_clips, V_tr = data["train"]
    y_tr = np.array([lab[c.label] for c in tr_clips])
    group = recipe.normalize == "group"
    dims = HeadDims(
        encoder=recipe.encoder,
        layers=list(recipe.layers),
        n_state=n_state,
        n_labels=len(labels),
        hidden=recipe.hidden,
        dropout=recipe.dropout,
        group_norm=group,
        group_prior=recipe.group_prior,
        precision=recipe.run_precision,
    )
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
    opt = torch.optim.AdamW(net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    steps = epochs * int(np.ceil(len(y_tr) / recipe.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=max(1, steps), pct_start=0.1)
    has_val = bool(data.get("val") and len(data["val"][0]))
    y_val = [c.label for c in data["val"][0]] if has_val else []
    history, best = [], (-1.0, None, 0)
    X_tr = ref
    for epoch in range(1, epochs + 1):
        t0 = time.time()
        if group:  # a share of clips normalised alone, so that single clips work too
            alone = rng.random(len(y_tr)) < recipe.alone_fraction
            X_tr = np.where(alone[:, None], Z_alone, Z_group)
        net.train()
        perm = rng.permutation(len(y_tr))
        total, correct = 0.0, 0
        for s in range(0, len(perm), recipe.batch_size):
            idx = perm[s : s + recipe.batch_size]
            x = torch.from_numpy(X_tr[idx])
            if recipe.input_noise:
                x = x + recipe.input_noise * net.feat_std * torch.randn_like(x)
            logits = net(x)
            target = torch.from_numpy(y_tr[idx])
            loss = F.cross_entropy(logits, target, weight=weights, label_smoothing=recipe.label_smoothing)
            correct += int((logits.argmax(1) == target).sum())
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        row = {
            "epoch": epoch,
            "train_loss": round(total / len(perm), 4),
            "train_accuracy": round(correct / len(perm), 4),
            "seconds": round(time.time() - t0, 2),
        }
        if has_val:
            m = evaluate(y_val, [labels[i] for i in scores("val").argmax(1)], labels)
            row.update(val_accuracy=round(m["accuracy"], 4), val_uar=round(m["uar"], 4))
            if m["uar"] > best[0]:
                best = (m["uar"], {k: v.clone() for k, v in net.state_dict().items()}, epoch)
        history.append(row)
        log(
            f"epoch {epoch}/{epochs}: loss {row['train_loss']:.4f}"
            + (f"  val UAR {row['val_uar']:.3f}" if has_val else "")
        )
    if best[1] is not None:
        net.load_state_dict(best[1])
    net.eval()
    if has_val:
        dims.temperature = fit_temperature(scores("val").astype(np.float64), np.array([lab[c] for c in y_val]))
    return model, {"history": history, "best_epoch": best[2], "scores": scores}


def pooled_vectors(
    clips: list[Clip],
    encoder: str,
    layers,
    *,
    jobs: int,
    cache_dir: str,
    progress: bool,
    speed: float = 1.0,
    precision: str = "fp32",
) -> tuple[list[Clip], dict[str, np.ndarray], int, list[str]]:
    """Encode clips (cached, sercli.encoded) and pool the encoder blocks `layers` per clip: (clips
    encoded, path -> (2 * len(layers) * n_state,) float32 vector, n_state, the files that failed)."""
    from ..encoded import encode_clips
    from ..models import encoder_path, pooled_stats

    # the blocks up to the highest one asked for are computed anyway: caching them all lets
    # recipes that read other blocks share one cache
    computed = tuple(range(1, max(layers) + 1))
    kept, hs, failed = encode_clips(
        clips,
        encoder_path(encoder),
        computed,
        jobs=jobs,
        cache_dir=cache_dir,
        progress=progress,
        speed=speed,
        precision=precision,
    )
    sel = [computed.index(x) for x in layers]
    return kept, {c.path: pooled_stats(h[sel]) for c, h in zip(kept, hs)}, hs[0].shape[2], failed


def encode_splits(
    splits: dict[str, list[Clip]], recipe: HeadRecipe, job: Job
) -> tuple[dict[str, tuple[list[Clip], np.ndarray]], int, list[str]]:
    """Encode every split's clips (cached) and pool the recipe's blocks per clip: split ->
    (clips encoded, (n, 2 * n_blocks * n_state) pooled vectors), n_state and the files that failed."""
    if job.cache_dir is not None:
        cache = os.path.join(os.fspath(job.cache_dir), "encoded")
    else:
        from ..dataset import default_cache_dir

        cache = str(default_cache_dir().parent / "encoded")
    # the head learns from vectors at `precision`; val and test (selection, temperature, the
    # card's numbers) are at the precision it runs at, when the recipe runs it at another
    passes = {recipe.precision: ["train", "val", "test"]}
    if recipe.run_precision != recipe.precision:
        passes = {recipe.precision: ["train"], recipe.run_precision: ["val", "test"]}
    vectors, failed, n_state = {}, [], 0
    for precision, parts in passes.items():
        clips = [c for part in parts for c in splits[part]]
        if not clips:
            continue
        _, got, n_state, bad = pooled_vectors(
            clips,
            recipe.encoder,
            recipe.layers,
            jobs=job.jobs,
            cache_dir=cache,
            progress=job.progress,
            precision=precision,
        )
        vectors.update(got)
        failed += bad
    for f in failed:
        log(f"skipped: {f}")
    n_in = 2 * len(recipe.layers) * n_state
    data = {}
    for k, v in splits.items():
        got = [c for c in v if c.path in vectors]
        data[k] = (got, np.stack([vectors[c.path] for c in got]) if got else np.zeros((0, n_in), np.float32))
    return data, n_state, failed


class HeadTrainer:
    """Trainer of model kind whisper-head: encode (cached), train the head, calibrate on val."""

    suffix = ".pt"

    def fit(self, recipe: HeadRecipe, splits: dict[str, list[Clip]], job: Job) -> Fitted:
        from ..encoded import ENCODED_SETTINGS, FRAME_POOL, run_precision
        from ..models import ENCODERS
        from .card import encoder_card

        fname, sha, _ = ENCODERS[recipe.encoder]
        data, n_state, failed = encode_splits(splits, recipe, job)
        t_feat = time.time() - job.t_start
        model, extra = train_head(
            data,
            list(recipe.labels),
            recipe,
            job.seed,
            job.epochs,
            job.threads,
            n_state=n_state,
            encoder_file=fname,
            encoder_sha256=sha,
            log=log,
        )
        scores = extra["scores"]
        probas = {}
        for part in ("val", "test"):
            if data[part][0]:
                z = scores(part) / model.dims.temperature
                z = np.exp(z - z.max(1, keepdims=True))
                probas[part] = z / z.sum(1, keepdims=True)
        features = {
            "encoder": recipe.encoder,
            "layers": list(recipe.layers),
            **({"precision": recipe.run_precision} if recipe.run_precision != "fp32" else {}),
            **ENCODED_SETTINGS,
            "frames_per_second": 50 // FRAME_POOL,
        }
        return Fitted(
            model=model,
            save=lambda path, config: save_torch(path, model.net, config),
            parts={k: v[0] for k, v in data.items()},
            probas=probas,
            features=features,
            failed=failed,
            t_feat=t_feat,
            history=extra["history"],
            group_normalised=model.dims.group_norm,
            calibrated=True,
            config={"encoder_sha256": model.encoder_sha256},
            card={
                "encoder": encoder_card(model.dims.encoder),
                "temperature": model.dims.temperature,
                "layer_weights": None,
                # bf16 falls back to fp32 on a CPU without native bf16 (sercli.encoded.run_precision)
                **({"precision_run": run_precision(recipe.run_precision)} if recipe.run_precision != "fp32" else {}),
                **({"precision_trained": recipe.precision} if recipe.run_precision != recipe.precision else {}),
                "best_epoch": extra["best_epoch"],
            },
        )
