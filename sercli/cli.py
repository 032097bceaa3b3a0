"""The command line: a thin click layer over the library (the only module that imports click).

Heavy imports (torch, numpy, joblib) happen inside commands, so `sercli --help` stays fast.
"""
from __future__ import annotations

import functools
import os
import signal
import sys
import time

import click

from . import __version__


def _die(exc: BaseException, debug: bool):
    if debug:
        raise exc
    raise click.ClickException(" ".join(str(exc).split()))


def _err(msg: str, quiet: bool = False) -> None:
    if not quiet:
        click.echo(msg, err=True)


def output_options(fn):
    """--format / --output, shared by the commands that write reports."""
    @click.option("--format", "fmt", type=click.Choice(["table", "jsonl", "json", "csv"]), default=None,
                  help="Output format. Default: from --output's extension, else a table on a "
                       "terminal and JSON Lines when piped.")
    @click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None,
                  help="Write the report to this file (atomically) instead of stdout.")
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)
    return wrapper


def _ext_list(ctx, param, value):
    if value is None:
        return None
    exts = [e.strip().lower().lstrip(".") for e in value.split(",") if e.strip()]
    if not exts:
        raise click.BadParameter("give at least one extension, e.g. wav,flac")
    return exts


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sercli")
def cli():
    """Speech emotion recognition for folders of recordings.

    Data goes to stdout; progress, summaries and warnings go to stderr.
    """


class _Interrupted(Exception):
    pass


def _raise_interrupt(signum, frame):
    raise _Interrupted(signal.Signals(signum).name)


@cli.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--model", "-m", default="cnn", show_default=True,
              help="Bundled model (cnn, seed-cnn, svm) or a model file (.pt state dict or .npz).")
@output_options
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Worker processes for decoding and features. Default: all cores.")
@click.option("--no-recursive", is_flag=True, help="Do not descend into sub-folders.")
@click.option("--ext", callback=_ext_list, default=None,
              help="Comma-separated extensions to pick up in folders (default: all audio types).")
@click.option("--window", type=click.FloatRange(min=0.5, max=600), default=4.0, show_default=True,
              help="Window length in seconds for long recordings (50% overlap).")
