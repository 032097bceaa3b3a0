"""Training torch nets on log-mel and summary features: sercli's CNN and the seed paper's nets.

One loop (train_net) runs the epochs, keeps the epoch with the best val UAR and logs; what
differs between kinds is how a net is built and how a batch becomes logits (a Batches object):
the seed nets read time-averaged vectors, the CNN reads augmented, cropped log-mels, optionally
normalised per speaker and mixed up, and may train against a corpus adversary.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from ..corpora import Clip
from ..dataset import FEATURE_SETTINGS, FeatureSet
from ..metrics import evaluate
from ..models import save_torch
from .augment import augment_logmel, crop, mix_batch, standardise
from .job import Fitted, Job, log, summary_features
from .recipe import CNNRecipe, SeedCNNRecipe, SeedRNNRecipe, TorchRecipe
from .splits import speaker_groups


def set_seed(seed: int, threads: int | None) -> None:
    import torch

    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)


def predict_torch(model_kind: str, net, fs: FeatureSet) -> np.ndarray:
    """Probabilities (n_clips, n_labels) for every clip of fs, whole clips, by the very path
    `sercli evaluate` and `classify` take (Model.predict_proba), so model selection and the
    card's metrics score what users will get."""
    from ..evaluate import predict_clips, predict_clips_grouped
    from ..models import Model

    net.eval()
    labels = tuple(str(i) for i in range(net.dims.n_labels))
    model = Model("training", model_kind, labels, "", "", {}, net)
    if model.group_trained:
        return predict_clips_grouped(model, fs, speaker_groups(fs.clips))
    return predict_clips(model, fs)


def corpus_adversary(emb: int, hidden: int, n_corpora: int):
    """A corpus classifier on the CNN's embedding behind a gradient reversal (Ganin & Lempitsky,
    2015): it learns to tell the training corpora apart while the reversed gradient teaches the
    CNN an embedding it cannot tell them apart by. Used in training only; never saved."""
    import torch
    from torch import nn

    class Reverse(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, scale):
            ctx.scale = scale
            return x.view_as(x)

        @staticmethod
        def backward(ctx, grad):
            return -ctx.scale * grad, None

    class Adversary(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(emb, hidden), nn.ReLU(), nn.Linear(hidden, n_corpora))

        def forward(self, e, scale: float):
            return self.net(Reverse.apply(e, scale))

    return Adversary()


# ---------------------------------------------------------------- nets and their batches


class SeedBatches:
    """The seed nets' batches: time-averaged log-mel (128) and MFCC (20) vectors, no augmentation."""

    def __init__(self, tr: FeatureSet):
        self.tr = tr

    def logits(self, net, idx: np.ndarray, rng: np.random.Generator):
        """(logits (B, n_labels), embedding or None, mixup (lam, partner index) or None)."""
        import torch

        mel = torch.from_numpy(self.tr.paper_mel[idx].astype(np.float32))
        mfcc = torch.from_numpy(self.tr.paper_mfcc[idx].astype(np.float32))
        return net(mel, mfcc), None, None


def seed_cnn_net(recipe: SeedCNNRecipe, tr: FeatureSet, n_labels: int):
    """The seed paper's dual-branch 1-D CNN, its input statistics set from `tr`."""
    from ..models import nets

    return _seed_inputs(nets.SeedCNN(nets.SeedCNNDims(n_labels=n_labels)), tr)


def seed_rnn_net(recipe: SeedRNNRecipe, tr: FeatureSet, n_labels: int):
    """The seed paper's dual RNN, its input statistics set from `tr`."""
    from ..models import nets

    dims = nets.SeedRNNDims(
        n_labels=n_labels, hidden=recipe.hidden, layers=recipe.layers, cell=recipe.cell, fc=recipe.fc
    )
    return _seed_inputs(nets.SeedRNN(dims), tr)


def _seed_inputs(net, tr: FeatureSet):
    import torch

    net.mel_mean.copy_(torch.from_numpy(tr.paper_mel.mean(0)))
    net.mel_std.copy_(torch.from_numpy(tr.paper_mel.std(0) + 1e-3))
    net.mfcc_mean.copy_(torch.from_numpy(tr.paper_mfcc.mean(0)))
    net.mfcc_std.copy_(torch.from_numpy(tr.paper_mfcc.std(0) + 1e-3))
    return net, SeedBatches(tr)


