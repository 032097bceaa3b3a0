"""The command line: a thin click layer over the library (the only module that imports click).

Heavy imports (torch, numpy, joblib) happen inside commands, so `sercli --help` stays fast.
"""
from __future__ import annotations

import functools
import os
import signal
import stat
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
        try:
            click.echo(msg, err=True)
        except OSError:     # stderr gone (a closed terminal after SIGHUP): nothing to tell
            pass


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


def _old_out(fn):
    """--out: the old spelling of -o/--output, kept hidden so that scripts keep working."""
    return click.option("--out", "out_alias", default=None, hidden=True,
                        type=click.Path())(fn)


def _output_or_alias(output, out_alias):
    if output is not None and out_alias is not None and output != out_alias:
        raise click.UsageError("give -o/--output once (--out is its old name)")
    return output if output is not None else out_alias


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

    \b
    Start with:
      sercli models                   # the bundled models, their accuracy and speed
      sercli classify recordings/     # label every recording in a folder
      sercli COMMAND --help           # options and examples
    """


class _Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP. A KeyboardInterrupt, so that no `except Exception` in the
    library (which turns a bad file into an error row) can swallow it."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _SignalGuard:
    """Turns SIGINT/SIGTERM/SIGHUP into _Interrupted, except while a report row is being
    written or the report is being finished: then the signal is held and raised (or, once the
    report is finished, dropped) at a point where the report is whole. Entering it again
    while it is installed changes nothing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self):
        self.busy = False
        self.pending: int | None = None
        self.old = {}

    def __enter__(self) -> "_SignalGuard":
        if not self.old:
            self.old = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self.old.items():
            signal.signal(s, h)
        self.old = {}

    def _handle(self, signum, frame):
        if self.busy:
            self.pending = self.pending or signum
        else:
            raise _Interrupted(signum)

    def hold(self) -> None:
        self.busy = True

    def release(self) -> None:
        self.busy = False
        if self.pending:
            signum, self.pending = self.pending, None
            raise _Interrupted(signum)


@cli.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--model", "-m", default="whisper-tiny", show_default=True,
              help="Bundled model (`sercli models` lists them) or a model file "
                   "(.pt state dict, .npz SVM or .json ensemble).")
@output_options
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Worker processes for decoding and features. Default: all cores.")
@click.option("--backend", type=click.Choice(["local", "dask"]), default="local", show_default=True,
              help="Where decoding and features run: local worker processes, or an existing "
                   "dask.distributed cluster (with --scheduler; all its threads, --jobs does not "
                   "apply; needs sercli[dask]).")
@click.option("--scheduler", metavar="ADDRESS", default=None,
              help="Dask scheduler for --backend dask, e.g. tcp://10.0.0.5:8786 "
                   "(default: $DASK_SCHEDULER_ADDRESS).")
@click.option("--no-recursive", is_flag=True, help="Do not descend into sub-folders.")
@click.option("--ext", callback=_ext_list, default=None,
              help="Comma-separated extensions to pick up in folders (default: all audio types).")
@click.option("--window", type=click.FloatRange(min=0.5, max=600), default=4.0, show_default=True,
              help="Window length in seconds for long recordings (50% overlap).")
@click.option("--segments", is_flag=True, help="Include per-window segments (start, end, label, scores).")
@click.option("--top-k", type=click.IntRange(min=1), default=None, help="Include the K best labels.")
@click.option("--normalize-by", "normalize_by", type=click.Choice(["none", "folder", "speaker"]),
              default="none", show_default=True,
              help="Normalise features over each group of files before the model sees them "
                   "(models trained for it, e.g. cnn-spk-ens, and SVMs; best with >= 10 clips of mixed "
                   "emotions per group): folder = parent "
                   "folder; speaker = a manifest's speaker column, else the speaker in a corpus "
                   "file name (RAVDESS, CREMA-D, TESS, SAVEE, EmoDB, JL), else the folder.")
