"""The model on batches of windows: ClipResult, classify() and classify_file().

Every way a file's windows reach the model (files batched together, a long recording streamed
in slices, all files of a run normalised in groups) goes through one gather-predict-scatter
step (_score): the voiced windows of some files go to the model in one call, and each file gets
its windows' probabilities back and becomes one ClipResult.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Union

import numpy as np

from ..constants import DEFAULT_WINDOW_S, WINDOW_OVERLAP
from ..errors import ModelError, SercliError, display_path
from ..threads import one_blas_thread
from .grouping import group_setup
from .settings import Settings
from .windows import Analysed, Window, file_error, iter_windows, silent_error
from .workers import BACKENDS, StartedAnalysis, analysis, jobs_for

if TYPE_CHECKING:
    from ..models import Model

#: a bundled model's name, a model file's path, or a loaded Model
ModelLike = Union[str, "os.PathLike[str]", "Model"]

#: voiced windows per model call
BATCH_WINDOWS = 32


@dataclass
class Segment:
    """One window of a recording and its scores (`classify(..., segments=True)`).

    Parameters
    ----------
    start_s, end_s : float
        The window's span in the recording, in seconds (rounded to ms).
    label : str or None
        The window's most probable label; None for a silent window.
    confidence : float or None
        That label's probability.
    scores : dict of str to float, or None
        Every label's probability (rounded to 6 decimals); None for a silent window.
    silent : bool
        The window is silent and was not scored.
    """

    start_s: float
    end_s: float
    label: str | None
    confidence: float | None
    scores: dict[str, float] | None
    silent: bool = False


@dataclass
class ClipResult:
    """One input file's prediction, or the reason there is none (`error`).

    Parameters
    ----------
    path : str
        The file, as given.
    label : str or None
        The most probable emotion (of the mean over the file's non-silent windows); None when
        the file has an error.
    confidence : float or None
        That label's probability.
    scores : dict of str to float, or None
        Every label's probability, rounded to 6 decimals.
    duration_s : float or None
        The recording's length in seconds (from its header), when it could be read.
    sample_rate : int or None
        The file's sample rate in Hz.
    channels : int or None
        The file's number of channels (they are mixed to mono).
    model : str
        The model's name.
    error : str or None
        One line naming the file and why it has no label (undecodable, too short, silent...).
    top_k : list of dict or None
        The k most probable labels as {"label", "score"}, best first (`top_k=k`).
    segments : list of Segment or None
        Every window's scores (`segments=True`).
    """

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


def resolve_model(model: ModelLike = "whisper-tiny", *, warn: Callable[[str], None] | None = None) -> Model:
    """Load a model by name, path or object; the default model falls back to the SVM with a warning."""
    from ..models import DEFAULT_MODEL, FALLBACK_MODEL, Model, load_model

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


#: predict(window features, index in `files` of the file each window comes from) -> one row of
#: probabilities (n_labels,) per window
Predict = Callable[[list[dict], list[int]], Sequence[np.ndarray]]


def _predict_windows(files: Sequence[tuple[Analysed, list[Window]]], predict: Predict) -> list[dict[int, np.ndarray]]:
    """Gather the voiced windows of `files` (a file with an error has none), predict them in one
    call, and scatter the rows back: per file, {window index: probabilities (n_labels,)}."""
    feats, where = [], []
    for fi, (a, wins) in enumerate(files):
        if a.error:
            continue
        for wi, w in enumerate(wins):
            if w.feats is not None:
                feats.append(w.feats)
                where.append((fi, wi))
    probs = predict(feats, [fi for fi, _ in where])
    per_file: list[dict[int, np.ndarray]] = [{} for _ in files]
    for (fi, wi), p in zip(where, probs):
        per_file[fi][wi] = p
    return per_file


def _score(m: Model, files: Sequence[tuple[Analysed, list[Window]]], s: Settings, predict: Predict) -> list[ClipResult]:
    """One ClipResult per file of `files`, in order: the one gather-predict-scatter step."""
    per_file = _predict_windows(files, predict)
    return [
        _error_result(m.name, a) if a.error else _result(m, a, wins, pf, s) for (a, wins), pf in zip(files, per_file)
    ]


def _round_scores(labels, p) -> dict[str, float]:
    return {lab: round(float(v), 6) for lab, v in zip(labels, p)}


def _result(model: Model, a: Analysed, wins: list[Window], probs: dict[int, np.ndarray], s: Settings) -> ClipResult:
    """A file's result from its windows' probabilities (`probs`: window index -> (n_labels,),
    absent for a silent window): the mean over the voiced windows."""
    info = a.info
    segs, voiced = [], []
    for i, w in enumerate(wins):
        p = probs.get(i)
        if p is None:
            segs.append(Segment(w.start_s, w.end_s, None, None, None, True))
        else:
            voiced.append(p)
            k = int(np.argmax(p))
            segs.append(
                Segment(w.start_s, w.end_s, model.labels[k], round(float(p[k]), 6), _round_scores(model.labels, p))
            )
    base = dict(
        path=a.path,
        duration_s=round(info.duration_s, 3),
        sample_rate=info.sample_rate,
        channels=info.channels,
        model=model.name,
    )
    if not voiced:
        return ClipResult(
            label=None,
            confidence=None,
            scores=None,
            error=silent_error(a.path),
            segments=segs if s.segments else None,
            **base,
        )
    if not all(np.isfinite(p).all() for p in voiced):
        # never NaN in a report (JSON has no NaN): say so instead
        return ClipResult(
            label=None,
            confidence=None,
            scores=None,
            error=f"{display_path(a.path)}: the model gave non-finite scores",
            **base,
        )
    mean = np.mean(voiced, axis=0)
    k = int(np.argmax(mean))
    top = None
    if s.top_k:
        order = np.argsort(-mean, kind="stable")[: s.top_k]
        top = [{"label": model.labels[i], "score": round(float(mean[i]), 6)} for i in order]
    return ClipResult(
        label=model.labels[k],
        confidence=round(float(mean[k]), 6),
        scores=_round_scores(model.labels, mean),
        top_k=top,
        segments=segs if s.segments else None,
        **base,
    )


def _error_result(model_name: str, a: Analysed) -> ClipResult:
    info = a.info
    return ClipResult(
        path=a.path,
        label=None,
        confidence=None,
        scores=None,
        duration_s=round(info.duration_s, 3) if info else None,
        sample_rate=info.sample_rate if info else None,
        channels=info.channels if info else None,
        model=model_name,
        error=a.error,
    )


def classify(
    paths: Iterable[str | os.PathLike],
    *,
    model: ModelLike = "whisper-tiny",
    jobs: int | None = None,
    window_s: float = DEFAULT_WINDOW_S,
    overlap: float = WINDOW_OVERLAP,
    segments: bool = False,
    top_k: int | None = None,
    debug: bool = False,
    warn: Callable[[str], None] | None = None,
    backend: str = "local",
    scheduler: str | None = None,
    normalize_by: str | None = None,
    speakers: Mapping[str, str] | None = None,
    started: StartedAnalysis | None = None,
) -> Iterator[ClipResult]:
    """Classify audio files; yields one ClipResult per path, in input order.

    Bad files give a result with `error` set; nothing is raised for them.

    Parameters
    ----------
    paths : iterable of str or os.PathLike
        The audio files (folders are not walked here: see discovery.collect_paths).
    model : str, os.PathLike or Model
        A bundled model's name (whisper-tiny, cnn, cnn-spk, cnn-spk-ens, seed-cnn, svm...), a
        model file's path, or a loaded Model. The default model falls back to the SVM, with a
        warning, when its weights cannot be loaded.
    jobs : int or None
        Local worker processes for decoding and features (default: all cores, never more
        than files; 1 runs everything in this process).
    window_s : float
        Window length in seconds: a recording longer than 1.25 windows is cut into windows,
        each scored, and the file's scores are the mean over its non-silent windows.
    overlap : float
        Fraction of a window that the next one overlaps.
    segments : bool
        Also give every window's scores (ClipResult.segments).
    top_k : int or None
        Also give the k most probable labels (ClipResult.top_k).
    debug : bool
        Raise a file's unexpected error (with its traceback) instead of giving it an error row.
    warn : callable or None
        Called with each warning's line (fallback model, small groups, ...).
    backend : {"local", "dask"}
        Where decoding and features run. "dask" uses an existing dask.distributed cluster
        through joblib's Dask backend (`scheduler` is its address, default
        $DASK_SCHEDULER_ADDRESS; all the cluster's threads are used and `jobs` does not apply).
        The paths must be readable at the same place on the workers. The model still runs
        here, on the same batches, so the results are those of a local run (bit for bit when
        the workers' BLAS runs one thread, as dask's nanny sets it and as sercli's local
        workers run).
    scheduler : str or None
        The dask scheduler's address (backend="dask").
    normalize_by : {None, "none", "folder", "speaker"}
        Normalise the features over each group of files (see grouping.group_keys) before the
        model sees them, in two passes: the features of every file first, then each group's
        normalised and scored; results are still yielded in input order, one per path. Only
        SVMs and group-trained models support it (SercliError otherwise). See sercli.normalize.
    speakers : mapping of str to str, or None
        Each path's speaker (e.g. from a manifest), for normalize_by="speaker".
    started : StartedAnalysis or None
        workers.start_analysis() of the same paths and settings, begun before the model was
        loaded; used when it holds the features the model needs, else extraction starts again.

    Yields
    ------
    ClipResult
        One per path, in input order.
    """
    try:
        if backend not in BACKENDS:
            raise SercliError(f"unknown backend {backend!r} (choose {' or '.join(BACKENDS)})")
        m = resolve_model(model, warn=warn)
        paths = [os.fspath(p) for p in paths]
        jobs = jobs_for(jobs, len(paths))
        if window_s <= 0:
            raise SercliError(f"window must be positive, got {window_s}")
        keys = group_setup(m, paths, normalize_by, speakers, warn)
    except BaseException:
        if started is not None:
            started.close()
        raise
    s = Settings(needs=tuple(m.needs), window_s=window_s, overlap=overlap, debug=debug, top_k=top_k, segments=segments)
    client = None
    # The model runs here on one thread, and each worker's BLAS gets one thread (dask's nanny
    # sets that too): no oversubscription, and the same bits whatever --jobs or the backend
    # (a BLAS on more threads sums in another order).
    cap = _TorchThreads(1)
    if started is not None:
        if backend == "local" and started.serves(paths, jobs, s):
            analysed = started.results
        else:  # not what this call needs: extract again
            started.close()
            started = None
    if started is None:
        analysed, client = analysis(paths, s, jobs, backend, scheduler, warn)

    def predict(feats: list[dict], owners: list[int]) -> np.ndarray:
        return m.predict_proba(feats)

    pending: list[tuple[Analysed, list[Window]]] = []  # errors ride along to keep input order

    def flush() -> Iterator[ClipResult]:
        with cap:
            done = _score(m, pending, s, predict)
        pending.clear()
        yield from done

    n_windows = 0
    try:
        if keys is not None:
            yield from _classify_grouped(m, analysed, keys, s, warn)
            return
        for a in analysed:
            if a.error is None and a.stream:
                yield from flush()
                n_windows = 0
                with cap, one_blas_thread():
                    r = _stream_result(m, a, s, predict)
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


def _stream_result(m: Model, a: Analysed, s: Settings, predict: Predict) -> ClipResult:
    """A long recording: windows streamed and scored in slices of BATCH_WINDOWS voiced windows;
    only their scores are kept.

    Runs in the main process, so a failure of this one file becomes its error row instead of
    ending the batch (as analyse_file does in the workers).
    """
    wins: list[Window] = []
    probs: dict[int, np.ndarray] = {}
    done = 0  # windows before this index are scored and hold no features any more

    def score_slice() -> None:
        nonlocal done
        (part,) = _predict_windows([(a, wins[done:])], predict)
        probs.update({done + i: p for i, p in part.items()})
        wins[done:] = [Window(w.start_s, w.end_s, w.silent, None) for w in wins[done:]]
        done = len(wins)

    try:
        voiced = 0
        for w in iter_windows(a.path, a.info, s.needs, window_s=s.window_s, overlap=s.overlap):
            wins.append(w)
            voiced += w.feats is not None
            if voiced >= BATCH_WINDOWS:
                score_slice()
                voiced = 0
        score_slice()
    except Exception as exc:
        return _error_result(m.name, Analysed(a.path, a.info, error=file_error(a.path, exc, s.debug)))
    return _result(m, a, wins, probs, s)


def _stream_windows(a: Analysed, s: Settings) -> Analysed:
    """A long recording's windows with their features, streamed here (the grouped mode keeps
    them); a failure becomes the file's error."""
    try:
        with one_blas_thread():
            wins = list(iter_windows(a.path, a.info, s.needs, window_s=s.window_s, overlap=s.overlap))
    except Exception as exc:
        return Analysed(a.path, a.info, error=file_error(a.path, exc, s.debug))
    return Analysed(a.path, a.info, windows=wins)


