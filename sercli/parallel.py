"""One joblib loop over clips, shared by feature extraction and the encoder pass over a corpus."""

from __future__ import annotations

import os
import sys

from .corpora import Clip

#: oneDNN primitives each worker keeps when it runs a bf16 encoder (oneDNN's default: 1024).
#: Every clip length makes new bf16 matrix-product primitives, each with its own buffers: with
#: the default, whisper-tiny's run over bench's 699 clips peaked at 1601 MB in all, with 8 at
#: 1359 MB, for 6 % of its speed.
ONEDNN_PRIMITIVE_CACHE = "8"


def bf16_encoder_in(needs) -> bool:
    """Whether feature keys `needs` include a Whisper encoder run in bf16 (models.encoded_key)."""
    return any(k.startswith("encoder:") and k.endswith(":bf16") for k in needs)


def prepare_worker_environment(*, bf16: bool) -> None:
    """Before worker processes start: what they inherit from this process's environment (oneDNN
    reads it once, at its first use in a process). Only for bf16 encoders: this process inherits
    it too, and the CNNs, whose convolutions run here, rebuilt their primitives for every clip
    length with so small a cache (cnn 135 against 196 clips/s). A value the user set is kept."""
    if bf16:
        os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", ONEDNN_PRIMITIVE_CACHE)


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
