"""One joblib loop over clips, shared by feature extraction and the encoder pass over a corpus."""

from __future__ import annotations

import sys

from .corpora import Clip

#: growth of a worker's memory after its first task that loky takes for a leak (its default: 300 MB)
WORKER_GROWTH_LIMIT = 2 << 30


def allow_worker_growth() -> None:
    """In a loky worker, before its task: let it grow by WORKER_GROWTH_LIMIT before loky takes it
    for leaking. loky replaces a worker, with a raw UserWarning on stderr, once it has grown by
    300 MB after its first task: torch and a Whisper encoder loading in a later task did that, so
    every worker was killed and started again once per run (classify, and the encoder pass of
    train and evaluate). Idempotent."""
    try:
        from joblib.externals.loky import process_executor
    except ImportError:
        return
    if getattr(process_executor, "_MAX_MEMORY_LEAK_SIZE", None) is not None:
        process_executor._MAX_MEMORY_LEAK_SIZE = max(process_executor._MAX_MEMORY_LEAK_SIZE, WORKER_GROWTH_LIMIT)


def per_clip(calls, clips: list[Clip], *, jobs: int, batch_size: int, desc: str, progress: bool):
    """Run joblib `calls` (one per clip, each returning a result or an error line) in parallel;
    (kept clips, their results, error lines), in order."""
    from joblib import Parallel
    from tqdm import tqdm

    it = Parallel(n_jobs=jobs, return_as="generator", batch_size=batch_size)(calls)
    kept, out, failed = [], [], []
    for clip, res in tqdm(
        zip(clips, it), total=len(clips), desc=desc, unit="clip", file=sys.stderr, disable=not progress, mininterval=1.0
    ):
        if isinstance(res, str):
            failed.append(res)
        else:
            kept.append(clip)
            out.append(res)
    return kept, out, failed