@click.option("--resume", is_flag=True, help="With --output FILE.jsonl: skip files already in it and append.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where a pretrained encoder runs (whisper-* models): cpu = in the worker processes; "
                   "cuda = on the GPU in this process, clips batched by length; auto = cuda when torch "
                   "sees a GPU. Other models always run on the CPU.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar, summary or warnings on stderr.")
@click.option("--debug", is_flag=True, help="Show Python tracebacks.")
def classify(paths, model, fmt, output, jobs, backend, scheduler, no_recursive, ext, window, segments,
             top_k, normalize_by, resume, device, quiet, debug):
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
    import json
    from .errors import SercliError, display_path
    from .models import needs_before_loading
    from .pipeline import (classify as run, collect_paths, default_jobs, kill_workers, resolve_model,
                           start_analysis, start_workers, tune_malloc)
    from .report import AtomicFile, Writer, format_for, read_jsonl_paths, summary_lines
    inputs = []
    for p in paths:
        if p == "-":    # bytes, as find prints them: a name need not be UTF-8
            inputs += [os.fsdecode(line.rstrip(b"\r\n")) for line in _stdin_bytes() if line.strip()]
        else:
            inputs.append(p)
    if output and fmt is None:
        fmt = format_for(output)
        if fmt is None:
            raise click.UsageError(f"cannot tell the format of {output!r}: use .jsonl, .json or .csv, or --format")
    if fmt is None:
        fmt = "table" if sys.stdout.isatty() else "jsonl"
    if fmt == "table" and output:
        raise click.UsageError("--format table is for the terminal: with --output use --format "
                               "jsonl, json or csv (or a .jsonl, .json or .csv file name)")
    if resume and not (output and fmt == "jsonl"):
        raise click.UsageError("--resume needs --output FILE.jsonl")
    if scheduler and backend != "dask":
        raise click.UsageError("--scheduler goes with --backend dask")
    for p in paths:     # a path on the command line that is not there is a usage error
        if p != "-" and _missing(p):
            _usage_line(f"{display_path(p)}: no such file or folder")
    model = _group_default(model, normalize_by, quiet)
    _check_model_arg(model)
    inputs, speakers = _read_manifests(inputs, debug)
    files = collect_paths(inputs, recursive=not no_recursive, extensions=ext,
                          warn=lambda msg: _err(msg, quiet))
    if output:
        _refuse_output_among_inputs(output, list(paths) + files)
    from collections import Counter
    done_lines: list[str] = []
    already: set[str] = set()     # --resume with --normalize-by: analysed again, not written
    prior_failed = 0
    if resume and os.path.exists(output):
        try:
            if not stat.S_ISREG(os.stat(output).st_mode):     # a FIFO would block for ever
                raise ValueError("not a regular file")
            done_lines, done_paths = read_jsonl_paths(output)
            inputs_now = set(files)
            foreign = [p for p in done_paths if p not in inputs_now]
            if foreign:
                raise ValueError(f"{len(foreign)} of its rows are for files that are not inputs of "
                                 f"this run (first: {display_path(foreign[0])})")
        except (OSError, ValueError) as exc:
            why = _os_reason(exc) if isinstance(exc, OSError) else " ".join(str(exc).split())
            raise click.ClickException(f"{display_path(output)}: cannot resume from it: {why}")
        prior_failed = sum(1 for line in done_lines if json.loads(line).get("error") is not None)
        skip = set(done_paths)
        _err(f"resuming: {len(skip)} files already in {display_path(output)}", quiet)
        if normalize_by == "none":
            files = [f for f in files if f not in skip]
        else:   # a group's statistics need all its files: done ones are analysed, not written
            already = skip.intersection(files)

    tune_malloc()
    t0 = time.time()        # the summary's time: the workers may start before the model loads
    started = None
    gpu = _cuda_wanted(device, str(model))
    # from the first worker on, a signal ends the run cleanly, with no worker left behind
    guard = _SignalGuard().__enter__()
    try:
        if backend == "local":
            # a bundled model's features are known before torch is imported: the workers start
            # on them while this process loads the model (about a second)
            hint = needs_before_loading(model) if normalize_by == "none" and not gpu else None
            if hint is not None:
                started = start_analysis(files, hint, jobs=jobs, window_s=window, debug=debug)
            if started is None:
                start_workers(min(jobs or default_jobs(), len(files)))   # they boot while the model loads
        m = resolve_model(model, warn=lambda msg: _err(msg, quiet))
        if gpu:
            m.use_device("cuda")
        if normalize_by != "none":
            _check_group_support(m)
    except BaseException as exc:
        guard.hold()
        if isinstance(exc, KeyboardInterrupt):      # before any row: the report is untouched
            signum = getattr(exc, "signum", signal.SIGINT)
            _err(f"interrupted ({signal.Signals(signum).name}) while loading the model: 0 of "
                 f"{len(files) - len(already)} files done"
                 + (f", {display_path(output)} unchanged" if output else ""))
            _stop_workers(started.results if started is not None else None, 128 + signum)
            guard.__exit__()
            _leave(128 + signum)
        if started is not None:
            started.close()
        guard.__exit__()
        if isinstance(exc, SercliError):
            _die(exc, debug)
        raise

    counts, failed, n = Counter(), 0, 0
    progress = sink = writer = results = None
    status = 0
    with guard:
        guard.hold()    # signals wait until the report file and its writer exist
        try:
            try:
                sink = AtomicFile(output) if output else None
            except OSError as exc:
                raise click.ClickException(f"{display_path(output)}: cannot write the report: "
                                           f"{_os_reason(exc)}")
            stream = sink.f if sink else sys.stdout
            console = None
            if fmt == "table":      # rich only then: its import is a few % of a cold start
                from rich.console import Console
                console = Console(file=stream)
            writer = _Guarded(Writer, stream, fmt, m.labels, segments=segments, top_k=top_k or False,
                              console=console)
            for line in done_lines:
                _write_or_fail(stream.write, line)
            if not quiet and sys.stderr.isatty():
                from tqdm import tqdm
                progress = tqdm(total=len(files) - len(already), unit="file", file=sys.stderr, desc="classify")
            guard.release()
            results = run(files, model=m, jobs=jobs, window_s=window, segments=segments,
                          top_k=top_k, debug=debug, backend=backend, scheduler=scheduler,
                          warn=lambda msg: _err(msg, quiet), normalize_by=normalize_by,
                          speakers=speakers, started=started)
            started = None      # run() owns it now
            for r in results:
                if r.path in already:
                    continue
                guard.hold()    # a row is written and counted whole, or not at all
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
                guard.release()
            guard.hold()        # finishing: a signal now changes nothing
            if progress:        # the bar ends before the table is drawn below it
                progress.close()
            writer.close()
            if sink:
                _write_or_fail(sink.commit)
            status = 1 if failed or prior_failed else 0
        except KeyboardInterrupt as exc:
            # keep what is done: a finished, valid report of the files processed so far
            # the report first: whatever happens to the workers below, nothing done is lost
            guard.hold()
            if progress:
                progress.close()
            try:
                if writer:
                    writer.close()
                if sink:
                    _write_or_fail(sink.commit)
            except _ReportWriteError as werr:
                if sink:
                    sink.abort()
                _err(f"Error: {_write_error_line(werr, output)}", False)
            signum = getattr(exc, "signum", signal.SIGINT)
            _err(f"interrupted ({signal.Signals(signum).name}): {n} of {len(files) - len(already)} files done"
                 + (f", saved to {display_path(output)}; continue with --resume"
                    if output and fmt == "jsonl" else
                    (f", saved to {display_path(output)}" if output else "")), False)
            status = 128 + signum
            _stop_workers(results, status)
        except BaseException as exc:
            guard.hold()
            _close_quietly(results)
            if started is not None:
                started.close()
            if sink:
                sink.abort()
            if isinstance(exc, _ReportWriteError):
                if debug:
                    raise exc.__cause__ from None
                raise click.ClickException(_write_error_line(exc, output))
            if isinstance(exc, SercliError):
                _die(exc, debug)
            raise
        finally:
            if progress:
                progress.close()
    if not quiet and status < 128:
        for line in summary_lines(counts, failed, time.time() - t0, n):
            _err(line)
        if prior_failed:
            _err(f"  {prior_failed} failed in the earlier run (their rows are in the report)")
        if output:
            _err(f"wrote {display_path(output)}: {len(done_lines) + n} rows, "
                 f"{prior_failed + failed} failed")
    _leave(status)


