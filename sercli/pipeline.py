"""From paths to predictions: the library behind `sercli classify`.

Files are decoded and turned into features in parallel (joblib, results in input order);
the model runs in the main process on batches of windows. A recording longer than the window
is cut into overlapping windows, each labelled, and the file's scores are the mean over its
non-silent windows. Recordings longer than LONG_FILE_S are streamed window by window in the
main process, so memory stays bounded whatever their length.
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np

from .audio import AudioInfo, audio_info, iter_blocks, load_audio
from .constants import (DEFAULT_WINDOW_S, MIN_DURATION_S, SAMPLE_RATE, SILENCE_DBFS,
                        WINDOW_OVERLAP)
from .errors import AudioError, ModelError, SercliError

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


def features_for(y: np.ndarray, needs: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Only the features a model needs, from one power spectrogram."""
    from .dataset import CNN_MELS
    from .features import (mel_filterbank, mfcc_from_log_mel, power_spectrogram, power_to_db,
                           summary_vector)
    out: dict[str, np.ndarray] = {}
    P = power_spectrogram(y)
    if "logmel" in needs:
        out["logmel"] = power_to_db(mel_filterbank(n_mels=CNN_MELS) @ P)
    if "paper_mel" in needs or "paper_mfcc" in needs:
        mel128 = power_to_db(mel_filterbank(n_mels=128) @ P)
        out["paper_mel"] = mel128.mean(axis=1)
        out["paper_mfcc"] = mfcc_from_log_mel(mel128).mean(axis=1)
    if "summary" in needs:
        out["summary"] = summary_vector(y)
    return out


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
        yield _window(y, 0.0, len(y) / SAMPLE_RATE, needs)
        return
    win = int(round(window_s * SAMPLE_RATE))
    _, blocks = iter_blocks(path, block_seconds=max(30.0, 2 * window_s))
    buf = np.zeros(0, np.float32)
    buf_start = 0          # sample index of buf[0]
    exhausted = False
    for i, s in enumerate(starts):
        a = int(round(s * SAMPLE_RATE))
        while not exhausted and buf_start + len(buf) < a + win:
            try:
                buf = np.concatenate([buf, next(blocks)])
            except StopIteration:
                exhausted = True
        seg = buf[a - buf_start:a - buf_start + win]
        if seg.size == 0:
            break
        yield _window(seg, a / SAMPLE_RATE, (a + seg.size) / SAMPLE_RATE, needs)
        nxt = int(round(starts[i + 1] * SAMPLE_RATE)) if i + 1 < len(starts) else a + win
        drop = max(0, min(nxt - buf_start, len(buf)))
        buf, buf_start = buf[drop:], buf_start + drop


def _window(y: np.ndarray, start: float, end: float, needs) -> Window:
    if dbfs(y) < SILENCE_DBFS:
        return Window(round(start, 3), round(end, 3), True, None)
    return Window(round(start, 3), round(end, 3), False, features_for(y, needs))


@dataclass
class Analysed:
    """A worker's answer for one file: header facts and window features, or an error."""
    path: str
    info: AudioInfo | None = None
    windows: list[Window] | None = None
    stream: bool = False         # too long for a worker: the main process streams it
    error: str | None = None


def analyse_file(path: str, needs: tuple[str, ...], window_s: float, overlap: float,
                 debug: bool = False) -> Analysed:
    """Decode one file and compute its window features (runs in a joblib worker)."""
    try:
        info = audio_info(path)
        if info.frames == 0:
            return Analysed(path, info, error=f"{path}: no audio samples (empty audio data)")
        if info.duration_s < MIN_DURATION_S:
            return Analysed(path, info, error=f"{path}: too short: {info.duration_s:.3f} s "
                                              f"(minimum {MIN_DURATION_S} s)")
        if info.duration_s > LONG_FILE_S:
            return Analysed(path, info, stream=True)
        return Analysed(path, info, windows=list(iter_windows(path, info, needs, window_s=window_s,
                                                              overlap=overlap)))
    except SercliError as exc:
        return Analysed(path, error=str(exc))
    except (MemoryError, RecursionError):
        raise
    except Exception as exc:  # an unexpected decoder failure must not stop the batch
        if debug:
            raise
        return Analysed(path, error=f"{path}: {type(exc).__name__}: {' '.join(str(exc).split())}")


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
                          error=f"{a.path}: silent: no window louder than {SILENCE_DBFS:.0f} dBFS",
                          segments=segs if with_segments else None, **base)
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


