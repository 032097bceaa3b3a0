"""Many files at once: decoding and window features in local worker processes (joblib's loky)
or on a dask.distributed cluster, results in input order, in bounded chunks.

At most two chunks of CHUNK_FILES files or CHUNK_BYTES bytes run at once, so that the features
waiting for the model stay bounded. A worker that dies (the OOM killer) costs its file an error
row, not the run. The CLI starts the extraction before it loads a bundled model
(start_analysis), so that the workers are busy while torch is imported.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from ..constants import DEFAULT_WINDOW_S, WINDOW_OVERLAP
from ..errors import SercliError, display_path
from ..threads import one_blas_thread
from .settings import Settings
from .windows import Analysed, analyse_file

BACKENDS = ("local", "dask")
DASK_CONNECT_TIMEOUT_S = 10  # how long to try to reach a dask scheduler


def default_jobs() -> int:
    return os.cpu_count() or 1


def jobs_for(jobs: int | None, n_files: int) -> int:
    """Worker processes for `n_files` files: `jobs` (default all cores), never more than files."""
    jobs = default_jobs() if not jobs or jobs < 1 else jobs
    return min(jobs, max(1, n_files))


def _analyse(path: str, s: Settings, cwd: str | None = None) -> Analysed:
    return analyse_file(path, s.needs, s.window_s, s.overlap, s.debug, cwd)


def _analyse_here(path: str, settings: Settings) -> Analysed:
    with one_blas_thread():
        return _analyse(path, settings)


def _analyse_in_worker(path: str, settings: Settings, cwd: str, caller_pid: int, spool: str | None = None):
    """analyse_file in a worker process, which leaves Ctrl-C to the main process.

    A terminal's Ctrl-C reaches the whole process group; a worker dying mid-task could leave
    joblib's shutdown waiting, while the main process already stops the run cleanly.
    With `spool` (a folder), the Analysed goes to a file there and only its name goes back
    (see _Spooled).
    """
    import signal
    import threading

    if os.getpid() != caller_pid:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        _setup_worker()
    a = _analyse(path, settings, cwd)
    return a if spool is None else _Spooled.put(a, spool)


class _Spooled:
    """A worker's Analysed, left in a file of the run's spool folder; only the file name goes
    through the result pipe. A worker killed while it writes a large result into the pipe (the
    OOM killer) would leave a partial message there, on which loky's reader then waits for
    ever: a name is one write of less than PIPE_BUF bytes, which the kernel never splits."""

    __slots__ = ("file",)

    def __init__(self, file: str):
        self.file = file

    def __getstate__(self):
        return self.file

    def __setstate__(self, state):
        self.file = state

    @staticmethod
    def put(a: Analysed, spool: str) -> _Spooled:
        import pickle
        import tempfile

        fd, name = tempfile.mkstemp(dir=spool, suffix=".part")
        with os.fdopen(fd, "wb") as f:
            pickle.dump(a, f, protocol=pickle.HIGHEST_PROTOCOL)
        return _Spooled(name)

    @staticmethod
    def take(x) -> Analysed:
        """The Analysed itself (a _Spooled is read and its file removed)."""
        if not isinstance(x, _Spooled):
            return x
        import pickle

        try:
            with open(x.file, "rb") as f:
                return pickle.load(f)  # written by this run's own worker, a moment ago
        finally:
            try:
                os.unlink(x.file)
            except OSError:
                pass


_booting = None  # the thread of start_workers(), joined before the workers are used


_malloc_tuned = False


def tune_malloc() -> None:
    """Keep freed feature buffers in this process's heap instead of returning them to the OS.

    glibc serves each large numpy temporary (a clip's frames, its FFT) with a fresh mmap and
    unmaps it when freed, so every clip pays page faults anew: a third of a worker's CPU time
    went to the kernel. Raising the mmap and trim thresholds lets the next clip reuse the
    pages. Process-wide, so only sercli's own processes call it (its workers and the CLI);
    a no-op where glibc's mallopt is absent.
    """
    global _malloc_tuned
    if _malloc_tuned:
        return
    _malloc_tuned = True
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
    mallopt(M_MMAP_THRESHOLD, 256 << 20)
    mallopt(M_TRIM_THRESHOLD, 512 << 20)
    mallopt(M_TOP_PAD, 64 << 20)


def _boot_worker() -> int:
    """Runs once in each new worker: the imports analyse_file needs."""
    _setup_worker()
    import soundfile  # noqa: F401
    import soxr  # noqa: F401

    from .. import features  # noqa: F401

    return os.getpid()


def _setup_worker() -> None:
    """In a worker process, before its task: keep freed buffers (tune_malloc), and let the worker
    grow before loky takes it for leaking (sercli.parallel.allow_worker_growth). loky measures a
    worker after its first task (often _boot_worker, or a file that fails before any model loads).
    Both steps are idempotent, so every task may call this."""
    from ..parallel import allow_worker_growth

    tune_malloc()
    allow_worker_growth()


def start_workers(jobs: int) -> None:
    """Start `jobs` local worker processes in the background, so that they boot while this
    process loads the model (importing torch takes about a second); classify() with the same
    number of jobs then reuses them. Does nothing for fewer than 2 jobs."""
    global _booting
    if jobs < 2 or _booting is not None:
        return

    def boot():
        from joblib import Parallel, delayed, parallel_config

        try:
            with parallel_config(backend="loky", inner_max_num_threads=1):
                Parallel(n_jobs=jobs)(delayed(_boot_worker)() for _ in range(jobs))
        except Exception:  # classify() starts its own workers anyway
            pass

    import threading

    _booting = threading.Thread(target=boot, name="sercli-start-workers", daemon=True)
    _booting.start()


def kill_workers() -> None:
    """SIGKILL this process's local worker processes (joblib's loky pool, one still booting
    included) and drop the pool: after an interrupt, once the report is whole, nothing they
    hold matters, and none may outlive sercli (a worker keeps the caller's pipes open)."""
    import signal

    try:
        from joblib.externals.loky import reusable_executor
    except Exception:
        return
    for attempt in range(2):
        ex = reusable_executor._executor
        if ex is not None:
            for proc in list((getattr(ex, "_processes", None) or {}).values()):
                try:
                    os.kill(proc.pid, signal.SIGKILL)
                except (OSError, AttributeError, TypeError):
                    pass
            try:
                ex.shutdown(wait=False, kill_workers=True)
            except Exception:
                pass
        booting = _booting
        if attempt == 0 and booting is not None and booting.is_alive():
            booting.join(5.0)  # a pool being started now: let it finish, then kill it too
        else:
            break


def _workers_booted() -> None:
    global _booting
    if _booting is not None:
        _booting.join()
        _booting = None


def _dask_client(scheduler: str | None):
    """A distributed.Client on an existing cluster, or a one-line SercliError."""
    scheduler = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS")
    if not scheduler:
        raise SercliError(
            "the dask backend needs a scheduler address (--scheduler tcp://HOST:8786 or DASK_SCHEDULER_ADDRESS)"
        )
    try:
        from distributed import Client
    except ImportError:
        raise SercliError(
            "the dask backend needs dask.distributed, which is not installed: pip install 'sercli[dask]'"
        ) from None
    try:
        return Client(scheduler, timeout=f"{DASK_CONNECT_TIMEOUT_S}s")
    except Exception as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise SercliError(f"cannot reach the dask scheduler at {scheduler}: {reason}") from None


def analysis(
    paths: list[str],
    settings: Settings,
    jobs: int,
    backend: str = "local",
    scheduler: str | None = None,
    warn: Callable[[str], None] | None = None,
):
    """The Analysed of each path, in order, computed where `backend` and `jobs` say; returns
    (iterator, dask client or None)."""
    if backend != "dask" and jobs == 1:
        return (_analyse_here(p, settings) for p in paths), None
    from joblib import Parallel, delayed, parallel_config

    client = None
    if backend == "dask":
        client = _dask_client(scheduler)
        if warn and sum(client.nthreads().values()) < 2:
            warn(
                f"warning: the dask cluster at {client.scheduler.address} has "
                f"{sum(client.nthreads().values())} worker thread(s); joblib then runs the "
                "work in this process"
            )
        config, n_jobs = dict(backend="dask"), -1
    else:
        _workers_booted()
        config, n_jobs = dict(backend="loky", inner_max_num_threads=1), jobs
    cwd = os.getcwd()
    spool = None
    if backend != "dask":  # local workers hand their results over in files (_Spooled)
        import atexit
        import shutil
        import tempfile

        spool = tempfile.mkdtemp(prefix="sercli-")
        atexit.register(shutil.rmtree, spool, True)

    def run(chunk: list[str]):
        with parallel_config(**config):
            return Parallel(n_jobs=n_jobs, return_as="generator", batch_size=4, pre_dispatch="4*n_jobs")(
                delayed(_analyse_in_worker)(p, settings, cwd, os.getpid(), spool) for p in chunk
            )

    if backend == "dask":  # dask reschedules the tasks of a worker it loses
        return _two_chunks_ahead(run, _chunked(paths, CHUNK_FILES, CHUNK_BYTES)), client

    def run_surviving(chunk: list[str]):
        return _surviving(run(chunk), chunk, run, lambda: _Isolated(settings, cwd, spool))

    results = _two_chunks_ahead(run_surviving, _chunked(paths, CHUNK_FILES, CHUNK_BYTES))

    def spooled():
        import shutil

        try:
            yield from results
        finally:
            shutil.rmtree(spool, ignore_errors=True)

    return spooled(), client


def _worker_died(exc: BaseException) -> bool:
    """A worker process ended mid-task (killed by the OOM killer or a signal, or crashed)."""
    from concurrent.futures.process import BrokenProcessPool

    return isinstance(exc, BrokenProcessPool)


def _death_note(exc: BaseException) -> str:
    import re

    m = re.search(r"exit codes of the workers are \{([^}]*)\}", str(exc))
    return f" (exit code {m.group(1)})" if m else ""


def _surviving(first, chunk: list[str], run, isolated) -> Iterator[Analysed]:
    """The Analysed of each path of `chunk`, in order, from the joblib generator `first`,
    outliving dead workers: when a worker dies, the files not yet answered are run again once
    in fresh workers; should a worker die again, each remaining file runs alone in a fresh
    worker, and a file whose worker dies gets an error row. The run goes on."""
    gen, rest, tries = first, list(chunk), 0
    try:
        while True:
            try:
                for a in gen:
                    rest.pop(0)
                    yield _Spooled.take(a)
                return
            except Exception as exc:
                if not _worker_died(exc):
                    raise
                _close(gen)
                gen = None
                tries += 1
                note = _death_note(exc)
            if tries == 1:
                gen = run(list(rest))
                continue
            one = isolated()
            try:
                for p in rest:
                    yield one.analyse(p, note)
            finally:
                one.close()
            return
    finally:
        _close(gen)


class _Isolated:
    """Analyses files one at a time in a fresh one-worker process pool: a file whose worker
    dies gets an error row, and the next file a new worker."""

    def __init__(self, settings: Settings, cwd: str, spool: str | None = None):
        self.args = (settings, cwd, spool)
        self.pool = None

    def analyse(self, path: str, note: str = "") -> Analysed:
        from joblib.externals.loky import ProcessPoolExecutor

        settings, cwd, spool = self.args
        if self.pool is None:
            self.pool = ProcessPoolExecutor(max_workers=1)
        try:
            return _Spooled.take(self.pool.submit(_analyse_in_worker, path, settings, cwd, os.getpid(), spool).result())
        except Exception as exc:
            if not _worker_died(exc):
                raise
            self.close()
            return Analysed(
                path,
                error=f"{display_path(path)}: the worker process analysing it "
                f"died{_death_note(exc) or note} (killed, e.g. for lack of "
                "memory, or crashed)",
            )

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, kill_workers=True)
            self.pool = None