def _group_default(model: str, normalize_by: str | None, quiet: bool) -> str:
    """--normalize-by without --model: the bundled model for it with the best val UAR (the
    default model is trained on single clips), said on stderr."""
    from click.core import ParameterSource
    if normalize_by in (None, "none"):
        return model
    if click.get_current_context().get_parameter_source("model") != ParameterSource.DEFAULT:
        return model
    from .catalog import group_models
    best = (group_models() or [model])[0]
    _err(f"--normalize-by {normalize_by}: using model {best}, the bundled model for it with the "
         "best val UAR (--model chooses another)", quiet)
    return best


def _cuda_wanted(device: str, model: str) -> bool:
    """--device: whether the encoder runs on CUDA; a usage error if cuda is asked and absent."""
    from .models import REGISTRY
    if device == "cpu":
        return False
    if device == "auto" and model in REGISTRY and not model.startswith("whisper"):
        return False        # a bundled model without an encoder: no need to import torch here
    try:
        import torch
        available = torch.cuda.is_available()
    except ImportError:
        available = False
    if device == "cuda" and not available:
        raise click.UsageError("--device cuda: torch sees no CUDA GPU (a CPU-only torch build, or "
                               "no driver); use --device cpu")
    return available


def _stdin_bytes():
    """stdin as lines of bytes (a test runner's stdin may be text only)."""
    buf = getattr(sys.stdin, "buffer", None)
    if buf is not None:
        return buf
    return (line.encode("utf-8", "surrogateescape") for line in sys.stdin)


