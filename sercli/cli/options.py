"""The options that several commands share, each declared once, with one help text.

A decorator per option (or per group of options that go together), applied as click's own:

    @click.command()
    @model_option()
    @jobs_option
    @debug_option
    def command(model, jobs, debug): ...
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import click

MODEL_HELP = "Bundled model (`sercli models` lists them) or a model file (.pt state dict, .npz SVM or .json ensemble)."


def model_option(default: str = "whisper-tiny") -> Callable:
    """--model/-m; plot shows what the CNN sees by default, the other commands use whisper-tiny."""
    return click.option("--model", "-m", default=default, show_default=True, help=MODEL_HELP)


jobs_option = click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes for decoding and features. Default: all cores.",
)

debug_option = click.option("--debug", is_flag=True, help="Show Python tracebacks.")

quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress bar, summary or warnings on stderr.")

normalize_by_option = click.option(
    "--normalize-by",
    "normalize_by",
    type=click.Choice(["none", "folder", "speaker"]),
    default="none",
    show_default=True,
    help="Normalise features over each group of files before the model sees them "
    "(models trained for it, e.g. cnn-spk-ens, and SVMs; best with >= 10 clips of mixed "
    "emotions per group): folder = parent "
    "folder; speaker = a manifest's speaker column, else the speaker in a corpus "
    "file name (RAVDESS, CREMA-D, TESS, SAVEE, EmoDB, JL), else the folder.",
)

data_option = click.option(
    "--data",
    required=True,
    type=click.Path(exists=True),
    help="Labelled data: a folder (corpus file names at any depth, one folder per label, "
    "CSV manifests) or a CSV manifest (path,label[,speaker][,corpus]).",
)

cache_option = click.option(
    "--cache",
    type=click.Path(file_okay=False),
    default=None,
    help="Feature cache folder (default: $SERCLI_CACHE or ~/.cache/sercli).",
)

table_or_json_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="stdout: tables to read, or JSON for programs.",
)


def report_options(fn: Callable) -> Callable:
    """--format / --output of classify's report (a file written atomically, or stdout)."""

    @click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "jsonl", "json", "csv"]),
        default=None,
        help="Output format. Default: from --output's extension, else a table on a terminal and JSON Lines when piped.",
    )
    @click.option(
        "--output",
        "-o",
        type=click.Path(dir_okay=False, writable=True),
        default=None,
        help="Write the report to this file (atomically) instead of stdout.",
    )
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)

    return wrapper


def output_option(help: str, *, folder: bool = False) -> Callable:
    """-o/--output FILE (or FOLDER) for what a command writes besides stdout, given to the
    command as `out`. --out, its old name, is still taken (unlisted) so that scripts keep working."""
    path = click.Path(file_okay=False) if folder else click.Path(dir_okay=False)

    def decorate(fn: Callable) -> Callable:
        @click.option("--output", "-o", "out", type=path, default=None, help=help)
        @click.option("--out", "out_alias", default=None, hidden=True, type=click.Path())
        @functools.wraps(fn)
        def wrapper(*args, out: str | None = None, out_alias: str | None = None, **kwargs):
            if out is not None and out_alias is not None and out != out_alias:
                raise click.UsageError("give -o/--output once (--out is its old name)")
            return fn(*args, out=out if out is not None else out_alias, **kwargs)

        return wrapper

    return decorate