class CNNBatches:
    """The CNN's batches: each clip cropped and augmented (after its speaker's offset under
    normalize = "group", or its own for a share of clips), then optionally mixed up."""

    def __init__(self, recipe: CNNRecipe, tr: FeatureSet, group: tuple | None):
        self.recipe, self.tr = recipe, tr
        # under group normalisation: per clip the offsets and summary z-scores over its speaker's
        # clips and over itself alone (cnn_group_offsets)
        self.group = group

    def logits(self, net, idx: np.ndarray, rng: np.random.Generator):
        """(logits (B, n_labels), embedding (B, E), mixup (lam, partner index) or None)."""
        import torch

        from ..models import pad_batch

        r, tr = self.recipe, self.tr
        if self.group is not None:
            off_spk, z_spk, off_one, z_one = self.group
            alone = (rng.random(len(idx)) < r.single_clip_prob)[:, None]
            offs = np.where(alone, off_one[idx], off_spk[idx])
            summ_b = np.where(alone, z_one[idx], z_spk[idx]) if z_spk is not None else None
            mels = [
                augment_logmel(crop(tr.logmel[i], r.crop_frames, rng) - offs[j][:, None], rng, r)
                for j, i in enumerate(idx)
            ]
        else:
            summ_b = tr.summary[idx]
            mels = [augment_logmel(crop(tr.logmel[i], r.crop_frames, rng), rng, r) for i in idx]
        if r.mixup:
            mels = [standardise(m) for m in mels]
        x, lengths = pad_batch(mels)
        summ = torch.from_numpy(summ_b.astype(np.float32)) if net.dims.n_summary else None
        mix = None
        if r.mixup:
            x, lengths, summ, lam, other = mix_batch(x, lengths, summ, rng, r.mixup)
            mix = (lam, other)
        e = net.embed(x, lengths, summ)
        return net.head(e), e, mix


def cnn_net(recipe: CNNRecipe, tr: FeatureSet, n_labels: int):
    """sercli's CNN with its input statistics set from `tr` (per speaker under normalize = group)."""
    import torch

    from ..models import nets

    group = recipe.normalize == "group"
    dims = nets.CNNDims(
        n_mels=tr.logmel[0].shape[0],
        n_labels=n_labels,
        channels=list(recipe.channels),
        n_summary=tr.summary.shape[1] if recipe.fuse_summary else 0,
        hidden=recipe.hidden,
        convs_per_block=recipe.convs_per_block,
        dropout=recipe.dropout,
        time_pool=recipe.time_pool,
        band_norm=recipe.band_norm,
        pooling=recipe.pooling,
        group_norm=group,
        group_prior=recipe.group_prior,
    )
    net = nets.EmotionCNN(dims)
    train_summary, offsets = tr.summary, None
    if group:
        # each training speaker's inputs normalised over that speaker's clips; a share of
        # the clips (single_clip_prob) each alone instead, so that single-clip use works too
        from ..normalize import cnn_group_offsets, cnn_group_vectors, prior_stats

        V = cnn_group_vectors(tr.logmel, tr.summary if dims.n_summary else None)
        g_mean, g_std = prior_stats(V, speaker_groups(tr.clips))
        net.group_mean.copy_(torch.from_numpy(g_mean.astype(np.float32)))
        net.group_std.copy_(torch.from_numpy(g_std.astype(np.float32)))
        off_spk, z_spk = cnn_group_offsets(V, dims.n_mels, speaker_groups(tr.clips), g_mean, g_std, dims.group_prior)
        off_one, z_one = cnn_group_offsets(V, dims.n_mels, None, g_mean, g_std, dims.group_prior)
        offsets = (off_spk, z_spk, off_one, z_one)
        train_summary = z_spk
    if dims.n_summary:
        net.summary_mean.copy_(torch.from_numpy(train_summary.mean(0)))
        net.summary_std.copy_(torch.from_numpy(train_summary.std(0) + 1e-3))
    return net, CNNBatches(recipe, tr, offsets)


class Adversary:
    """The corpus adversary's part of the loss (recipe key corpus_adversary: its weight)."""

    def __init__(self, net, clips: list[Clip], weight: float):
        import torch
        from torch import nn

        corpora = sorted({c.corpus for c in clips})  # two or more: checked by run()
        self.y = np.array([corpora.index(c.corpus) for c in clips])
        self.module = corpus_adversary(net.embed_dim, net.dims.hidden, len(corpora))
        # each corpus weighs the same in the adversary's loss, however many clips it has
        cc = np.bincount(self.y, minlength=len(corpora)).astype(np.float64)
        self.loss_fn = nn.CrossEntropyLoss(weight=torch.tensor(cc.sum() / cc / len(corpora), dtype=torch.float32))
        self.weight = weight

    def loss(self, e, idx: np.ndarray, progress: float, blend: Callable):
        """(weighted loss, correct corpus guesses) for a batch's embeddings e (B, E); the
        reversal grows from 0 to 1 over training (DANN's schedule, `progress` from 0 to 1), so
        the emotion classes are learnt before the corpora are unlearnt."""
        import torch

        scale = 2.0 / (1.0 + np.exp(-10.0 * progress)) - 1.0
        logits, yc = self.module(e, scale), torch.from_numpy(self.y[idx])
        return self.weight * blend(self.loss_fn, logits, yc), int((logits.argmax(1) == yc).sum())


