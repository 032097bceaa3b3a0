"""CPU time per clip of each stage, on one thread, warm (after a few clips), interleaved.

For each path of the list file, in turn: the floor's decode + resample to 16 kHz, sercli's
features (`runtime.windows.analyse_file`, as a worker runs it), sercli's model on those windows (as
the main process runs it), and the peer's loop body (bench/peer.py). Interleaving makes the
stages share whatever else the machine is doing, so their ratios hold even on a busy machine.
Prints one JSON line of milliseconds per clip.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python bench/cpu_per_clip.py LIST_FILE MODEL [N]
"""

import json
import sys
import time

import librosa
import numpy as np
import torch

from sercli.audio import load_audio
from sercli.constants import DEFAULT_WINDOW_S, WINDOW_OVERLAP
from sercli.models.nets import SeedCNN, SeedCNNDims
from sercli.runtime.classify import resolve_model
from sercli.runtime.windows import analyse_file


def main(list_file: str, model: str, n: int = 100) -> None:
    with open(list_file) as f:
        paths = [line.rstrip("\n") for line in f if line.strip()]
    paths = paths[:: max(1, len(paths) // n)][:n]
    torch.set_num_threads(1)
    m = resolve_model(model)
    net = SeedCNN(SeedCNNDims(n_labels=5)).eval()

    def peer(p):
        y, sr = librosa.load(p)
        S_db = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_mels=128))
        mel, mfcc = S_db.mean(axis=1), librosa.feature.mfcc(S=S_db, n_mfcc=20).mean(axis=1)
        with torch.no_grad():
            net(torch.from_numpy(mel[None].astype(np.float32)), torch.from_numpy(mfcc[None].astype(np.float32)))

    def features(p):
        return analyse_file(p, m.needs, DEFAULT_WINDOW_S, WINDOW_OVERLAP)

    def model_(a):
        m.predict_proba([w.feats for w in (a.windows or []) if w.feats is not None])

    for p in paths[:3]:  # warm-up: lazy imports, first calls
        model_(features(p)), peer(p), load_audio(p)
    names = ("decode_resample", "sercli_features", "sercli_model", "peer_loop_body")
    total = dict.fromkeys(names, 0.0)
    for p in paths:
        t0 = time.perf_counter()
        load_audio(p)
        t1 = time.perf_counter()
        a = features(p)
        t2 = time.perf_counter()
        model_(a)
        t3 = time.perf_counter()
        peer(p)
        t4 = time.perf_counter()
        for name, dt in zip(names, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            total[name] += dt
    res = {k: round(v / len(paths) * 1e3, 2) for k, v in total.items()}
    res.update(n=len(paths), model=m.name)
    print(json.dumps(res))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *(int(x) for x in sys.argv[3:4]))