def _refuse_output_among_inputs(output: str, inputs: list[str], opt: str = "--output") -> None:
    """A usage error when the report would overwrite one of the inputs (a recording or a
    manifest), whatever the spelling of the two paths."""
    try:
        out = os.stat(output)
    except (OSError, ValueError):
        return
    for p in inputs:
        try:
            if os.path.samestat(out, os.stat(p)):
                _usage_line(f"{opt} {output} is also an input ({p}): refusing to overwrite it")
        except (OSError, ValueError):
            continue


class _ReportWriteError(Exception):
    """Writing the report failed (a full disk, the file-size limit, a closed pipe): the
    OSError is its __cause__."""


def _write_or_fail(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except OSError as exc:
        raise _ReportWriteError() from exc


class _Guarded:
    """A Writer whose write errors are _ReportWriteError (so that they are told apart from
    the run's own errors)."""

    def __init__(self, cls, stream, *args, **kwargs):
        self.stream = stream
        self.w = self._call(cls, stream, *args, **kwargs)

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except OSError as exc:
            if self.stream is sys.stdout:
                _drop_stdout()
            raise _ReportWriteError() from exc

    def write(self, record):
        return self._call(self.w.write, record)

    def close(self):
        return self._call(self.w.close)


def _drop_stdout() -> None:
    """After stdout failed (a full disk, a closed pipe): send what is still buffered to
    /dev/null, so that the interpreter's flush at exit does not fail again with a traceback."""
    if sys.stdout is sys.__stdout__:
        try:
            fd = os.open(os.devnull, os.O_WRONLY)
            os.dup2(fd, sys.stdout.fileno())
            os.close(fd)
        except (OSError, ValueError):
            pass


def _write_error_line(exc: BaseException, output: str | None) -> str:
    from .errors import display_path
    cause = exc.__cause__ or exc
    where = display_path(output) if output else "stdout"
    return f"{where}: cannot write the report: {_os_reason(cause)}"


def _leave(status: int) -> None:
    """End `classify`: the report is committed and every file closed. In a real process that
    imported torch, skip the interpreter's teardown of its modules, which takes torch about
    0.4 s (a sixth of a 700-clip run): the workers are shut down and the exit handlers run as
    usual (joblib's clean-up among them), then the process ends."""
    if "torch" not in sys.modules or sys.stderr is not sys.__stderr__ or sys.stdout is not sys.__stdout__:
        sys.exit(status)        # a test runner's streams, or nothing slow to tear down
    import atexit
    try:
        from joblib.externals.loky import reusable_executor
        if reusable_executor._executor is not None:
            reusable_executor._executor.shutdown(wait=True)
    except Exception:
        pass
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):
            if stream is sys.stdout:
                status = status or 1
    os._exit(status)