#: Files per joblib call. joblib dispatches a new task whenever one finishes, whether or not
#: its results were read; with at most two calls running, the results waiting for the model
#: (one file's window features each) stay under two chunks however many files are given.
CHUNK_FILES = 512
#: ... and at most this many bytes of audio files per call (unless one file is larger), since a
#: file's window features grow with its length: 1,024 files of 9 minutes would otherwise wait
#: as some 30 GB of log-mel windows. Features run to about 1.6 times the bytes of a 16 kHz
#: 16-bit WAV (4 s windows, half overlapping), less for higher rates, more for compressed files.
#: With 64 MiB, 120 files of 5 minutes peaked at 1.08 GB over all processes; with 16 MiB, 0.61 GB.
CHUNK_BYTES = 16 * 2**20


def _chunked(paths: list[str], size: int, max_bytes: int) -> Iterator[list[str]]:
    """Consecutive chunks of at most `size` paths and `max_bytes` file bytes (a path that cannot
    be read counts 0: its worker reports it). Lazy: a file is looked at only when its chunk is
    about to start, so a long list costs nothing up front."""
    current, total = [], 0
    for p in paths:
        try:
            n = os.stat(p).st_size
        except (OSError, ValueError):
            n = 0
        if current and (len(current) >= size or total + n > max_bytes):
            yield current
            current, total = [], 0
        current.append(p)
        total += n
    if current:
        yield current


