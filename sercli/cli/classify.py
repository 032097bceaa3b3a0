"""sercli classify: the command reads as its steps; each step lives in a module of its own."""

from __future__ import annotations

import functools
import os
import sys
import time

import click

from .batch import run_into_report
from .checks import check_model_arg, group_default, refuse_output_among_inputs
from .inputs import check_paths_exist, expand_stdin, find_files
from .messages import say
from .options import debug_option, jobs_option, model_option, normalize_by_option, quiet_option, report_options
from .plan import Plan
from .resume import Resumed, files_to_run, read_resumed
from .runguard import SignalGuard, leave
from .startup import cuda_wanted, start_and_load
from .writing import Tally


def extension_list(ctx, param, value) -> list[str] | None:
    """--ext wav,.FLAC -> ['wav', 'flac']."""
    if value is None:
        return None
    exts = [e.strip().lower().lstrip(".") for e in value.split(",") if e.strip()]
    if not exts:
        raise click.BadParameter("give at least one extension, e.g. wav,flac")
    return exts


@click.command()
@click.argument("paths", nargs=-1, required=True)
@model_option()
@report_options
@jobs_option
@click.option(
    "--backend",
    type=click.Choice(["local", "dask"]),
    default="local",
    show_default=True,
    help="Where decoding and features run: local worker processes, or an existing "
    "dask.distributed cluster (with --scheduler; all its threads, --jobs does not "
    "apply; needs sercli[dask]).",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    default=None,
    help="Dask scheduler for --backend dask, e.g. tcp://10.0.0.5:8786 (default: $DASK_SCHEDULER_ADDRESS).",
)
@click.option("--no-recursive", is_flag=True, help="Do not descend into sub-folders.")
@click.option(
    "--ext",
    callback=extension_list,
    default=None,
    help="Comma-separated extensions to pick up in folders (default: all audio types).",
)
@click.option(
    "--window",
    type=click.FloatRange(min=0.5, max=600),
    default=4.0,
    show_default=True,
    help="Window length in seconds for long recordings (50% overlap).",
)
@click.option("--segments", is_flag=True, help="Include per-window segments (start, end, label, scores).")
@click.option("--top-k", type=click.IntRange(min=1), default=None, help="Include the K best labels.")
@normalize_by_option
@click.option("--resume", is_flag=True, help="With --output FILE.jsonl: skip files already in it and append.")
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="Where a pretrained encoder runs (whisper-* models): cpu = in the worker processes; "
    "cuda = on the GPU in this process, clips batched by length; auto = cuda when torch "
    "sees a GPU. Other models always run on the CPU.",
)
@quiet_option
@debug_option
def classify(
    paths: tuple[str, ...],
    model: str,
    fmt: str | None,
    output: str | None,
    jobs: int | None,
    backend: str,
    scheduler: str | None,
    no_recursive: bool,
    ext: list[str] | None,
    window: float,
    segments: bool,
    top_k: int | None,
    normalize_by: str,
    resume: bool,
    device: str,
    quiet: bool,
    debug: bool,
) -> None:
    """Classify the emotion of every audio file in PATHS (files or folders; - reads paths from
    stdin; a .csv file is a manifest: its path column, and its speaker column for
    --normalize-by speaker).

    Exit status: 0 when every file was classified, 1 when some failed (their rows are still
    written, with an error, or the report could not be written), 2 for usage errors, 130
    (SIGINT), 143 (SIGTERM) or 129 (SIGHUP) when interrupted (the report then holds the files
    done so far, complete and valid; no worker process outlives sercli).

    \b
    Examples:
      sercli classify recordings/                    # a table on a terminal
      sercli classify recordings/ -o report.csv      # CSV, written atomically
      sercli classify interview.wav --segments       # one line per 4 s window
      sercli classify sessions/ --model cnn-spk-ens --normalize-by speaker
    """
    from ..runtime.workers import tune_malloc

    warn = functools.partial(say, quiet=quiet)
    inputs = expand_stdin(paths)
    fmt = choose_format(fmt, output, resume)
    if scheduler and backend != "dask":
        raise click.UsageError("--scheduler goes with --backend dask")
    check_paths_exist(paths)
    model = group_default(model, normalize_by, quiet)
    check_model_arg(model)
    files, speakers = find_files(inputs, recursive=not no_recursive, extensions=ext, debug=debug, warn=warn)
    if output:
        refuse_output_among_inputs(output, list(paths) + files)
    resumed = read_resumed(output, files, quiet) if resume and os.path.exists(output) else Resumed()
    files, already = files_to_run(files, resumed, normalize_by)

    tune_malloc()
    t0 = time.time()  # the summary's time: the workers may start before the model loads
    plan = Plan(
        files=files,
        speakers=speakers,
        model=model,
        fmt=fmt,
        output=output,
        jobs=jobs,
        backend=backend,
        scheduler=scheduler,
        window=window,
        segments=segments,
        top_k=top_k,
        normalize_by=normalize_by,
        gpu=cuda_wanted(device, str(model)),
        quiet=quiet,
        debug=debug,
        resumed=resumed,
        already=already,
    )
    # from the first worker on, a signal ends the run cleanly, with no worker left behind
    guard = SignalGuard().__enter__()
    m, started = start_and_load(plan, guard)
    status, tally = run_into_report(plan, m, started, guard)
    if not quiet and status < 128:
        tell_summary(plan, tally, time.time() - t0)
    leave(status)


def choose_format(fmt: str | None, output: str | None, resume: bool) -> str:
    """--format, else the one --output's extension implies, else a table on a terminal and
    JSON Lines when piped; usage errors for a table in a file and --resume without JSON Lines."""
    from ..report import format_for

    if output and fmt is None:
        fmt = format_for(output)
        if fmt is None:
            raise click.UsageError(f"cannot tell the format of {output!r}: use .jsonl, .json or .csv, or --format")
    if fmt is None:
        fmt = "table" if sys.stdout.isatty() else "jsonl"
    if fmt == "table" and output:
        raise click.UsageError(
            "--format table is for the terminal: with --output use --format "
            "jsonl, json or csv (or a .jsonl, .json or .csv file name)"
        )
    if resume and not (output and fmt == "jsonl"):
        raise click.UsageError("--resume needs --output FILE.jsonl")
    return fmt


def tell_summary(plan: Plan, tally: Tally, elapsed: float) -> None:
    """The summary on stderr: files classified, labels counted, failures, the report written."""
    from ..errors import display_path
    from ..report import summary_lines

    for line in summary_lines(tally.counts, tally.failed, elapsed, tally.n):
        say(line)
    if plan.resumed.failed:
        say(f"  {plan.resumed.failed} failed in the earlier run (their rows are in the report)")
    if plan.output:
        say(
            f"wrote {display_path(plan.output)}: {len(plan.resumed.lines) + tally.n} rows, "
            f"{plan.resumed.failed + tally.failed} failed"
        )