def _classify_grouped(
    m: Model, analysed: Iterable[Analysed], keys: list[tuple], s: Settings, warn: Callable[[str], None] | None
) -> Iterator[ClipResult]:
    """Group normalisation in two passes: every file's window features first (the workers'
    answers arrive in input order), then all windows of each group normalised together and
    scored; one result per file, in input order. What is held: a summary vector per window,
    and for a CNN its log-mel as float16 (about 50 kB per 4 s window; the training features
    are float16 too)."""
    from ..normalize import MIN_GROUP_CLIPS

    done: list[Analysed] = []
    for a in analysed:
        a = _stream_windows(a, s) if a.error is None and a.stream else a
        for w in a.windows or []:
            if w.feats is not None and "logmel" in w.feats:
                w.feats["logmel"] = w.feats["logmel"].astype(np.float16)
        done.append(a)
    clips_per_group: Counter = Counter()
    for a, key in zip(done, keys):
        if not a.error:
            clips_per_group[key] += any(w.feats is not None for w in a.windows or [])
    small = [n for n in clips_per_group.values() if 0 < n < MIN_GROUP_CLIPS]
    if warn and small:
        warn(
            f"warning: {len(small)} of {len(clips_per_group)} groups have fewer than "
            f"{MIN_GROUP_CLIPS} clips (smallest: {min(small)}); group normalisation works best "
            f"with >= {MIN_GROUP_CLIPS} clips of mixed emotions per group: a small group's "
            "statistics lean on the model's training statistics"
        )

    def predict(feats: list[dict], owners: list[int]) -> np.ndarray:
        return m.predict_proba_grouped(feats, [keys[i] for i in owners])

    yield from _score(m, [(a, a.windows or []) for a in done], s, predict)


