"""The encoder at lower precision, checked on the val speakers: a bundled head scored on vectors
from the float32 encoder, bfloat16 autocast and int8 dynamic quantisation of the linear layers,
with the encoder time of each (one thread) and the largest change of the pooled vectors.

    python -m train.precision_check --model whisper-tiny     # corpora in ~/corpora

bfloat16 is fast only on CPUs with native bf16 (AVX512-BF16 or AMX); int8 needs fbgemm (x86).
"""

import argparse
import os
import time
import warnings

import numpy as np
import torch

from sercli.audio import load_audio
from sercli.corpora import SIX_CLASSES, scan
from sercli.encoded import pool_frames
from sercli.features import remove_dc, whisper_log_mel
from sercli.metrics import evaluate
from sercli.models import encoder_path, load_model, pooled_stats
from sercli.training.splits import make_splits
from sercli.whisper import load_encoder


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="whisper-tiny")
    ap.add_argument("--data", default=os.path.expanduser("~/corpora"))
    ap.add_argument("--split", default="val")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    labels = list(SIX_CLASSES)
    clips = [c for c in scan(args.data).clips if c.label in labels]
    part = make_splits(clips, labels)[args.split]
    m = load_model(args.model)
    layers = tuple(m.impl.dims.layers)
    enc, _ = load_encoder(encoder_path(m.impl.dims.encoder))
    q = torch.ao.quantization.quantize_dynamic(enc, {torch.nn.Linear}, dtype=torch.qint8)
    runs = {"fp32": (enc, False), "bf16": (enc, True), "int8": (q, False)}
    V = {k: [] for k in runs}
    t = dict.fromkeys(runs, 0.0)
    for c in part:
        y, _ = load_audio(c.path)
        mel = torch.from_numpy(whisper_log_mel(remove_dc(y)))[None]
        for name, (e, bf16) in runs.items():
            t0 = time.time()
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                hs = e.hidden_states(mel, layers)
                h = torch.stack([x[0] for x in hs]).float()
                V[name].append(pooled_stats(pool_frames(h).to(torch.float16).numpy()))
            t[name] += time.time() - t0
    ref = np.stack(V["fp32"])
    print(f"{args.model} on {len(part)} {args.split} clips ({m.impl.dims.encoder}, blocks {list(layers)})")
    print("| encoder | UAR | accuracy | encoder seconds | largest change / largest value |")
    print("|---|---|---|---|---|")
    for name in V:
        p = m.impl.predict_proba(V[name])
        r = evaluate([c.label for c in part], [labels[i] for i in p.argmax(1)], labels)
        change = float(np.abs(np.stack(V[name]) - ref).max() / np.abs(ref).max())
        print(f"| {name} | {r['uar']:.4f} | {r['accuracy']:.4f} | {t[name]:.1f} | {change:.4f} |", flush=True)


if __name__ == "__main__":
    main()
