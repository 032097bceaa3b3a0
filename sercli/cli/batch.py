"""classify's run: every file's row into the report under the signal guard. An interrupt keeps
a finished report of the files done so far; any other failure leaves no report file."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import click

from .messages import die, say
from .plan import Plan
from .runguard import SignalGuard, close_quietly, signal_number, stop_workers
from .writing import Report, ReportWriteError, Tally, write_error_line

if TYPE_CHECKING:
    from ..models import Model
    from ..runtime.workers import StartedAnalysis


def run_into_report(plan: Plan, m: Model, started: StartedAnalysis | None, guard: SignalGuard) -> tuple[int, Tally]:
    """Classify plan.files with model `m` (the analysis `started` early, if any) into the
    report. Returns the exit status (0, 1 when a file failed now or in the run resumed,
    128+signal when interrupted) and what was written."""
    from ..runtime.classify import classify as run

    report = Report(plan)
    results = None
    status = 0
    with guard:
        guard.hold()  # signals wait until the report file and its writer exist
        try:
            report.open(m.labels)
            guard.release()
            results = run(
                plan.files,
                model=m,
                jobs=plan.jobs,
                window_s=plan.window,
                segments=plan.segments,
                top_k=plan.top_k,
                debug=plan.debug,
                backend=plan.backend,
                scheduler=plan.scheduler,
                warn=plan.warn,
                normalize_by=plan.normalize_by,
                speakers=plan.speakers,
                started=started,
            )
            started = None  # run() owns it now
            for r in results:
                if r.path in plan.already:
                    continue
                guard.hold()  # a row is written and counted whole, or not at all
                report.add(r)
                guard.release()
            guard.hold()  # finishing: a signal now changes nothing
            report.finish()
            status = 1 if report.tally.failed or plan.resumed.failed else 0
        except KeyboardInterrupt as exc:
            # the report first: whatever happens to the workers below, nothing done is lost
            guard.hold()
            report.save_interrupted()
            status = 128 + signal_number(exc)
            say(interrupted_line(plan, signal_number(exc), report.tally.n), False)
            stop_workers(results, status)
        except BaseException as exc:
            guard.hold()
            close_quietly(results)
            if started is not None:
                started.close()
            report.abort()
            raise_one_line(exc, plan)
            raise
        finally:
            report.close_progress()
    return status, report.tally


def interrupted_line(plan: Plan, signum: int, n: int) -> str:
    """What an interrupted run says it kept."""
    from ..errors import display_path

    kept = ""
    if plan.output and plan.fmt == "jsonl":
        kept = f", saved to {display_path(plan.output)}; continue with --resume"
    elif plan.output:
        kept = f", saved to {display_path(plan.output)}"
    return f"interrupted ({signal.Signals(signum).name}): {n} of {plan.todo} files done{kept}"


def raise_one_line(exc: BaseException, plan: Plan) -> None:
    """A report that could not be written, or a library error, as one line (exit 1); returns
    for anything else, which the caller raises as it is."""
    from ..errors import SercliError

    if isinstance(exc, ReportWriteError):
        if plan.debug:
            raise exc.__cause__ from None
        raise click.ClickException(write_error_line(exc, plan.output))
    if isinstance(exc, SercliError):
        die(exc, plan.debug)
