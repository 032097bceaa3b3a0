"""What the lab's head experiments share (train.encoder_augment, train.encoder_precision,
train.head_seeds): a head recipe's canonical split, one head trained per seed on pooled encoder
vectors, and its val and test scores, a group head scored per speaker as --normalize-by runs it."""

from __future__ import annotations

import argparse
import os

import numpy as np

from sercli.metrics import evaluate
from sercli.models import ENCODERS
from sercli.training.head import train_head
from sercli.training.recipe import HeadRecipe, load_recipe
from sercli.training.splits import make_splits


def lab_parser(description: str, *, seeds: int, jobs: int, threads: int) -> argparse.ArgumentParser:
    """The options every head experiment takes; a script adds its own."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--data", required=True)
    ap.add_argument("--cache", required=True, help="the --cache given to sercli train")
    ap.add_argument("--recipe", default="whisper-tiny")
    ap.add_argument("--seeds", type=int, default=seeds)
    ap.add_argument("--jobs", type=int, default=jobs)
    ap.add_argument("--threads", type=int, default=threads)
    return ap


def head_splits(args) -> tuple[HeadRecipe, list[str], dict, str]:
    """(recipe, labels, split -> clips, the encoder cache folder) for the parsed lab options."""
    from sercli.corpora import scan

    recipe = load_recipe(args.recipe)
    if not isinstance(recipe, HeadRecipe):
        raise SystemExit(f"recipe {recipe.name} is not a whisper-head recipe")
    labels = list(recipe.labels)
    splits = make_splits(scan(args.data).clips, labels, recipe.protocol)
    return recipe, labels, splits, os.path.join(args.cache, "encoded")


def recipe_data(args, recipe: HeadRecipe, splits: dict) -> dict:
    """split -> (clips, pooled vectors) as `sercli train` encodes them for the recipe (its
    precision for train, its classify precision for val and test; cached under --cache)."""
    from sercli.training.head import encode_splits
    from sercli.training.job import Job

    job = Job(args.data, 0, recipe.epochs, args.threads, args.jobs, args.cache, progress=False)
    return encode_splits(splits, recipe, job)[0]


def stacked(splits: dict, vectors: dict) -> dict:
    """split -> (clips, (n, n_input) their pooled vectors), as train_head takes them."""
    return {k: (cs, np.stack([vectors[c.path] for c in cs])) for k, cs in splits.items()}


def fit_seed(data: dict, labels: list[str], recipe: HeadRecipe, seed: int, threads: int):
    """(HeadModel, train_head's extras) of one seed, quietly."""
    fname, sha, _ = ENCODERS[recipe.encoder]
    return train_head(
        data,
        labels,
        recipe,
        seed,
        recipe.epochs,
        threads,
        n_state=data["train"][1].shape[1] // (2 * len(recipe.layers)),
        encoder_file=fname,
        encoder_sha256=sha,
        log=lambda *a: None,
    )


def probabilities(model, clips, V: np.ndarray) -> np.ndarray:
    """The head's calibrated probabilities; a group head's vectors z-scored per speaker."""
    return model.predict_proba(list(V), [c.speaker_key for c in clips], grouped=True)


def scores(model, data: dict, labels: list[str]) -> dict:
    """ "val" and "test" -> sercli.metrics.evaluate of the model on data[split], per corpus."""
    out = {}
    for part in ("val", "test"):
        cs, V = data[part]
        pred = [labels[i] for i in probabilities(model, cs, V).argmax(1)]
        out[part] = evaluate([c.label for c in cs], pred, labels, [c.corpus for c in cs])
    return out


def score_cells(m: dict) -> str:
    """val UAR | test UAR | test acc | test UAR per corpus, for a table row."""
    pc = ", ".join(f"{k} {v['uar']:.3f}" for k, v in sorted(m["test"]["per_corpus"].items()))
    return f"{m['val']['uar']:.3f} | {m['test']['uar']:.3f} | {m['test']['accuracy']:.3f} | {pc}"