def classify_file(
    path: str | os.PathLike,
    *,
    model: ModelLike = "whisper-tiny",
    window_s: float = DEFAULT_WINDOW_S,
    overlap: float = WINDOW_OVERLAP,
    segments: bool = False,
    top_k: int | None = None,
    debug: bool = False,
    warn: Callable[[str], None] | None = None,
    backend: str = "local",
    scheduler: str | None = None,
    normalize_by: str | None = None,
    speakers: Mapping[str, str] | None = None,
) -> ClipResult:
    """Classify one file, in this process; see `classify`.

    Parameters
    ----------
    path : str or os.PathLike
        The audio file.
    model : str, os.PathLike or Model
        A bundled model's name, a model file's path, or a loaded Model.
    window_s, overlap, segments, top_k, debug, warn, backend, scheduler, normalize_by, speakers
        As for `classify`.

    Returns
    -------
    ClipResult
        The file's prediction, or its `error`.
    """
    return next(
        classify(
            [os.fspath(path)],
            model=model,
            jobs=1,
            window_s=window_s,
            overlap=overlap,
            segments=segments,
            top_k=top_k,
            debug=debug,
            warn=warn,
            backend=backend,
            scheduler=scheduler,
            normalize_by=normalize_by,
            speakers=speakers,
        )
    )
