"""From paths to predictions: the library behind `sercli classify`.

Files are decoded and turned into features in parallel (joblib, results in input order, at
most two chunks of CHUNK_FILES files or CHUNK_BYTES bytes running, so that memory stays
bounded); the model runs in the main process on batches of windows. The CLI starts the
extraction before it loads a bundled model (start_analysis), so that the workers are busy
while torch is imported. A recording longer than the window is cut into overlapping windows,
each labelled, and the file's scores are the mean over its non-silent windows. Recordings
longer than LONG_FILE_S are streamed window by window in the main process, so memory stays
bounded whatever their length.
"""
from __future__ import annotations

import math
import os
import sys
from dataclasses import asdict, dataclass
from typing import Callable, Iterable, Iterator, Mapping

import numpy as np

from .audio import AudioInfo, audio_info, iter_blocks, load_audio, why_silent
from .constants import (DEFAULT_WINDOW_S, MIN_DURATION_S, SAMPLE_RATE, SILENCE_DBFS,
                        WINDOW_OVERLAP)
from .errors import AudioError, ModelError, SercliError, display_path
from .silence import REASON as SILENT_REASON, is_silent
from .threads import one_blas_thread

LONG_FILE_S = 600.0   # longer files are streamed in the main process instead of a worker
BATCH_WINDOWS = 32


@dataclass
class Segment:
    start_s: float
    end_s: float
    label: str | None
    confidence: float | None
    scores: dict[str, float] | None
    silent: bool = False


@dataclass
class ClipResult:
    """One input file's prediction, or the reason there is none (`error`)."""
    path: str
    label: str | None
    confidence: float | None
    scores: dict[str, float] | None
    duration_s: float | None
    sample_rate: int | None
    channels: int | None
    model: str
    error: str | None = None
    top_k: list[dict] | None = None
    segments: list[Segment] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self, *, with_segments: bool = False, with_top_k: bool = False) -> dict:
        d = asdict(self)
        if not with_segments:
            d.pop("segments")
        if not with_top_k:
            d.pop("top_k")
        return d


def dbfs(y: np.ndarray) -> float:
    """RMS level in dB relative to full scale (-inf for digital silence)."""
    if y.size == 0:
        return -math.inf
    r = float(np.sqrt(np.mean(np.square(y, dtype=np.float64))))
    return 20 * math.log10(r) if r > 0 else -math.inf


