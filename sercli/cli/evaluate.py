"""sercli evaluate: a model scored on labelled recordings."""

from __future__ import annotations

import sys

import click

from .checks import check_group_support, check_model_arg, group_default
from .messages import die, say
from .options import (
    cache_option,
    data_option,
    debug_option,
    jobs_option,
    model_option,
    normalize_by_option,
    output_option,
    table_or_json_option,
)


@click.command()
@data_option
@model_option()
@click.option(
    "--split",
    type=click.Choice(["test", "val", "train", "all"]),
    default=None,
    help="Score the clips of these speakers of the canonical split (sercli/data/speakers.csv); "
    "other speakers get the split `train` gives them (a hash of corpus and speaker), "
    "clips without a speaker count only for 'all'. Default: test when the data holds "
    "clips of the canonical test speakers, else all.",
)
@output_option(
    "Also write metrics.json, per_class.csv, per_corpus.csv, confusion.csv, "
    "confusion_normalized.csv, predictions.csv and confusion.png to this folder.",
    folder=True,
)
@table_or_json_option
@jobs_option
@cache_option
@normalize_by_option
@debug_option
def evaluate(
    data: str,
    model: str,
    split: str | None,
    out: str | None,
    fmt: str,
    jobs: int | None,
    cache: str | None,
    normalize_by: str,
    debug: bool,
) -> None:
    """Score a model on labelled recordings: accuracy, UAR, macro-F1, per class and per corpus.

    Labels are mapped onto the model's labels; clips with a label the model lacks (e.g. calm or
    surprise for a 6-class model) are skipped and counted by label. Files that cannot be decoded
    are listed on stderr and counted. Each clip is scored whole (classify averages 4 s windows
    for recordings over 5 s). --format json prints one JSON object: everything but the per-clip
    predictions. Exit status: 0 when scored, 1 when nothing could be scored, 2 for usage errors.

    \b
    Examples:
      sercli evaluate --data ~/corpora                   # the test speakers' clips
      sercli evaluate --data labels.csv --model svm --split all -o eval/
    """
    import json

    from ..errors import SercliError
    from ..evaluate import evaluate_model, render_table, report, write_outputs
    from ..runtime.classify import resolve_model

    model = group_default(model, normalize_by, False)
    check_model_arg(model)
    try:
        model = resolve_model(model, warn=say)
    except SercliError as exc:
        die(exc, debug)
    if normalize_by != "none":
        check_group_support(model)
    try:
        result = evaluate_model(
            data,
            model,
            split,
            jobs=jobs or -1,
            cache_dir=cache,
            progress=sys.stderr.isatty(),
            warn=say,
            normalize_by=normalize_by,
        )
        written = write_outputs(result, out) if out else []
    except (SercliError, OSError) as exc:
        die(exc, debug)
    for line in result["failed"]:
        say(f"error: {line}")
    if fmt == "json":
        click.echo(json.dumps(report(result), allow_nan=False))
    else:
        from rich.console import Console

        render_table(result, Console())
    say(
        f"evaluated {result['model']} on {result['n']} clips ({result['split']} split): accuracy "
        f"{result['accuracy']:.3f}, UAR {result['uar']:.3f}, macro-F1 {result['macro_f1']:.3f}; "
        f"{result['n_skipped']} skipped, {result['n_failed']} failed"
    )
    if written:
        say(f"wrote {len(written)} files to {out}")