def _two_chunks_ahead(run, chunks: Iterable[list]) -> Iterator[Analysed]:
    """run(chunk) for each chunk in turn, results in order. The first chunk starts now, each
    next one when the one before is first read from, so the workers never wait at a chunk's
    end."""
    chunks = iter(chunks)
    first = next(chunks, None)
    first = run(first) if first is not None else None

    def results():
        current, following = first, None
        try:
            while current is not None:
                following = next(chunks, None)
                following = run(following) if following is not None else None
                yield from current
                current, following = following, None
        finally:
            for gen in (current, following):
                _close(gen)

    return results()


def _close(gen) -> None:
    """Stop a joblib generator early, without its warning that finished tasks go unused."""
    import warnings

    if gen is None or not hasattr(gen, "close"):
        return
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message=r".*(tasks have been successfully executed|"
            r"still being processed by the workers)",
            category=UserWarning,
        )
        gen.close()


@dataclass
class StartedAnalysis:
    """Decoding and features already running in local workers (start_analysis)."""

    paths: list[str]
    jobs: int
    settings: Settings
    results: Iterator[Analysed]

    def serves(self, paths: list[str], jobs: int, settings: Settings) -> bool:
        """Whether these are the analyses a classify() call with these settings needs."""
        return self.paths == paths and self.jobs == jobs and settings.analyses_alike(self.settings)

    def close(self) -> None:
        _close(self.results)


def start_analysis(
    paths: Iterable[str],
    needs: tuple[str, ...],
    *,
    jobs: int | None = None,
    window_s: float = DEFAULT_WINDOW_S,
    overlap: float = WINDOW_OVERLAP,
    debug: bool = False,
) -> StartedAnalysis | None:
    """Start decoding and feature extraction in local workers before the model is loaded, so
    that they work while this process imports torch (about a second; see
    models.needs_before_loading); pass the result to classify(started=...). None when there
    is nothing to overlap (one job or one file)."""
    paths = [os.fspath(p) for p in paths]
    jobs = jobs_for(jobs, len(paths))
    if jobs < 2 or window_s <= 0:
        return None
    settings = Settings(needs=tuple(needs), window_s=window_s, overlap=overlap, debug=debug)
    analysed, _ = analysis(paths, settings, jobs)
    return StartedAnalysis(paths, jobs, settings, analysed)
