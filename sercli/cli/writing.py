"""classify's report: opened atomically (or stdout), rows counted as written, finished whole
even after an interrupt; a failure to write it is told apart from the run's own errors."""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, TypeVar

import click

from .messages import os_reason, say
from .plan import Plan

if TYPE_CHECKING:
    from ..runtime.classify import ClipResult

T = TypeVar("T")


class ReportWriteError(Exception):
    """Writing the report failed (a full disk, the file-size limit, a closed pipe): the
    OSError is its __cause__."""


def write_or_fail(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """fn(*args, **kwargs), a write to the report: an OSError becomes ReportWriteError."""
    try:
        return fn(*args, **kwargs)
    except OSError as exc:
        raise ReportWriteError() from exc


def drop_stdout() -> None:
    """After stdout failed (a full disk, a closed pipe): send what is still buffered to
    /dev/null, so that the interpreter's flush at exit does not fail again with a traceback."""
    if sys.stdout is sys.__stdout__:
        try:
            fd = os.open(os.devnull, os.O_WRONLY)
            os.dup2(fd, sys.stdout.fileno())
            os.close(fd)
        except (OSError, ValueError):
            pass


class GuardedWriter:
    """A Writer whose write errors are ReportWriteError (so that they are told apart from
    the run's own errors)."""

    def __init__(self, cls: Callable[..., Any], stream: IO[str], *args: Any, **kwargs: Any) -> None:
        self.stream = stream
        self.w = self._call(cls, stream, *args, **kwargs)

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except OSError as exc:
            if self.stream is sys.stdout:
                drop_stdout()
            raise ReportWriteError() from exc

    def write(self, record: dict) -> None:
        return self._call(self.w.write, record)

    def close(self) -> None:
        return self._call(self.w.close)


def write_error_line(exc: BaseException, output: str | None) -> str:
    """'REPORT: cannot write the report: REASON', the one line for a ReportWriteError."""
    from ..errors import display_path

    cause = exc.__cause__ or exc
    where = display_path(output) if output else "stdout"
    return f"{where}: cannot write the report: {os_reason(cause)}"


@dataclass
class Tally:
    """The rows this run wrote: labels counted, failures, all."""

    counts: Counter = field(default_factory=Counter)
    failed: int = 0
    n: int = 0


class Report:
    """The report being written: its file (or stdout), its writer and the progress bar."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.sink = self.writer = self.progress = None
        self.tally = Tally()

    def open(self, labels: list[str]) -> None:
        """The report file (or stdout) and its writer, with the rows of the run resumed
        already in it, and the progress bar on a terminal."""
        from ..errors import display_path
        from ..report import AtomicFile, Writer

        plan = self.plan
        try:
            self.sink = AtomicFile(plan.output) if plan.output else None
        except OSError as exc:
            raise click.ClickException(
                f"{display_path(plan.output)}: cannot write the report: {os_reason(exc)}"
            ) from exc
        stream = self.sink.f if self.sink else sys.stdout
        console = None
        if plan.fmt == "table":  # rich only then: its import is a few % of a cold start
            from rich.console import Console

            console = Console(file=stream)
        self.writer = GuardedWriter(
            Writer, stream, plan.fmt, labels, segments=plan.segments, top_k=plan.top_k or False, console=console
        )
        for line in plan.resumed.lines:
            write_or_fail(stream.write, line)
        if not plan.quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self.progress = tqdm(total=plan.todo, unit="file", file=sys.stderr, desc="classify")

    def add(self, r: ClipResult) -> None:
        """One file's row, written and counted."""
        plan, tally = self.plan, self.tally
        self.writer.write(r.to_dict(with_segments=plan.segments, with_top_k=bool(plan.top_k)))
        tally.n += 1
        if r.ok:
            tally.counts[r.label] += 1
        else:
            tally.failed += 1
            if not plan.quiet and plan.fmt != "table":
                say(f"error: {r.error}")
        if self.progress:
            self.progress.update(1)

    def close_progress(self) -> None:
        if self.progress:
            self.progress.close()

    def finish(self) -> None:
        """The report complete and in place."""
        self.close_progress()  # the bar ends before the table is drawn below it
        self.writer.close()
        if self.sink:
            write_or_fail(self.sink.commit)

    def save_interrupted(self) -> None:
        """After an interrupt: a finished, valid report of the files done so far (or, when it
        cannot be written, none, said on stderr)."""
        self.close_progress()
        try:
            if self.writer:
                self.writer.close()
            if self.sink:
                write_or_fail(self.sink.commit)
        except ReportWriteError as werr:
            if self.sink:
                self.sink.abort()
            say(f"Error: {write_error_line(werr, self.plan.output)}", False)

    def abort(self) -> None:
        """The run failed: no report file (an earlier one stays as it was)."""
        if self.sink:
            self.sink.abort()