@click.option("--segments", is_flag=True, help="Include per-window segments (start, end, label, scores).")
@click.option("--top-k", type=click.IntRange(min=1), default=None, help="Include the K best labels.")
@click.option("--resume", is_flag=True, help="With --output FILE.jsonl: skip files already in it and append.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar, summary or warnings on stderr.")
@click.option("--debug", is_flag=True, help="Show Python tracebacks.")
def classify(paths, model, fmt, output, jobs, no_recursive, ext, window, segments, top_k, resume,
             quiet, debug):
    """Classify the emotion of every audio file in PATHS (files or folders; - reads paths from stdin).

    Exit status: 0 when every file was classified, 1 when some failed (their rows are still
    written, with an error), 2 for usage errors.
    """
    from .errors import SercliError
    from .pipeline import classify as run, collect_paths, resolve_model
    from .report import AtomicFile, Writer, format_for, read_jsonl_paths, summary_lines
    inputs = []
    for p in paths:
        if p == "-":
            inputs += [line.rstrip("\r\n") for line in sys.stdin if line.strip()]
        else:
            inputs.append(p)
    if output and fmt is None:
        fmt = format_for(output)
        if fmt is None:
            raise click.UsageError(f"cannot tell the format of {output!r}: use .jsonl, .json or .csv, or --format")
    if fmt is None:
        fmt = "table" if sys.stdout.isatty() else "jsonl"
    if fmt == "table" and output:
        raise click.UsageError("--format table is for the terminal; write files as jsonl, json or csv")
    if resume and not (output and fmt == "jsonl"):
        raise click.UsageError("--resume needs --output FILE.jsonl")
    for p in inputs:
        if not os.path.lexists(p):
            _err(f"warning: {p}: no such file or folder", quiet)
    files = collect_paths(inputs, recursive=not no_recursive, extensions=ext)
    try:
        m = resolve_model(model, warn=lambda msg: _err(msg, quiet))
    except SercliError as exc:
        _die(exc, debug)

    done_lines: list[str] = []
    if resume and os.path.exists(output):
        done_lines, done_paths = read_jsonl_paths(output)
        skip = set(done_paths)
        _err(f"resuming: {len(skip)} files already in {output}", quiet)
        files = [f for f in files if f not in skip]

    sink = AtomicFile(output) if output else None
    stream = sink.f if sink else sys.stdout
    from rich.console import Console
    console = Console(file=stream) if fmt == "table" else None
    writer = Writer(stream, fmt, m.labels, segments=segments, top_k=bool(top_k), console=console)
    for line in done_lines:
        stream.write(line)

    from collections import Counter
    counts, failed, n = Counter(), 0, 0
    progress = None
    if not quiet and sys.stderr.isatty():
        from tqdm import tqdm
        progress = tqdm(total=len(files), unit="file", file=sys.stderr, desc="classify")
    old = {s: signal.signal(s, _raise_interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    t0 = time.time()
    status = 0
    try:
        for r in run(files, model=m, jobs=jobs, window_s=window, segments=segments, top_k=top_k,
                     debug=debug):
            writer.write(r.to_dict(with_segments=segments, with_top_k=bool(top_k)))
            n += 1
            if r.ok:
                counts[r.label] += 1
            else:
                failed += 1
                if not quiet and fmt != "table":
                    _err(f"error: {r.error}")
            if progress:
                progress.update(1)
        writer.close()
        if sink:
            sink.commit()
        status = 1 if failed else 0
    except (_Interrupted, KeyboardInterrupt) as exc:
        # keep what is done: a finished, valid report of the files processed so far
        writer.close()
        if sink:
            sink.commit()
        _err(f"interrupted ({exc or 'SIGINT'}): {n} of {len(files)} files done"
             + (f", saved to {output}; continue with --resume" if output and fmt == "jsonl" else
                (f", saved to {output}" if output else "")), False)
        status = 130
    except BaseException as exc:
        if sink:
            sink.abort()
        if isinstance(exc, SercliError):
            _die(exc, debug)
        raise
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if progress:
            progress.close()
    if not quiet and status != 130:
        for line in summary_lines(counts, failed, time.time() - t0, n):
            _err(line)
    sys.exit(status)


@cli.command()
@click.option("--model", "-m", default="cnn", show_default=True, help="Bundled model name or model file.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--debug", is_flag=True)
def info(model, fmt, debug):
    """Show a model's card: labels, training data, metrics and weights hash."""
    import json
    from .errors import SercliError
    from .models import load_model
    try:
        m = load_model(model)
    except SercliError as exc:
        _die(exc, debug)
    card = dict(m.card)
    card.update(name=m.name, kind=m.kind, labels=list(m.labels), path=m.path, sha256=m.sha256)
    card.pop("history", None)
    if fmt == "json":
        click.echo(json.dumps(card, indent=1))
        return
    from rich.console import Console
    from rich.table import Table
    con = Console()
    con.print(f"[bold]{m.name}[/bold] ({m.kind}) {card.get('description', '')}")
    con.print(f"weights: {m.path}\nsha256: {m.sha256}\nlabels: {', '.join(m.labels)}")
    if card.get("protocol"):
        con.print(f"protocol: {card['protocol']}")
    data = card.get("data") or {}
    if data:
        t = Table(title="training data")
        for col in ("split", "clips", "speakers", "per corpus"):
            t.add_column(col)
        for k, v in data.items():
            t.add_row(k, str(v["clips"]), str(v["speakers"]),
                      ", ".join(f"{c} {n}" for c, n in v["per_corpus"].items()))
        con.print(t)
    mets = card.get("metrics") or {}
    if mets:
        t = Table(title="metrics")
        for col in ("split", "n", "accuracy", "UAR", "macro-F1"):
            t.add_column(col, justify="right")
        for k, v in mets.items():
            t.add_row(k, str(v["n"]), f"{v['accuracy']:.3f}", f"{v['uar']:.3f}", f"{v['macro_f1']:.3f}")
        con.print(t)
    if card.get("licence"):
        con.print(f"licence: {card['licence']}")


@cli.command()
@click.option("--data", required=True, type=click.Path(exists=True),
              help="Folder of corpora (any depth, mixed) or a CSV manifest (path,label[,speaker]).")
@click.option("--recipe", default="cnn", show_default=True, help="Recipe name (train/recipes) or a .toml file.")
@click.option("--out", default="weights", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the weights, model card and plots.")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Override the recipe's epochs.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None, help="Feature workers (default: all cores).")
@click.option("--seed", type=int, default=None, help="Override the recipe's seed.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Torch threads (results are deterministic for a given seed and thread count).")
@click.option("--cache", type=click.Path(file_okay=False), default=None,
              help="Feature cache folder (default: $SERCLI_CACHE or ~/.cache/sercli).")
@click.option("--manifest", type=click.Path(dir_okay=False), default=None,
              help="Also write the clip manifest (CSV) and emotion distribution plots next to it.")
@click.option("--debug", is_flag=True)
def train(data, recipe, out, epochs, jobs, seed, threads, cache, manifest, debug):
    """Train a model from labelled corpora and write its weights and model card."""
    from .errors import SercliError
    from . import train as tr
    try:
        r = tr.load_recipe(recipe)
        if manifest:
            from .corpora import scan, write_manifest
            from .plots import plot_distribution
            sc = scan(data)
            write_manifest(sc.clips, manifest)
            base = os.path.splitext(manifest)[0]
            plot_distribution(sc.clips, base + ".per-corpus.png", base + ".combined.png")
            click.echo(f"wrote {manifest} ({len(sc.clips)} clips, {len(sc.unmatched)} unmatched)", err=True)
        tr.run(data, recipe=r, out=out, epochs=epochs, jobs=jobs or -1, seed=seed, threads=threads,
               cache_dir=cache, command="sercli " + " ".join(sys.argv[1:]),
               progress=sys.stderr.isatty())
    except SercliError as exc:
        _die(exc, debug)


def main():
    cli(prog_name="sercli")
