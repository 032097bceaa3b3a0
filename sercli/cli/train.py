"""sercli train: a recipe trained on labelled corpora, written as weights, card and plots."""

from __future__ import annotations

import os
import shlex
import sys
import time

import click

from .messages import die, say, usage_line
from .options import cache_option, data_option, debug_option, jobs_option, output_option


@click.command()
@data_option
@click.option(
    "--recipe",
    default="whisper-tiny",
    show_default=True,
    help="A bundled recipe's name (those of the bundled models and of the seed paper) or a .toml file.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Set a recipe key (repeatable), VALUE read as a TOML literal, else as a string: "
    "--set protocol=loco:cremad --set 'channels=[16, 32]'.",
)
@output_option(
    "Folder for the weights, model card and plots. Default: a new folder runs/RECIPE-YYYYmmdd-HHMMSS.", folder=True
)
@click.option("--force", is_flag=True, help="Overwrite a weights file already in the output folder.")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Override the recipe's epochs.")
@jobs_option
@click.option("--seed", type=int, default=None, help="Override the recipe's seed.")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="Torch threads (results are deterministic for a given seed and thread count).",
)
@cache_option
@click.option(
    "--manifest",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the clip manifest (CSV) and emotion distribution plots next to it.",
)
@debug_option
def train(
    data: str,
    recipe: str,
    overrides: tuple[str, ...],
    out: str | None,
    force: bool,
    epochs: int | None,
    jobs: int | None,
    seed: int | None,
    threads: int | None,
    cache: str | None,
    manifest: str | None,
    debug: bool,
) -> None:
    """Train a model from labelled corpora and write its weights and model card.

    Speakers are split as sercli/data/speakers.csv says; speakers it does not list (your own
    corpus) are split whole 70/15/15 by a hash of corpus and speaker. Test speakers never
    touch training or model selection.

    \b
    Examples:
      sercli train --data ~/corpora --recipe cnn          # -> runs/cnn-YYYYmmdd-HHMMSS/
      sercli train --data ~/corpora --recipe cnn --set protocol=loco:cremad
      sercli train --data labels.csv --recipe mine.toml -o runs/mine
    """
    from ..errors import SercliError
    from ..training.recipe import bundled_names, is_recipe, load_recipe, parse_overrides

    if not is_recipe(recipe):
        usage_line(f"--recipe {recipe}: no such recipe; use one of {', '.join(bundled_names())} or a .toml file")
    try:
        sets = parse_overrides(overrides)
    except SercliError as exc:
        usage_line(str(exc))
    try:
        from ..training.run import run, weights_name

        r = load_recipe(recipe, sets)
        out = output_folder(r.name, weights_name(r), out, force)
        if manifest:
            write_manifest_and_plots(data, manifest)
        # the card records the command as typed, --set included, quoted so that it reruns as written
        run(
            data,
            recipe=r,
            out=out,
            epochs=epochs,
            jobs=jobs or -1,
            seed=seed,
            threads=threads,
            cache_dir=cache,
            command=shlex.join(["sercli"] + sys.argv[1:]),
            progress=sys.stderr.isatty(),
        )
    except SercliError as exc:
        die(exc, debug)


def write_manifest_and_plots(data: str, manifest: str) -> None:
    """--manifest: the clips found under `data` as a CSV, and their emotions plotted beside it."""
    from ..corpora import scan, write_manifest
    from ..plots import plot_distribution

    sc = scan(data)
    write_manifest(sc.clips, manifest)
    base = os.path.splitext(manifest)[0]
    plot_distribution(sc.clips, base + ".per-corpus.png", base + ".combined.png")
    click.echo(f"wrote {manifest} ({len(sc.clips)} clips, {len(sc.unmatched)} unmatched)", err=True)


def output_folder(name: str, weights_file: str, out: str | None, force: bool) -> str:
    """The folder train writes to: `out`, or a new runs/NAME-YYYYmmdd-HHMMSS. A weights file
    already there is a usage error unless --force (the bundled weights/ is one such folder)."""
    from ..errors import display_path

    if out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = os.path.join("runs", f"{name}-{stamp}")
        n = 1
        while os.path.exists(out):
            n += 1
            out = os.path.join("runs", f"{name}-{stamp}-{n}")
        say(f"writing to {out}/")
    weights = os.path.join(out, weights_file)
    if os.path.exists(weights) and not force:
        usage_line(f"{display_path(weights)} exists: give another -o/--output folder, or --force to overwrite it")
    return out
