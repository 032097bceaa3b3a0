"""Signals and the end of a run: SIGINT/SIGTERM/SIGHUP become an exception at a point where the
report is whole, the workers are killed after an interrupt, and the process exits 128+signal."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Generator
from typing import NoReturn

from .messages import say


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP. A KeyboardInterrupt, so that no `except Exception` in the
    library (which turns a bad file into an error row) can swallow it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def signal_number(exc: KeyboardInterrupt) -> int:
    """The signal behind an interrupt (a plain KeyboardInterrupt is Ctrl-C)."""
    return getattr(exc, "signum", signal.SIGINT)


class SignalGuard:
    """Turns SIGINT/SIGTERM/SIGHUP into Interrupted, except while a report row is being
    written or the report is being finished: then the signal is held and raised (or, once the
    report is finished, dropped) at a point where the report is whole. Entering it again
    while it is installed changes nothing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.busy = False
        self.pending: int | None = None
        self.old = {}

    def __enter__(self) -> SignalGuard:
        if not self.old:
            self.old = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self.old.items():
            signal.signal(s, h)
        self.old = {}

    def _handle(self, signum: int, frame: object) -> None:
        if self.busy:
            self.pending = self.pending or signum
        else:
            raise Interrupted(signum)

    def hold(self) -> None:
        self.busy = True

    def release(self) -> None:
        self.busy = False
        if self.pending:
            signum, self.pending = self.pending, None
            raise Interrupted(signum)


def exit_on_sigint(signum, frame) -> NoReturn:
    """Ctrl-C where classify's guard is not installed: exit 130, as documented."""
    say(f"interrupted ({signal.Signals(signum).name})")
    raise SystemExit(128 + signum)


#: the warning filter loky's resource tracker process is started with (quiet_resource_tracker)
TRACKER_WARNINGS = "ignore:resource_tracker:UserWarning"


def quiet_resource_tracker() -> None:
    """Have loky's resource tracker, whenever it starts, keep its "resource_tracker: There appear
    to be N leaked semlock objects" warnings to itself. After an interrupt the workers are killed
    and the pool is dropped unfinished (stop_workers), so its semaphores are never unregistered;
    the tracker unlinks them once sercli exits, as it should, but said so on sercli's stderr after
    the run's last line (seen in a CI run of the interrupt tests). The tracker is a child started
    with this interpreter's -W options (sys.warnoptions, read as it launches): this process's own
    warning filters are unchanged. Idempotent."""
    if TRACKER_WARNINGS not in sys.warnoptions:
        sys.warnoptions.append(TRACKER_WARNINGS)


def close_quietly(gen: Generator | None) -> None:
    """Stop the classify generator now (an interrupt, or a report that cannot be written): its
    joblib workers are cancelled, without joblib's 'tasks have been cancelled' warning on stderr."""
    import gc
    import logging
    import warnings

    # joblib's callback thread may still try to dispatch to the pool being shut down; what loky
    # logs then (an "exception calling callback" ShutdownExecutorError traceback) is noise here:
    # the run is ending, and its one line (interrupted, broken pipe) has been said
    logging.getLogger("concurrent.futures").disabled = True

    # joblib warns when its generator is collected early, which may happen later than close()
    # (a reference cycle): filter that one message for the rest of this process.
    warnings.filterwarnings(
        "ignore",
        message=r".*(tasks have been successfully executed|"
        r"still being processed by the workers)",
        category=UserWarning,
    )
    if gen is None:
        return
    try:
        gen.close()
    except Exception:
        pass
    gc.collect()


def stop_workers(results: Generator | None, status: int) -> None:
    """After an interrupt: kill the worker processes instead of waiting for them, and leave.

    Ctrl-C reaches the workers too; joblib's orderly shutdown can then wait forever on a worker
    that died mid-task. The report is already complete, so a hard exit loses nothing.
    """
    import threading

    from ..runtime.workers import kill_workers

    def hard_exit() -> None:
        kill_workers()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(status)

    watchdog = None
    if sys.stderr is sys.__stderr__:  # a real process, not a test runner
        watchdog = threading.Timer(5.0, hard_exit)
        watchdog.daemon = True
        watchdog.start()
    close_quietly(results)  # joblib stops dispatching, then ends its workers
    kill_workers()  # any left (one still booting): none may outlive this process
    if watchdog:
        watchdog.cancel()


def leave(status: int) -> NoReturn:
    """End `classify`: the report is committed and every file closed. In a real process that
    imported torch, skip the interpreter's teardown of its modules, which takes torch about
    0.4 s (a sixth of a 700-clip run): the workers are shut down and the exit handlers run as
    usual (joblib's clean-up among them), then the process ends."""
    if "torch" not in sys.modules or sys.stderr is not sys.__stderr__ or sys.stdout is not sys.__stdout__:
        sys.exit(status)  # a test runner's streams, or nothing slow to tear down
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