# ---------------------------------------------------------------- the loop


def train_net(
    data: dict[str, FeatureSet],
    labels: list[str],
    recipe: TorchRecipe,
    seed: int,
    epochs: int,
    threads: int | None,
    model_kind: str,
    build: Callable,
) -> tuple[object, list[dict]]:
    """Train the net `build(recipe, train features, n_labels)` gives on data["train"]; the epoch
    with the best val UAR is kept (the last when val is empty). Returns (net, history)."""
    import torch
    from torch import nn

    set_seed(seed, threads)
    rng = np.random.default_rng(seed)
    tr, va = data["train"], data["val"]
    y = np.array([labels.index(c.label) for c in tr.clips])
    net, batches = build(recipe, tr, len(labels))
    bs = recipe.batch_size
    steps = epochs * int(np.ceil(len(y) / bs))
    weight = getattr(recipe, "corpus_adversary", 0.0)  # a CNN key; the seed nets have none
    adversary = Adversary(net, tr.clips, weight) if weight else None
    params = list(net.parameters()) + (list(adversary.module.parameters()) if adversary is not None else [])
    opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=max(1, steps), pct_start=0.15)
    counts = np.bincount(y, minlength=len(labels)).astype(np.float64)
    class_weight = None
    if recipe.balanced:
        class_weight = torch.tensor(counts.sum() / np.maximum(counts, 1) / len(labels), dtype=torch.float32)
    loss_fn = nn.CrossEntropyLoss(weight=class_weight, label_smoothing=recipe.label_smoothing)
    history, best, best_state = [], -1.0, None
    yv = [c.label for c in va.clips]
    for epoch in range(1, epochs + 1):
        net.train()
        t0, tot, correct, seen, adv_correct = time.time(), 0.0, 0, 0, 0
        perm = rng.permutation(len(y))
        for s in range(0, len(perm), bs):
            idx = perm[s : s + bs]
            yb = torch.from_numpy(y[idx])
            logits, e, mix = batches.logits(net, idx, rng)

            def blend(fn, out, target, mix=mix):
                # under mixup each row is two clips blended by the batch's lam: so is its loss
                if mix is None:
                    return fn(out, target)
                lam, other = mix
                return lam * fn(out, target) + (1 - lam) * fn(out, target[other])

            loss = blend(loss_fn, logits, yb)
            if adversary is not None:
                adv_loss, adv_hits = adversary.loss(e, idx, (epoch - 1 + s / len(perm)) / epochs, blend)
                loss = loss + adv_loss
                adv_correct += adv_hits
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == yb).sum())
            seen += len(idx)
        row = {
            "epoch": epoch,
            "train_loss": tot / seen,
            "train_accuracy": correct / seen,
            "seconds": round(time.time() - t0, 1),
        }
        if adversary is not None:  # how well the corpora can still be told apart (a uniform guess: 1/n)
            row["corpus_accuracy"] = adv_correct / seen
        if len(va.clips):
            pv = predict_torch(model_kind, net, va)
            m = evaluate(yv, [labels[i] for i in pv.argmax(1)], labels)
            row.update(val_accuracy=m["accuracy"], val_uar=m["uar"])
            if m["uar"] > best:
                best = m["uar"]
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                row["best"] = True
        history.append(row)
        log(
            f"epoch {epoch}/{epochs}  loss {row['train_loss']:.3f}  train acc {row['train_accuracy']:.3f}"
            + (f"  val acc {row['val_accuracy']:.3f}  val UAR {row['val_uar']:.3f}" if "val_uar" in row else "")
            + (f"  corpus acc {row['corpus_accuracy']:.3f}" if "corpus_accuracy" in row else "")
            + f"  ({row['seconds']} s)"
        )
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return net, history


class NetTrainer:
    """Trainer of a torch net on summary features (model kinds cnn, seed-cnn, seed-rnn)."""

    suffix = ".pt"

    def __init__(self, build: Callable):
        self.build = build

    def fit(self, recipe: TorchRecipe, splits: dict[str, list[Clip]], job: Job) -> Fitted:
        labels = list(recipe.labels)
        split_fs, failed, t_feat = summary_features(splits, labels, job)
        net, history = train_net(split_fs, labels, recipe, job.seed, job.epochs, job.threads, recipe.model, self.build)
        probas = {k: predict_torch(recipe.model, net, split_fs[k]) for k in ("val", "test") if split_fs[k].clips}
        return Fitted(
            model=net,
            save=lambda path, config: save_torch(path, net, config),
            parts={k: v.clips for k, v in split_fs.items()},
            probas=probas,
            features=FEATURE_SETTINGS,
            failed=failed,
            t_feat=t_feat,
            history=history,
            group_normalised=bool(getattr(net.dims, "group_norm", False)),
        )