def _stop_workers(results, status: int) -> None:
    """After an interrupt: kill the worker processes instead of waiting for them, and leave.

    Ctrl-C reaches the workers too; joblib's orderly shutdown can then wait forever on a worker
    that died mid-task. The report is already complete, so a hard exit loses nothing.
    """
    import logging
    import threading

    from .pipeline import kill_workers
    # joblib's callback thread may still try to dispatch to the pool being shut down; what it
    # logs then (a ShutdownExecutorError traceback) is noise after an interrupt
    logging.getLogger("concurrent.futures").disabled = True

    def hard_exit():
        kill_workers()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(status)

    watchdog = None
    if sys.stderr is sys.__stderr__:    # a real process, not a test runner
        watchdog = threading.Timer(5.0, hard_exit)
        watchdog.daemon = True
        watchdog.start()
    _close_quietly(results)     # joblib stops dispatching, then ends its workers
    kill_workers()              # any left (one still booting): none may outlive this process
    if watchdog:
        watchdog.cancel()


def _usage_line(msg: str):
    """A usage error as one line on stderr, exit status 2."""
    click.echo(f"Error: {' '.join(str(msg).split())}", err=True)
    sys.exit(2)


def _missing(path: str) -> bool:
    """`path` does not exist (a broken link exists; a path that cannot be looked up for another
    reason is left to the file's own error row)."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except (OSError, ValueError):
        return False
    return False


def _check_model_arg(model: str) -> None:
    """--model names a bundled model or an existing file, else a usage error (exit 2)."""
    from .errors import display_path
    from .models import REGISTRY
    if model in REGISTRY or not _missing(model):
        return
    if os.sep in model or os.path.splitext(model)[1]:
        _usage_line(f"--model {display_path(model)}: no such model file")
    _usage_line(f"--model {display_path(model)}: unknown model; use one of {', '.join(REGISTRY)} "
                "(sercli models lists them) or a model file (.pt, .npz, .json)")


def _check_group_support(m) -> None:
    from .errors import SercliError
    from .pipeline import check_group_support
    try:
        check_group_support(m)
    except SercliError as exc:
        _usage_line(exc)


def _read_manifests(inputs: list[str], debug: bool) -> tuple[list[str], dict[str, str]]:
    """Inputs with each .csv file replaced by its manifest's paths, and those paths' speakers."""
    from .errors import SercliError, display_path
    from .pipeline import read_path_manifest
    out, speakers = [], {}
    for p in inputs:
        if not (p.lower().endswith(".csv") and os.path.isfile(p)):
            out.append(p)
            continue
        try:
            rows = read_path_manifest(p)
        except SercliError as exc:
            _usage_line(exc)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            if debug:
                raise
            raise click.ClickException(f"{display_path(p)}: cannot read the manifest: {_os_reason(exc)}")
        out += [q for q, _ in rows]
        speakers.update({q: s for q, s in rows if s})
    return out, speakers


def _os_reason(exc: BaseException) -> str:
    return " ".join((getattr(exc, "strerror", None) or str(exc)).split()).lower()


def _close_quietly(gen) -> None:
    """Stop the classify generator now: its joblib workers are cancelled, without joblib's
    'tasks have been cancelled' warning on stderr."""
    import gc
    import warnings
    # joblib warns when its generator is collected early, which may happen later than close()
    # (a reference cycle): filter that one message for the rest of this process.
    warnings.filterwarnings("ignore", message=r".*(tasks have been successfully executed|"
                            r"still being processed by the workers)", category=UserWarning)
    if gen is None:
        return
    try:
        gen.close()
    except Exception:
        pass
    gc.collect()


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def models(fmt):
    """List the bundled models: test UAR, speed and what each is for (read from their cards;
    nothing is loaded).

    \b
    Examples:
      sercli models
      sercli models --format json | jq -r '.[] | select(.group) | .name'
      sercli info --model cnn-spk-ens      # one model's full card
    """
    import json
    from .catalog import bundled
    entries = bundled()
    if fmt == "json":
        click.echo(json.dumps([e.to_dict() for e in entries], indent=1))
        return
    from rich.console import Console
    from rich.table import Table
    t = Table(title="bundled models")
    t.add_column("model", no_wrap=True)
    t.add_column("test UAR", justify="right")
    t.add_column("test set")
    t.add_column("clips/s", justify="right")
    t.add_column("use", overflow="fold")
    for e in entries:
        t.add_row(e.name,
                  f"{e.test_uar:.3f}" if e.test_uar is not None else "-", e.test_set or "-",
                  f"{e.clips_per_s:g}" if e.clips_per_s is not None else "-", e.use)
    con = Console()
    con.print(t)
    machines = sorted({e.speed_machine for e in entries if e.speed_machine})
    con.print("test UAR: unweighted average recall on the card's test set. clips/s: classify "
              "end to end (bench/run.py" + (f" on {' / '.join(machines)}" if machines else "")
              + "); -: not measured. Details: sercli info --model NAME.", highlight=False, markup=False)


@cli.command()
@click.option("--model", "-m", default="whisper-tiny", show_default=True, help="Bundled model name or model file.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--debug", is_flag=True)
def info(model, fmt, debug):
    """Show a model's card: labels, training data, metrics and weights hash.

    \b
    Examples:
      sercli info                         # the default model
      sercli info --model cnn-spk-ens --format json
      sercli models                       # every bundled model, one line each
    """
    from .errors import SercliError
    from .models import card_path, load_model
    _check_model_arg(model)
    try:
        m = load_model(model)
    except SercliError as exc:
        _die(exc, debug)
    try:
        _show_card(m, fmt)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:   # a malformed card
        if debug:
            raise
        raise click.ClickException(f"{card_path(m.path)}: malformed model card "
                                   f"({type(exc).__name__}: {' '.join(str(exc).split())[:120]})")


def _show_card(m, fmt: str) -> None:
    import json
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
    for e in card.get("members") or []:     # an ensemble
        alone = ", each clip alone" if e.get("per_clip") else ""
        con.print(f"member: {e['name']} ({e['file']}, weight {e['weight']:g}{alone}, sha256 {e['sha256'][:12]}…)")
    enc = card.get("encoder")
    if enc:
        con.print(f"encoder: {enc['name']} ({enc['source']}; {enc['file']}, sha256 {enc['sha256'][:12]}…; "
                  f"from {enc['package']}); licence: {enc['licence']}")
    if card.get("temperature") is not None:
        cal = (card.get("metrics") or {}).get("test", {}).get("calibration")
        con.print(f"calibration: temperature {card['temperature']:.3f} fitted on val"
                  + (f"; expected calibration error on test {cal['ece']:.3f}" if cal else ""))
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
@click.option("--recipe", default="whisper-tiny", show_default=True, help="Recipe name (train/recipes) or a .toml file.")
@click.option("--output", "-o", "out", default=None, type=click.Path(file_okay=False),
              help="Folder for the weights, model card and plots. Default: a new folder "
                   "runs/RECIPE-YYYYmmdd-HHMMSS.")
@_old_out
@click.option("--force", is_flag=True, help="Overwrite a weights file already in the output folder.")
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
def train(data, recipe, out, out_alias, force, epochs, jobs, seed, threads, cache, manifest, debug):
    """Train a model from labelled corpora and write its weights and model card.

    Speakers are split as sercli/data/speakers.csv says; speakers it does not list (your own
    corpus) are split whole 70/15/15 by a hash of corpus and speaker. Test speakers never
    touch training or model selection.

    \b
    Examples:
      sercli train --data ~/corpora --recipe cnn          # -> runs/cnn-YYYYmmdd-HHMMSS/
      sercli train --data labels.csv --recipe mine.toml -o runs/mine
    """
    from .errors import SercliError
    from . import train as tr
    out = _output_or_alias(out, out_alias)
    if not os.path.isfile(recipe) and not (tr.recipe_dir() / f"{recipe}.toml").is_file():
        known = sorted(q.stem for q in tr.recipe_dir().glob("*.toml"))
        _usage_line(f"--recipe {recipe}: no such recipe; use one of {', '.join(known)} or a .toml file")
    try:
        r = tr.load_recipe(recipe)
        out = _train_output(r, out, force)
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


def _train_output(recipe: dict, out: str | None, force: bool) -> str:
    """The folder train writes to: `out`, or a new runs/RECIPE-YYYYmmdd-HHMMSS. A weights file
    already there is a usage error unless --force (the bundled weights/ is one such folder)."""
    from .errors import display_path
    name = str(recipe.get("name", "model"))
    if out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = os.path.join("runs", f"{name}-{stamp}")
        n = 1
        while os.path.exists(out):
            n += 1
            out = os.path.join("runs", f"{name}-{stamp}-{n}")
        _err(f"writing to {out}/")
    weights = os.path.join(out, f"{name}.npz" if recipe.get("model") == "svm" else f"{name}.pt")
    if os.path.exists(weights) and not force:
        _usage_line(f"{display_path(weights)} exists: give another -o/--output folder, or --force "
                    "to overwrite it")
    return out


@cli.command()
@click.option("--data", required=True, type=click.Path(exists=True),
              help="Labelled data: a folder (corpus file names at any depth, one folder per label, "
                   "CSV manifests) or a CSV manifest (path,label[,speaker][,corpus]).")
@click.option("--model", "-m", default="whisper-tiny", show_default=True,
              help="Bundled model (`sercli models` lists them) or a model file "
                   "(.pt state dict, .npz SVM or .json ensemble).")
@click.option("--split", type=click.Choice(["test", "val", "train", "all"]), default=None,
              help="Score the clips of these speakers of the canonical split (sercli/data/speakers.csv); "
                   "other speakers get the split `train` gives them (a hash of corpus and speaker), "
                   "clips without a speaker count only for 'all'. Default: test when the data holds "
                   "clips of the canonical test speakers, else all.")
@click.option("--output", "-o", "out", type=click.Path(file_okay=False), default=None,
              help="Also write metrics.json, per_class.csv, per_corpus.csv, confusion.csv, "
                   "confusion_normalized.csv, predictions.csv and confusion.png to this folder.")
@_old_out
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="stdout: tables, or one JSON object (everything but per-clip predictions).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Feature workers (default: all cores).")
@click.option("--cache", type=click.Path(file_okay=False), default=None,
              help="Feature cache folder (default: $SERCLI_CACHE or ~/.cache/sercli).")
@click.option("--normalize-by", "normalize_by", type=click.Choice(["none", "folder", "speaker"]),
              default="none", show_default=True,
              help="Normalise features over each group of scored clips (cnn-spk, cnn-spk-ens, SVMs): speaker = "
                   "the clip's speaker (file name or manifest), else its folder; folder = the "
                   "parent folder.")
@click.option("--debug", is_flag=True, help="Show Python tracebacks.")
def evaluate(data, model, split, out, out_alias, fmt, jobs, cache, normalize_by, debug):
    """Score a model on labelled recordings: accuracy, UAR, macro-F1, per class and per corpus.

    Labels are mapped onto the model's labels; clips with a label the model lacks (e.g. calm or
    surprise for a 6-class model) are skipped and counted by label. Files that cannot be decoded
    are listed on stderr and counted. Each clip is scored whole (classify averages 4 s windows
    for recordings over 5 s). Exit status: 0 when scored, 1 when nothing could be scored,
    2 for usage errors.

    \b
    Examples:
      sercli evaluate --data ~/corpora                   # the test speakers' clips
      sercli evaluate --data labels.csv --model svm --split all -o eval/
    """
    import json
    from .errors import SercliError
    from .evaluate import evaluate_model, render_table, report, write_outputs
    from .pipeline import resolve_model
    out = _output_or_alias(out, out_alias)
    model = _group_default(model, normalize_by, False)
    _check_model_arg(model)
    try:
        model = resolve_model(model, warn=_err)
    except SercliError as exc:
        _die(exc, debug)
    if normalize_by != "none":
        _check_group_support(model)
    try:
        result = evaluate_model(data, model, split, jobs=jobs or -1, cache_dir=cache,
                                progress=sys.stderr.isatty(), warn=_err, normalize_by=normalize_by)
        written = write_outputs(result, out) if out else []
    except (SercliError, OSError) as exc:
        _die(exc, debug)
    for line in result["failed"]:
        _err(f"error: {line}")
    if fmt == "json":
        click.echo(json.dumps(report(result), allow_nan=False))
    else:
        from rich.console import Console
        render_table(result, Console())
    _err(f"evaluated {result['model']} on {result['n']} clips ({result['split']} split): accuracy "
         f"{result['accuracy']:.3f}, UAR {result['uar']:.3f}, macro-F1 {result['macro_f1']:.3f}; "
         f"{result['n_skipped']} skipped, {result['n_failed']} failed")
    if written:
        _err(f"wrote {len(written)} files to {out}")


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--output", "-o", "out", type=click.Path(dir_okay=False), default=None,
              help="PNG to write. Default: FILE's name with .png, in the current folder.")
@_old_out
@click.option("--model", "-m", default="cnn", show_default=True,
              help="The model whose input is shown, and whose scores the timeline of recordings "
                   "over 5 s shows.")
@click.option("--debug", is_flag=True, help="Show Python tracebacks.")
def plot(file, out, out_alias, model, debug):
    """Plot FILE as --model sees it (16 kHz mono): waveform, the model's log-mel bands (64 for
    the CNNs) and, for models that use them, MFCCs 1-19.

    Recordings over 5 s also get a timeline of each 4 s window's scores (50% overlap).

    \b
    Examples:
      sercli plot clip.wav                  # clip.png in the current folder
      sercli plot interview.wav -o interview.png --model cnn-spk-ens
    """
    from .errors import SercliError, display_path
    from .plots import plot_clip
    out = _output_or_alias(out, out_alias)
    _check_model_arg(model)
    if _missing(file):
        _usage_line(f"{display_path(file)}: no such file")
    out = out or os.path.splitext(os.path.basename(file))[0] + ".png"
    _refuse_output_among_inputs(out, [file])
    try:
        info = plot_clip(file, out, model=model, warn=_err)
    except SercliError as exc:
        _die(exc, debug)
    except OSError as exc:      # writing the PNG (a full disk, a device): name the file
        if debug:
            raise
        where = exc.filename if exc.filename is not None else out
        raise click.ClickException(f"{display_path(where)}: {_os_reason(exc)}")
    except Exception as exc:  # e.g. a decoder quirk: still one line unless --debug
        if debug:
            raise
        raise click.ClickException(f"{file}: {type(exc).__name__}: {' '.join(str(exc).split())}")
    _err(f"wrote {out} ({info['width']}x{info['height']} px)")


def _exit_on_sigint(signum, frame):
    _err(f"interrupted ({signal.Signals(signum).name})")
    raise SystemExit(128 + signum)


def main():
    # Ctrl-C wherever classify's own handling (which keeps the report whole) is not installed
    # exits 130, as documented, instead of click's "Aborted!" and 1; an ignored SIGINT stays so
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _exit_on_sigint)
    cli(prog_name="sercli")
