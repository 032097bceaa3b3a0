"""The floor: decode and resample every file to 16 kHz mono, in parallel, and nothing else.

The same decoding as sercli (libsndfile through soundfile, channels averaged, soxr "HQ"
resampling to 16 kHz) in joblib workers (loky, as sercli), with the given number of
processes. Only the sample count comes back from a worker. Prints one JSON line:
{"n": files, "seconds": parallel loop time, "setup_s": imports}.

    python bench/floor.py LIST_FILE N_JOBS
"""

import json
import sys
import time

t0 = time.perf_counter()
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import soxr  # noqa: E402
from joblib import Parallel, delayed  # noqa: E402


def decode(path: str) -> int:
    x, sr = sf.read(path, dtype="float32", always_2d=True)
    y = x.mean(axis=1, dtype=np.float32)
    if sr != 16000:
        y = soxr.resample(y, sr, 16000, quality="HQ")
    return len(y)


def main(list_file: str, jobs: int) -> None:
    with open(list_file) as f:
        paths = [line.rstrip("\n") for line in f if line.strip()]
    jobs = max(1, min(jobs, len(paths)))
    t1 = time.perf_counter()
    if jobs == 1:
        n = [decode(p) for p in paths]
    else:
        n = list(Parallel(n_jobs=jobs, return_as="generator")(delayed(decode)(p) for p in paths))
    t2 = time.perf_counter()
    print(json.dumps({"n": len(n), "samples": int(sum(n)), "seconds": t2 - t1, "setup_s": t1 - t0}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
