"""One joblib loop over clips, shared by feature extraction and the encoder pass over a corpus."""

from __future__ import annotations

import sys

from .corpora import Clip


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