def window_starts(duration_s: float, window_s: float, overlap: float) -> list[float]:
    """Start times of overlapping windows covering [0, duration]; the last one ends at the end."""
    if duration_s <= window_s * 1.25:
        return [0.0]
    hop = window_s * (1 - overlap)
    starts = [i * hop for i in range(int((duration_s - window_s) // hop) + 1)]
    if starts[-1] + window_s < duration_s - 1e-6:
        starts.append(duration_s - window_s)
    return starts


@dataclass
class Window:
    start_s: float
    end_s: float
    silent: bool
    feats: dict[str, np.ndarray] | None


def iter_windows(path: str, info: AudioInfo, needs: tuple[str, ...], *, window_s: float,
                 overlap: float) -> Iterator[Window]:
    """Stream the windows of one file with their features; memory O(window + block)."""
    duration = info.duration_s
    starts = window_starts(duration, window_s, overlap)
    if len(starts) == 1:
        y, _ = load_audio(path)
        _check_decoded(path, y.size, duration)
        yield _window(y, 0.0, len(y) / SAMPLE_RATE, needs)
        return
    win = int(round(window_s * SAMPLE_RATE))
    _, blocks = iter_blocks(path, block_seconds=max(30.0, 2 * window_s))
    buf = np.zeros(0, np.float32)
    buf_start = 0          # sample index of buf[0]
    exhausted = False
    try:
        for i, s in enumerate(starts):
            a = int(round(s * SAMPLE_RATE))
            while not exhausted and buf_start + len(buf) < a + win:
                try:
                    buf = np.concatenate([buf, next(blocks)])
                except StopIteration:
                    exhausted = True
            seg = buf[a - buf_start:a - buf_start + win]
            if seg.size == 0:
                if i == 0:
                    _check_decoded(path, buf_start + len(buf), duration)
                break
            yield _window(seg, a / SAMPLE_RATE, (a + seg.size) / SAMPLE_RATE, needs)
            nxt = int(round(starts[i + 1] * SAMPLE_RATE)) if i + 1 < len(starts) else a + win
            drop = max(0, min(nxt - buf_start, len(buf)))
            buf, buf_start = buf[drop:], buf_start + drop
    finally:
        blocks.close()     # closes the file now, also when the consumer stops early


def _check_decoded(path: str, n: int, header_s: float) -> None:
    """A header can promise more than the file holds (truncated or corrupt data)."""
    if n == 0:
        raise AudioError(f"{display_path(path)}: no audio samples could be decoded "
                         f"(header says {header_s:.3f} s)")
    if n < MIN_DURATION_S * SAMPLE_RATE:
        raise AudioError(f"{display_path(path)}: too short: {n / SAMPLE_RATE:.3f} s decoded "
                         f"(minimum {MIN_DURATION_S} s)")


def _window(y: np.ndarray, start: float, end: float, needs) -> Window:
    from .dataset import clip_features
    from .features import remove_dc
    y = remove_dc(y)      # a DC offset is not sound: it must not make silence look loud
    if is_silent(y):
        return Window(round(start, 3), round(end, 3), True, None)
    return Window(round(start, 3), round(end, 3), False, clip_features(y, needs) if needs else {})


@dataclass
class Analysed:
    """A worker's answer for one file: header facts and window features, or an error."""
    path: str
    info: AudioInfo | None = None
    windows: list[Window] | None = None
    stream: bool = False         # too long for a worker: the main process streams it
    error: str | None = None


def refusal(path: str, window_s: float = DEFAULT_WINDOW_S,
            overlap: float = WINDOW_OVERLAP) -> str | None:
    """The error row `classify` would give `path` for its audio (undecodable, too short,
    silent: the same rule, silence.is_silent on each window), or None when it would classify
    it. `evaluate` uses it, so that the two commands refuse the same clips."""
    with one_blas_thread():
        a = analyse_file(path, (), window_s, overlap)
        if a.error:
            return a.error
        try:
            wins = a.windows if not a.stream else iter_windows(path, a.info, (), window_s=window_s,
                                                                overlap=overlap)
            if all(w.silent for w in wins):
                return f"{display_path(path)}: " + (why_silent(path) or f"silent: {SILENT_REASON}")
        except Exception as exc:
            return _file_error(path, exc, False)
    return None


def _analyse_in_worker(path: str, needs, window_s: float, overlap: float, debug: bool,
                       cwd: str, caller_pid: int, spool: str | None = None):
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
        tune_malloc()
    a = analyse_file(path, needs, window_s, overlap, debug, cwd)
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
    def put(a: "Analysed", spool: str) -> "_Spooled":
        import pickle
        import tempfile
        fd, name = tempfile.mkstemp(dir=spool, suffix=".part")
        with os.fdopen(fd, "wb") as f:
            pickle.dump(a, f, protocol=pickle.HIGHEST_PROTOCOL)
        return _Spooled(name)

    @staticmethod
    def take(x) -> "Analysed":
        """The Analysed itself (a _Spooled is read and its file removed)."""
        if not isinstance(x, _Spooled):
            return x
        import pickle
        try:
            with open(x.file, "rb") as f:
                return pickle.load(f)     # written by this run's own worker, a moment ago
        finally:
            try:
                os.unlink(x.file)
            except OSError:
                pass


def analyse_file(path: str, needs: tuple[str, ...], window_s: float, overlap: float,
                 debug: bool = False, cwd: str | None = None) -> Analysed:
    """Decode one file and compute its window features (runs in a joblib worker).

    `cwd` is the caller's working folder: a relative `path` is read from there, since a reused
    worker process (or a dask worker) may have another one; the result and its messages keep
    `path` as given.
    """
    src = os.path.join(cwd, path) if cwd and not os.path.isabs(path) else path
    shown = display_path(path)
    info = None
    try:
        info = audio_info(src)
        if info.frames == 0:
            return Analysed(path, info, error=f"{shown}: no audio samples (empty audio data)")
        if info.duration_s < MIN_DURATION_S:
            return Analysed(path, info, error=f"{shown}: too short: {info.duration_s:.3f} s "
                                              f"(minimum {MIN_DURATION_S} s)")
        if info.duration_s > LONG_FILE_S:
            return Analysed(path, info, stream=True)
        return Analysed(path, info, windows=list(iter_windows(src, info, needs, window_s=window_s,
                                                              overlap=overlap)))
    except Exception as exc:  # no failure of one file may stop the batch
        return Analysed(path, info, error=_file_error(path, exc, debug, src))


def _file_error(path: str, exc: Exception, debug: bool, src: str | None = None) -> str:
    """The one-line error row of a file that failed; under --debug an unexpected error is
    raised instead. `src` is the path the file was opened as, when it differs from `path`."""
    if isinstance(exc, SercliError):
        msg = " ".join(str(exc).split())
        opened = display_path(src) + ": " if src else ""
        if src and src != path and msg.startswith(opened):
            msg = f"{display_path(path)}: {msg[len(opened):]}"
        return msg
    if isinstance(exc, MemoryError):
        # one huge file (say, many channels at a high rate) must not stop the batch
        return f"{display_path(path)}: out of memory while decoding (try a shorter --window)"
    if debug:
        raise exc
    return f"{display_path(path)}: {type(exc).__name__}: {' '.join(str(exc).split())}"


def _round_scores(labels, p) -> dict[str, float]:
    return {lab: round(float(v), 6) for lab, v in zip(labels, p)}


def _result(model, a: Analysed, wins: list[Window], probs: dict[int, np.ndarray], top_k: int | None,
            with_segments: bool) -> ClipResult:
    info = a.info
    segs, voiced = [], []
    for i, w in enumerate(wins):
        p = probs.get(i)
        if p is None:
            segs.append(Segment(w.start_s, w.end_s, None, None, None, True))
        else:
            voiced.append(p)
            k = int(np.argmax(p))
            segs.append(Segment(w.start_s, w.end_s, model.labels[k], round(float(p[k]), 6),
                                _round_scores(model.labels, p)))
    base = dict(path=a.path, duration_s=round(info.duration_s, 3), sample_rate=info.sample_rate,
                channels=info.channels, model=model.name)
    if not voiced:
        return ClipResult(label=None, confidence=None, scores=None,
                          error=f"{display_path(a.path)}: " + (why_silent(a.path) or
                                                               f"silent: {SILENT_REASON}"),
                          segments=segs if with_segments else None, **base)
    if not all(np.isfinite(p).all() for p in voiced):
        # never NaN in a report (JSON has no NaN): say so instead
        return ClipResult(label=None, confidence=None, scores=None,
                          error=f"{display_path(a.path)}: the model gave non-finite scores",
                          **base)
    mean = np.mean(voiced, axis=0)
    k = int(np.argmax(mean))
    top = None
    if top_k:
        order = np.argsort(-mean, kind="stable")[:top_k]
        top = [{"label": model.labels[i], "score": round(float(mean[i]), 6)} for i in order]
    return ClipResult(label=model.labels[k], confidence=round(float(mean[k]), 6),
                      scores=_round_scores(model.labels, mean), top_k=top,
                      segments=segs if with_segments else None, **base)


def _error_result(model_name: str, a: Analysed) -> ClipResult:
    info = a.info
    return ClipResult(path=a.path, label=None, confidence=None, scores=None,
                      duration_s=round(info.duration_s, 3) if info else None,
                      sample_rate=info.sample_rate if info else None,
                      channels=info.channels if info else None, model=model_name, error=a.error)


def resolve_model(model="whisper-tiny", *, warn: Callable[[str], None] | None = None):
    """Load a model by name, path or object; the default model falls back to the SVM with a warning."""
    from .models import DEFAULT_MODEL, FALLBACK_MODEL, Model, load_model
    if isinstance(model, Model):
        return model
    try:
        return load_model(model)
    except ModelError as exc:
        if str(model) != DEFAULT_MODEL:
            raise
        if warn:
            warn(f"warning: {exc}; falling back to the '{FALLBACK_MODEL}' model")
        return load_model(FALLBACK_MODEL)


def default_jobs() -> int:
    return os.cpu_count() or 1


def _jobs_for(jobs: int | None, n_files: int) -> int:
    """Worker processes for `n_files` files: `jobs` (default all cores), never more than files."""
    jobs = default_jobs() if not jobs or jobs < 1 else jobs
    return min(jobs, max(1, n_files))


BACKENDS = ("local", "dask")
DASK_CONNECT_TIMEOUT_S = 10      # how long to try to reach a dask scheduler


class _TorchThreads:
    """Caps torch's intra-op threads while the model runs in this process: the worker
    processes keep the other cores busy, oversubscribed OpenMP threads are many times slower
    than one on small convolutions, and one thread gives the same bits whatever --jobs is.
    The setting found on entry is restored on exit."""

    def __init__(self, n: int):
        self.n, self.old = n, None

    def __enter__(self):
        self.old = None
        torch = sys.modules.get("torch")
        if torch is not None and torch.get_num_threads() > self.n:
            self.old = torch.get_num_threads()
            torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        if self.old is not None:
            sys.modules["torch"].set_num_threads(self.old)
        return False


def _analyse_here(path: str, needs, window_s: float, overlap: float, debug: bool) -> "Analysed":
    with one_blas_thread():
        return analyse_file(path, needs, window_s, overlap, debug)


_booting = None     # the thread of start_workers(), joined before the workers are used


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
    tune_malloc()
    import soundfile  # noqa: F401
    import soxr  # noqa: F401
    from . import features  # noqa: F401
    return os.getpid()


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
        except Exception:   # classify() starts its own workers anyway
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
            booting.join(5.0)       # a pool being started now: let it finish, then kill it too
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
        raise SercliError("the dask backend needs a scheduler address (--scheduler "
                          "tcp://HOST:8786 or DASK_SCHEDULER_ADDRESS)")
    try:
        from distributed import Client
    except ImportError:
        raise SercliError("the dask backend needs dask.distributed, which is not installed: "
                          "pip install 'sercli[dask]'") from None
    try:
        return Client(scheduler, timeout=f"{DASK_CONNECT_TIMEOUT_S}s")
    except Exception as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise SercliError(f"cannot reach the dask scheduler at {scheduler}: {reason}") from None


def _analysis(paths: list[str], needs, jobs: int, window_s: float, overlap: float, debug: bool,
              backend: str = "local", scheduler: str | None = None, warn=None):
    """The Analysed of each path, in order, computed where `backend` and `jobs` say; returns
    (iterator, dask client or None)."""
    if backend != "dask" and jobs == 1:
        return (_analyse_here(p, needs, window_s, overlap, debug) for p in paths), None
    from joblib import Parallel, delayed, parallel_config
    client = None
    if backend == "dask":
        client = _dask_client(scheduler)
        if warn and sum(client.nthreads().values()) < 2:
            warn(f"warning: the dask cluster at {client.scheduler.address} has "
                 f"{sum(client.nthreads().values())} worker thread(s); joblib then runs the "
                 "work in this process")
        config, n_jobs = dict(backend="dask"), -1
    else:
        _workers_booted()
        config, n_jobs = dict(backend="loky", inner_max_num_threads=1), jobs
    cwd = os.getcwd()
    spool = None
    if backend != "dask":       # local workers hand their results over in files (_Spooled)
        import atexit
        import shutil
        import tempfile
        spool = tempfile.mkdtemp(prefix="sercli-")
        atexit.register(shutil.rmtree, spool, True)

    def run(chunk: list[str]):
        with parallel_config(**config):
            return Parallel(n_jobs=n_jobs, return_as="generator", batch_size=4,
                            pre_dispatch="4*n_jobs")(
                delayed(_analyse_in_worker)(p, needs, window_s, overlap, debug, cwd, os.getpid(),
                                            spool)
                for p in chunk)

    if backend == "dask":       # dask reschedules the tasks of a worker it loses
        return _two_chunks_ahead(run, _chunked(paths, CHUNK_FILES, CHUNK_BYTES)), client

    def run_surviving(chunk: list[str]):
        return _surviving(run(chunk), chunk, run,
                          lambda: _Isolated(needs, window_s, overlap, debug, cwd, spool))
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


def _surviving(first, chunk: list[str], run, isolated) -> Iterator["Analysed"]:
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

    def __init__(self, needs, window_s, overlap, debug, cwd, spool=None):
        self.args = (needs, window_s, overlap, debug, cwd, spool)
        self.pool = None

    def analyse(self, path: str, note: str = "") -> "Analysed":
        from joblib.externals.loky import ProcessPoolExecutor
        needs, window_s, overlap, debug, cwd, spool = self.args
        if self.pool is None:
            self.pool = ProcessPoolExecutor(max_workers=1)
        try:
            return _Spooled.take(self.pool.submit(_analyse_in_worker, path, needs, window_s, overlap,
                                                  debug, cwd, os.getpid(), spool).result())
        except Exception as exc:
            if not _worker_died(exc):
                raise
            self.close()
            return Analysed(path, error=f"{display_path(path)}: the worker process analysing it "
                                        f"died{_death_note(exc) or note} (killed, e.g. for lack of "
                                        "memory, or crashed)")

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


def _two_chunks_ahead(run, chunks: Iterable[list]) -> Iterator["Analysed"]:
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
        warnings.filterwarnings("ignore", message=r".*(tasks have been successfully executed|"
                                r"still being processed by the workers)", category=UserWarning)
        gen.close()


@dataclass
class StartedAnalysis:
    """Decoding and features already running in local workers (start_analysis)."""
    paths: list[str]
    needs: tuple[str, ...]
    jobs: int
    window: tuple[float, float]
    debug: bool
    results: Iterator["Analysed"]

    def serves(self, paths: list[str], needs, jobs: int, window: tuple[float, float],
               debug: bool) -> bool:
        """Whether these are the analyses a classify() call with these settings needs."""
        return (self.paths == paths and self.jobs == jobs and self.window == window
                and self.debug == debug and set(needs) <= set(self.needs))

    def close(self) -> None:
        _close(self.results)


def start_analysis(paths: Iterable[str], needs: tuple[str, ...], *, jobs: int | None = None,
                   window_s: float = DEFAULT_WINDOW_S, overlap: float = WINDOW_OVERLAP,
                   debug: bool = False) -> StartedAnalysis | None:
    """Start decoding and feature extraction in local workers before the model is loaded, so
    that they work while this process imports torch (about a second; see
    models.needs_before_loading); pass the result to classify(started=...). None when there
    is nothing to overlap (one job or one file)."""
    paths = [os.fspath(p) for p in paths]
    jobs = _jobs_for(jobs, len(paths))
    if jobs < 2 or window_s <= 0:
        return None
    analysed, _ = _analysis(paths, tuple(needs), jobs, window_s, overlap, debug)
    return StartedAnalysis(paths, tuple(needs), jobs, (window_s, overlap), debug, analysed)


def classify(paths: Iterable[str], *, model="whisper-tiny", jobs: int | None = None,
             window_s: float = DEFAULT_WINDOW_S, overlap: float = WINDOW_OVERLAP,
             segments: bool = False, top_k: int | None = None, debug: bool = False,
             warn: Callable[[str], None] | None = None,
             backend: str = "local", scheduler: str | None = None,
             normalize_by: str | None = None,
             speakers: Mapping[str, str] | None = None,
             started: "StartedAnalysis | None" = None) -> Iterator[ClipResult]:
    """Classify audio files; yields one ClipResult per path, in input order.

    `model` is a bundled name (cnn, cnn-spk, cnn-spk-ens, seed-cnn, svm), a model file path,
    or a loaded Model.
    Bad files give a result with `error` set; nothing is raised for them.

    `normalize_by="folder"|"speaker"` normalises the features over each group of files
    (see group_keys; `speakers` maps paths to speaker ids, e.g. from a manifest) before the
    model sees them, in two passes: the features of every file first, then each group's
    normalised and scored; results are still yielded in input order, one per path. Only
    SVMs and group-trained CNNs support it (SercliError otherwise). See sercli.normalize.

    `backend="dask"` decodes and extracts features on an existing dask.distributed cluster
    through joblib's Dask backend (`scheduler` is its address, default $DASK_SCHEDULER_ADDRESS;
    all the cluster's threads are used and `jobs` does not apply). The paths must be readable
    at the same place on the workers. The model still runs here, on the same batches, so the
    results are those of a local run (bit for bit when the workers' BLAS runs one thread, as
    dask's nanny sets it and as sercli's local workers run).

    `started` is start_analysis() of the same paths and settings, begun before the model was
    loaded; it is used when it holds the features the model needs, else extraction starts again.
    """
    try:
        if backend not in BACKENDS:
            raise SercliError(f"unknown backend {backend!r} (choose {' or '.join(BACKENDS)})")
        m = resolve_model(model, warn=warn)
        paths = [os.fspath(p) for p in paths]
        jobs = _jobs_for(jobs, len(paths))
        if window_s <= 0:
            raise SercliError(f"window must be positive, got {window_s}")
        keys = group_setup(m, paths, normalize_by, speakers, warn)
    except BaseException:
        if started is not None:
            started.close()
        raise
    needs = m.needs
    client = None
    # The model runs here on one thread, and each worker's BLAS gets one thread (dask's nanny
    # sets that too): no oversubscription, and the same bits whatever --jobs or the backend
    # (a BLAS on more threads sums in another order).
    cap = _TorchThreads(1)
    if started is not None:
        if backend == "local" and started.serves(paths, needs, jobs, (window_s, overlap), debug):
            analysed = started.results
        else:      # not what this call needs: extract again
            started.close()
            started = None
    if started is None:
        analysed, client = _analysis(paths, needs, jobs, window_s, overlap, debug, backend,
                                     scheduler, warn)

    pending: list[tuple[Analysed, list[Window]]] = []   # errors ride along to keep input order

    def flush() -> Iterator[ClipResult]:
        feats, where = [], []
        for fi, (a, wins) in enumerate(pending):
            for wi, w in enumerate(wins):
                if w.feats is not None:
                    feats.append(w.feats)
                    where.append((fi, wi))
        with cap:
            probs = m.predict_proba(feats)
        per_file: list[dict[int, np.ndarray]] = [{} for _ in pending]
        for (fi, wi), p in zip(where, probs):
            per_file[fi][wi] = p
        done = list(zip(pending, per_file))
        pending.clear()
        for (a, wins), pf in done:
            yield _error_result(m.name, a) if a.error else _result(m, a, wins, pf, top_k, segments)

    n_windows = 0
    try:
        if keys is not None:
            yield from _classify_grouped(m, analysed, keys, needs, window_s, overlap, top_k,
                                         segments, debug, warn)
            return
        for a in analysed:
            if a.error is None and a.stream:
                yield from flush()
                n_windows = 0
                with cap, one_blas_thread():
                    r = _stream_result(m, a, needs, window_s, overlap, top_k, segments)
                yield r
                continue
            pending.append((a, a.windows or []))
            n_windows += len(a.windows or [])
            if n_windows >= BATCH_WINDOWS:
                yield from flush()
                n_windows = 0
        yield from flush()
    finally:
        if client is not None:
            client.close()


def _stream_result(m, a: Analysed, needs, window_s, overlap, top_k, segments,
                   debug: bool = False) -> ClipResult:
    """A long recording: windows streamed and scored in batches; only scores are kept.

    Runs in the main process, so a failure of this one file becomes its error row instead of
    ending the batch (as analyse_file does in the workers).
    """
    wins: list[Window] = []
    probs: dict[int, np.ndarray] = {}
    batch: list[tuple[int, dict]] = []
    try:
        for i, w in enumerate(iter_windows(a.path, a.info, needs, window_s=window_s, overlap=overlap)):
            wins.append(Window(w.start_s, w.end_s, w.silent, None))
            if w.feats is not None:
                batch.append((i, w.feats))
            if len(batch) >= BATCH_WINDOWS:
                for (j, _), p in zip(batch, m.predict_proba([f for _, f in batch])):
                    probs[j] = p
                batch = []
        for (j, _), p in zip(batch, m.predict_proba([f for _, f in batch])):
            probs[j] = p
    except Exception as exc:
        return _error_result(m.name, Analysed(a.path, a.info, error=_file_error(a.path, exc, debug)))
    return _result(m, a, wins, probs, top_k, segments)


def check_group_support(m) -> None:
    """A one-line SercliError when model `m` cannot take group-normalised input."""
    if not m.supports_group_norm:
        from .catalog import group_models
        best, *rest = group_models() or ["cnn-spk-ens"]
        raise SercliError(f"--normalize-by needs a model trained for it: use --model {best}"
                          + (f" (or {', '.join(rest)})" if rest else "")
                          + f"; model {m.name} ({m.kind}) was trained on single clips")


def group_keys(paths: list[str], by: str, speakers: Mapping[str, str] | None = None) -> list[tuple]:
    """Each path's group for --normalize-by.

    folder: the file's parent folder. speaker: the path's speaker in `speakers` (a manifest's
    speaker column), else the speaker of a file name that corpora.parse_name recognises
    (RAVDESS, CREMA-D, TESS, SAVEE, EmoDB, JL-Corpus naming), else the parent folder.
    """
    from .corpora import parse_name
    if by not in ("folder", "speaker"):
        raise SercliError(f"unknown grouping {by!r} (choose folder or speaker)")
    out = []
    for p in paths:
        if by == "speaker":
            if speakers and speakers.get(p):
                out.append(("speaker", "given", speakers[p]))
                continue
            clip = parse_name(p)
            if clip is not None and clip.speaker is not None:
                out.append(("speaker", clip.speaker_key))
                continue
        out.append(("folder", os.path.dirname(os.path.abspath(p))))
    return out


def group_setup(m, paths: list[str], normalize_by: str | None,
                speakers: Mapping[str, str] | None = None,
                warn: Callable[[str], None] | None = None) -> list[tuple] | None:
    """classify's group keys (None: no group normalisation), after checking the model takes it."""
    from .normalize import MIN_GROUP_CLIPS, NORMALIZE_BY
    by = normalize_by or "none"
    if by not in NORMALIZE_BY:
        raise SercliError(f"unknown normalize_by {by!r} (choose {', '.join(NORMALIZE_BY)})")
    if by == "none":
        if warn and m.group_trained:
            warn(f"warning: model {m.name} was trained on features normalised per speaker; "
                 "without --normalize-by each clip is normalised alone with its training "
                 f"statistics, which scores lower: add --normalize-by speaker (or folder) for "
                 f"batches of >= {MIN_GROUP_CLIPS} clips per speaker")
        return None
    check_group_support(m)
    return group_keys(paths, by, speakers)


def read_path_manifest(csv_path: str | os.PathLike) -> list[tuple[str, str | None]]:
    """(path, speaker) of each row of a CSV manifest with a `path` column (relative paths are
    read from the manifest's folder); speaker is None when the column is absent or empty.
    Other columns (label, corpus, ...) are ignored."""
    import csv
    csv_path = os.fspath(csv_path)
    base = os.path.dirname(csv_path)
    out = []
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        try:
            cols = {(c or "").strip().lower(): c for c in reader.fieldnames or []}
            if "path" not in cols:
                raise SercliError(f"{display_path(csv_path)}: a manifest needs a 'path' column "
                                  "(and optionally 'speaker')")
            for row in reader:
                p = (row.get(cols["path"]) or "").strip()
                if p:
                    spk = (row.get(cols["speaker"]) or "").strip() if "speaker" in cols else ""
                    out.append((p if os.path.isabs(p) else os.path.join(base, p), spk or None))
        except csv.Error as exc:     # e.g. a cell over the csv module's 128 KiB field limit
            raise ValueError(f"line {reader.line_num}: {exc}") from None
    return out


def _stream_windows(a: Analysed, needs, window_s, overlap, debug: bool = False) -> Analysed:
    """A long recording's windows with their features, streamed here (the grouped mode keeps
    them); a failure becomes the file's error."""
    try:
        with one_blas_thread():
            wins = list(iter_windows(a.path, a.info, needs, window_s=window_s, overlap=overlap))
    except Exception as exc:
        return Analysed(a.path, a.info, error=_file_error(a.path, exc, debug))
    return Analysed(a.path, a.info, windows=wins)


def _classify_grouped(m, analysed: Iterable[Analysed], keys: list[tuple], needs, window_s, overlap,
                      top_k, segments, debug, warn) -> Iterator[ClipResult]:
    """Group normalisation in two passes: every file's window features first (the workers'
    answers arrive in input order), then all windows of each group normalised together and
    scored; one result per file, in input order. What is held: a summary vector per window,
    and for a CNN its log-mel as float16 (about 50 kB per 4 s window; the training features
    are float16 too)."""
    from collections import Counter
    from .normalize import MIN_GROUP_CLIPS
    done: list[Analysed] = []
    for a in analysed:
        a = _stream_windows(a, needs, window_s, overlap, debug) if a.error is None and a.stream else a
        for w in a.windows or []:
            if w.feats is not None and "logmel" in w.feats:
                w.feats["logmel"] = w.feats["logmel"].astype(np.float16)
        done.append(a)
    feats, where, rows = [], [], []
    clips_per_group: Counter = Counter()
    for fi, (a, key) in enumerate(zip(done, keys)):
        if a.error:
            continue
        voiced = [(wi, w) for wi, w in enumerate(a.windows or []) if w.feats is not None]
        clips_per_group[key] += bool(voiced)
        for wi, w in voiced:
            feats.append(w.feats)
            where.append((fi, wi))
            rows.append(key)
    small = [n for n in clips_per_group.values() if 0 < n < MIN_GROUP_CLIPS]
    if warn and small:
        warn(f"warning: {len(small)} of {len(clips_per_group)} groups have fewer than "
             f"{MIN_GROUP_CLIPS} clips (smallest: {min(small)}); group normalisation works best "
             f"with >= {MIN_GROUP_CLIPS} clips of mixed emotions per group: a small group's "
             "statistics lean on the model's training statistics")
    probs = m.predict_proba_grouped(feats, rows)
    per_file: list[dict[int, np.ndarray]] = [{} for _ in done]
    for (fi, wi), p in zip(where, probs):
        per_file[fi][wi] = p
    for a, pf in zip(done, per_file):
        yield _error_result(m.name, a) if a.error else _result(m, a, a.windows or [], pf, top_k,
                                                               segments)


def classify_file(path: str | os.PathLike, *, model="whisper-tiny", **kwargs) -> ClipResult:
    """Classify one file; see `classify`."""
    return next(classify([os.fspath(path)], model=model, jobs=1, **kwargs))


def collect_paths(inputs: Iterable[str], *, recursive: bool = True,
                  extensions: Iterable[str] | None = None,
                  warn: Callable[[str], None] | None = None) -> list[str]:
    """Expand files and folders into a deterministic list of paths, each once.

    Folders are walked (sorted; symlinked folders inside them are not followed, so loops cannot
    hang; a folder given explicitly is walked even when it is a symlink); inside them, entries
    whose extension is an audio extension are kept, including folders or broken links named
    like audio, which then get an error row. Paths given explicitly are kept whatever their
    extension. A sub-folder that cannot be read is reported through `warn`.
    """
    from .constants import AUDIO_EXTENSIONS
    exts = {e.lower().lstrip(".") for e in (extensions or AUDIO_EXTENSIONS)}

    def wanted(name: str) -> bool:
        return os.path.splitext(name)[1].lower().lstrip(".") in exts

    out: list[str] = []
    seen: set[str] = set()

    def add(p: str) -> None:
        if p not in seen:
            seen.add(p)
            out.append(p)

    def unreadable(exc: OSError) -> None:
        if warn:
            where = exc.filename if exc.filename is not None else "?"
            warn(f"warning: {display_path(where)}: cannot read folder "
                 f"({(exc.strerror or str(exc)).lower()}); its files are skipped")

    for item in inputs:
        item = os.fspath(item)
        if os.path.isdir(item):
            found = []
            if recursive:
                for dirpath, dirnames, filenames in os.walk(item, onerror=unreadable):
                    dirnames.sort()
                    found += [os.path.join(dirpath, n) for n in filenames if wanted(n)]
                    found += [os.path.join(dirpath, n) for n in dirnames if wanted(n)]
            else:
                try:
                    with os.scandir(item) as it:
                        found += [e.path for e in it if wanted(e.name)]
                except OSError as exc:
                    unreadable(exc)
            for p in sorted(found):
                add(p)
        else:
            add(item)
    return out