def resolve_model(model="cnn", *, warn: Callable[[str], None] | None = None):
    """Load a model by name, path or object; the bundled CNN falls back to the SVM with a warning."""
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


def classify(paths: Iterable[str], *, model="cnn", jobs: int | None = None,
             window_s: float = DEFAULT_WINDOW_S, overlap: float = WINDOW_OVERLAP,
             segments: bool = False, top_k: int | None = None, debug: bool = False,
             warn: Callable[[str], None] | None = None,
             on_result: Callable[[ClipResult], None] | None = None) -> Iterator[ClipResult]:
    """Classify audio files; yields one ClipResult per path, in input order.

    `model` is a bundled name (cnn, seed-cnn, svm), a model file path, or a loaded Model.
    Bad files give a result with `error` set; nothing is raised for them.
    """
    from joblib import Parallel, delayed
    m = resolve_model(model, warn=warn)
    paths = [os.fspath(p) for p in paths]
    jobs = default_jobs() if not jobs or jobs < 1 else jobs
    jobs = min(jobs, max(1, len(paths)))
    if window_s <= 0:
        raise SercliError(f"window must be positive, got {window_s}")
    needs = m.needs
    work = (delayed(analyse_file)(p, needs, window_s, overlap, debug) for p in paths)
    if jobs == 1:
        analysed = (analyse_file(p, needs, window_s, overlap, debug) for p in paths)
    else:
        analysed = Parallel(n_jobs=jobs, return_as="generator", batch_size=4,
                            pre_dispatch="4*n_jobs")(work)

    pending: list[tuple[Analysed, list[Window]]] = []   # errors ride along to keep input order

    def flush() -> Iterator[ClipResult]:
        feats, where = [], []
        for fi, (a, wins) in enumerate(pending):
            for wi, w in enumerate(wins):
                if w.feats is not None:
                    feats.append(w.feats)
                    where.append((fi, wi))
        probs = m.predict_proba(feats)
        per_file: list[dict[int, np.ndarray]] = [{} for _ in pending]
        for (fi, wi), p in zip(where, probs):
            per_file[fi][wi] = p
        done = list(zip(pending, per_file))
        pending.clear()
        for (a, wins), pf in done:
            yield _error_result(m.name, a) if a.error else _result(m, a, wins, pf, top_k, segments)

    n_windows = 0
    for a in analysed:
        if a.error is None and a.stream:
            yield from flush()
            n_windows = 0
            yield _stream_result(m, a, needs, window_s, overlap, top_k, segments)
            continue
        pending.append((a, a.windows or []))
        n_windows += len(a.windows or [])
        if n_windows >= BATCH_WINDOWS:
            yield from flush()
            n_windows = 0
    yield from flush()


def _stream_result(m, a: Analysed, needs, window_s, overlap, top_k, segments) -> ClipResult:
    """A long recording: windows streamed and scored in batches; only scores are kept."""
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
    except SercliError as exc:
        return _error_result(m.name, Analysed(a.path, a.info, error=str(exc)))
    return _result(m, a, wins, probs, top_k, segments)


def classify_file(path: str | os.PathLike, *, model="cnn", **kwargs) -> ClipResult:
    """Classify one file; see `classify`."""
    return next(classify([os.fspath(path)], model=model, jobs=1, **kwargs))


def collect_paths(inputs: Iterable[str], *, recursive: bool = True,
                  extensions: Iterable[str] | None = None) -> list[str]:
    """Expand files and folders into a deterministic list of paths, each once.

    Folders are walked (sorted; symlinked folders are not followed, so loops cannot hang);
    inside them, entries whose extension is an audio extension are kept, including folders or
    broken links named like audio, which then get an error row. Paths given explicitly are kept
    whatever their extension.
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

    for item in inputs:
        item = os.fspath(item)
        if os.path.isdir(item) and not os.path.islink(item.rstrip("/")) or os.path.isdir(item) and item.endswith("/"):
            found = []
            if recursive:
                for dirpath, dirnames, filenames in os.walk(item):
                    dirnames.sort()
                    found += [os.path.join(dirpath, n) for n in filenames if wanted(n)]
                    found += [os.path.join(dirpath, n) for n in dirnames if wanted(n)]
            else:
                with os.scandir(item) as it:
                    found += [e.path for e in it if wanted(e.name)]
            for p in sorted(found):
                add(p)
        else:
            add(item)
    return out
