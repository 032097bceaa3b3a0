"""The peer's way, as the seed paper's code does it: one process, one file at a time.

For each path read from the list file (one per line): `librosa.load` at librosa's default rate
(22050 Hz, mono), the time-means of a 128-band log-mel spectrogram and of 20 MFCCs (computed
from that log-mel, so the mel spectrogram is not computed twice), then the seed paper's
dual-branch 1-D CNN (`sercli.models.nets.SeedCNN`, random weights: speed does not depend on them) on
a batch of one. Prints one JSON line: {"n": files, "seconds": loop time, "setup_s": imports}.

    python bench/peer.py LIST_FILE
"""

import json
import sys
import time

t0 = time.perf_counter()
import librosa  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from sercli.models.nets import SeedCNN, SeedCNNDims  # noqa: E402


def main(list_file: str) -> None:
    with open(list_file) as f:
        paths = [line.rstrip("\n") for line in f if line.strip()]
    net = SeedCNN(SeedCNNDims(n_labels=5)).eval()
    t1 = time.perf_counter()
    labels = []
    for p in paths:
        y, sr = librosa.load(p)  # 22050 Hz, mono
        S_db = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_mels=128))
        mel = S_db.mean(axis=1)
        mfcc = librosa.feature.mfcc(S=S_db, n_mfcc=20).mean(axis=1)
        with torch.no_grad():
            logits = net(
                torch.from_numpy(mel[None].astype(np.float32)), torch.from_numpy(mfcc[None].astype(np.float32))
            )
        labels.append(int(logits.argmax()))
    t2 = time.perf_counter()
    print(json.dumps({"n": len(labels), "seconds": t2 - t1, "setup_s": t1 - t0}))


if __name__ == "__main__":
    main(sys.argv[1])
