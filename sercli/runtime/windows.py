"""One file: header facts, decoding, overlapping windows and their features.

analyse_file is what a worker runs for each file; a recording longer than LONG_FILE_S is not
held in a worker but streamed window by window (iter_windows) in the main process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..audio import AudioInfo, audio_info, iter_blocks, load_audio, why_silent
from ..constants import DEFAULT_WINDOW_S, MIN_DURATION_S, SAMPLE_RATE, WINDOW_OVERLAP
from ..errors import AudioError, SercliError, display_path
from ..silence import REASON as SILENT_REASON
from ..silence import is_silent
from ..threads import one_blas_thread

LONG_FILE_S = 600.0  # longer files are streamed in the main process instead of a worker


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
    """One window of a recording: its span, and its features unless it is silent (`feats` maps a
    feature name to its array, e.g. "logmel" (n_mels, frames), "summary" (dims,))."""

    start_s: float
    end_s: float
    silent: bool
    feats: dict[str, np.ndarray] | None


def iter_windows(
    path: str, info: AudioInfo, needs: tuple[str, ...], *, window_s: float, overlap: float
) -> Iterator[Window]:
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
    buf_start = 0  # sample index of buf[0]
    exhausted = False
    try:
        for i, s in enumerate(starts):
            a = int(round(s * SAMPLE_RATE))
            while not exhausted and buf_start + len(buf) < a + win:
                try:
                    buf = np.concatenate([buf, next(blocks)])
                except StopIteration:
                    exhausted = True
            seg = buf[a - buf_start : a - buf_start + win]
            if seg.size == 0:
                if i == 0:
                    _check_decoded(path, buf_start + len(buf), duration)
                break
            yield _window(seg, a / SAMPLE_RATE, (a + seg.size) / SAMPLE_RATE, needs)
            nxt = int(round(starts[i + 1] * SAMPLE_RATE)) if i + 1 < len(starts) else a + win
            drop = max(0, min(nxt - buf_start, len(buf)))
            buf, buf_start = buf[drop:], buf_start + drop
    finally:
        blocks.close()  # closes the file now, also when the consumer stops early


def _check_decoded(path: str, n: int, header_s: float) -> None:
    """A header can promise more than the file holds (truncated or corrupt data)."""
    if n == 0:
        raise AudioError(f"{display_path(path)}: no audio samples could be decoded (header says {header_s:.3f} s)")
    if n < MIN_DURATION_S * SAMPLE_RATE:
        raise AudioError(
            f"{display_path(path)}: too short: {n / SAMPLE_RATE:.3f} s decoded (minimum {MIN_DURATION_S} s)"
        )


def _window(y: np.ndarray, start: float, end: float, needs) -> Window:
    from ..dataset import clip_features
    from ..features import remove_dc

    y = remove_dc(y)  # a DC offset is not sound: it must not make silence look loud
    if is_silent(y):
        return Window(round(start, 3), round(end, 3), True, None)
    return Window(round(start, 3), round(end, 3), False, clip_features(y, needs) if needs else {})


@dataclass
class Analysed:
    """A worker's answer for one file: header facts and window features, or an error."""

    path: str
    info: AudioInfo | None = None
    windows: list[Window] | None = None
    stream: bool = False  # too long for a worker: the main process streams it
    error: str | None = None


def refusal(path: str, window_s: float = DEFAULT_WINDOW_S, overlap: float = WINDOW_OVERLAP) -> str | None:
    """The error row `classify` would give `path` for its audio (undecodable, too short,
    silent: the same rule, silence.is_silent on each window), or None when it would classify
    it. `evaluate` uses it, so that the two commands refuse the same clips."""
    with one_blas_thread():
        a = analyse_file(path, (), window_s, overlap)
        if a.error:
            return a.error
        try:
            wins = a.windows if not a.stream else iter_windows(path, a.info, (), window_s=window_s, overlap=overlap)
            if all(w.silent for w in wins):
                return silent_error(path)
        except Exception as exc:
            return file_error(path, exc, False)
    return None


def analyse_file(
    path: str, needs: tuple[str, ...], window_s: float, overlap: float, debug: bool = False, cwd: str | None = None
) -> Analysed:
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
            return Analysed(
                path, info, error=f"{shown}: too short: {info.duration_s:.3f} s (minimum {MIN_DURATION_S} s)"
            )
        if info.duration_s > LONG_FILE_S:
            return Analysed(path, info, stream=True)
        return Analysed(path, info, windows=list(iter_windows(src, info, needs, window_s=window_s, overlap=overlap)))
    except Exception as exc:  # no failure of one file may stop the batch
        return Analysed(path, info, error=file_error(path, exc, debug, src))


def silent_error(path: str) -> str:
    """The error row of a file whose every window is silent, with the reason when one is known."""
    return f"{display_path(path)}: " + (why_silent(path) or f"silent: {SILENT_REASON}")


def file_error(path: str, exc: Exception, debug: bool, src: str | None = None) -> str:
    """The one-line error row of a file that failed; under --debug an unexpected error is
    raised instead. `src` is the path the file was opened as, when it differs from `path`."""
    if isinstance(exc, SercliError):
        msg = " ".join(str(exc).split())
        opened = display_path(src) + ": " if src else ""
        if src and src != path and msg.startswith(opened):
            msg = f"{display_path(path)}: {msg[len(opened) :]}"
        return msg
    if isinstance(exc, MemoryError):
        # one huge file (say, many channels at a high rate) must not stop the batch
        return f"{display_path(path)}: out of memory while decoding (try a shorter --window)"
    if debug:
        raise exc
    return f"{display_path(path)}: {type(exc).__name__}: {' '.join(str(exc).split())}"
