"""One training run: data -> splits -> the recipe's trainer -> weights, model card and figures.

Test speakers of the canonical split never touch training or model selection: the best epoch
is picked on the val speakers, and the test speakers are scored once, at the end.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from .. import __version__
from ..corpora import Clip, scan, unsplittable
from ..dataset import FEATURE_SETTINGS
from ..errors import CorpusError
from ..metrics import evaluate
from .card import CAVEATS, INTENDED_USE, LICENCE, data_summary, library_versions, write_card
from .head import HeadTrainer
from .job import Job, Trainer, log
from .recipe import CNNRecipe, HeadRecipe, Recipe, SeedCNNRecipe, SeedRNNRecipe, SVMRecipe
from .splits import make_splits, protocol_description
from .svm import SVMTrainer
from .torch_loop import NetTrainer, cnn_net, seed_cnn_net, seed_rnn_net

#: recipe type (one per model kind, recipe.RECIPE_TYPES) -> how that kind is trained
TRAINERS: dict[type[Recipe], Trainer] = {
    CNNRecipe: NetTrainer(cnn_net),
    SVMRecipe: SVMTrainer(),
    SeedCNNRecipe: NetTrainer(seed_cnn_net),
    SeedRNNRecipe: NetTrainer(seed_rnn_net),
    HeadRecipe: HeadTrainer(),
}


def weights_name(recipe: Recipe) -> str:
    """The file name a run of `recipe` writes its weights to: NAME.pt, or NAME.npz for an SVM."""
    return recipe.name + TRAINERS[type(recipe)].suffix


def check_data(recipe: Recipe, data: str | os.PathLike, clips: list[Clip], splits: dict[str, list[Clip]]) -> None:
    """One-line errors (and warnings) about the data, before any feature is extracted."""
    labels = list(recipe.labels)
    loose = unsplittable([c for c in clips if c.label in labels])
    if loose and recipe.protocol == "speaker":
        log(
            f"warning: {loose} clips have no speaker (one folder per label): they are split by file, "
            "so val and test hold voices that training heard; a CSV manifest with a speaker column "
            "gives a speaker-independent split"
        )
    if not splits["train"]:
        raise CorpusError(f"{data}: no training clips with labels {', '.join(labels)}")
    present = {c.label for c in splits["train"]}
    missing = [lab for lab in labels if lab not in present]
    if missing:
        raise CorpusError(
            f"{data}: no training clips of {', '.join(missing)}, which recipe {recipe.name} "
            f'predicts; give --recipe a file with extends = "{recipe.name}" and the labels '
            "your data has (labels = [...])"
        )
    for part, what in (
        ("val", "nothing is selected or calibrated on val (a CNN keeps its last epoch)"),
        ("test", "the card has no test metrics"),
    ):
        if not splits[part]:
            log(f"warning: no {part} clips in {data} under protocol {recipe.protocol}: {what}")
    corpora = sorted({c.corpus for c in splits["train"]})
    if getattr(recipe, "corpus_adversary", 0.0) and len(corpora) < 2:
        raise CorpusError(
            f"recipe {recipe.name}: corpus_adversary needs model cnn and "
            f"training clips from two or more corpora (found {', '.join(corpora)})"
        )


def run(
    data: str | os.PathLike,
    *,
    recipe: Recipe,
    out: str | os.PathLike,
    epochs: int | None = None,
    jobs: int = -1,
    seed: int | None = None,
    threads: int | None = None,
    cache_dir: str | None = None,
    command: str = "",
    progress: bool = True,
) -> dict:
    """Train `recipe` on the corpora under `data`; write weights, card and plots to `out`.
    `epochs` and `seed` override the recipe's; returns the model card."""
    t_start = time.time()
    job = Job(
        data=data,
        seed=recipe.seed if seed is None else int(seed),
        epochs=recipe.epochs if epochs is None else int(epochs),
        threads=threads,
        jobs=jobs,
        cache_dir=cache_dir,
        progress=progress,
        t_start=t_start,
    )
    labels = list(recipe.labels)
    sc = scan(data)
    log(f"found {len(sc.clips)} labelled clips in {data} ({len(sc.unmatched)} unmatched files)")
    splits = make_splits(sc.clips, labels, recipe.protocol, job.seed)
    check_data(recipe, data, sc.clips, splits)
    trainer = TRAINERS[type(recipe)]
    fitted = trainer.fit(recipe, splits, job)
    metrics = {}
    for name in ("val", "test"):
        clips = fitted.parts[name]
        if not clips:
            continue
        proba = fitted.probas[name]
        metrics[name] = evaluate(
            [c.label for c in clips], [labels[i] for i in proba.argmax(1)], labels, [c.corpus for c in clips]
        )
        if fitted.calibrated:
            from ..calibration import calibration

            metrics[name]["calibration"] = calibration(proba, [labels.index(c.label) for c in clips])
        log(
            f"{name}: accuracy {metrics[name]['accuracy']:.3f}  UAR {metrics[name]['uar']:.3f}  "
            f"macro-F1 {metrics[name]['macro_f1']:.3f}  (n={metrics[name]['n']})"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    name = recipe.name
    weights = out / weights_name(recipe)
    fitted.save(weights, {"kind": recipe.model, "labels": labels, "recipe": name, **fitted.config})
    from ..models import sha256_file

    digest = sha256_file(weights)
    protocol = protocol_description(recipe.protocol, job.seed)
    if fitted.group_normalised:
        protocol += (
            "; inputs z-scored per speaker (val / test metrics normalise over each "
            "speaker's clips of the split, as --normalize-by speaker does)"
        )
    card = {
        "name": name,
        "kind": recipe.model,
        "description": recipe.description,
        "weights": weights.name,
        "sha256": digest,
        "labels": labels,
        "sample_rate": FEATURE_SETTINGS["sr"],
        "features": fitted.features,
        "recipe": recipe.as_dict(),
        "protocol": protocol,
        "data": data_summary(fitted.parts),
        "skipped_files": fitted.failed,
        "unmatched_files": len(sc.unmatched),
        "metrics": metrics,
        "history": fitted.history,
        "seed": job.seed,
        "epochs": job.epochs,
        "threads": threads,
        "command": command,
        "sercli_version": __version__,
        "library_versions": library_versions(),
        "licence": LICENCE,
        "intended_use": INTENDED_USE,
        "caveats": CAVEATS,
        "seconds": {"features": round(fitted.t_feat, 1), "total": round(time.time() - t_start, 1)},
        **fitted.card,
    }
    write_card(card, out)
    log(f"wrote {weights} (sha256 {digest}) in {card['seconds']['total']} s")
    return card
