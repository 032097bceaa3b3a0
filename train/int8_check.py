"""int8 dynamic quantisation of the tiny.en encoder's linear layers, checked on the val speakers:
the bundled whisper-tiny head scored on vectors from the float32 and the int8 encoder, with the
encoder time of each (one thread).

    python -m train.int8_check       # corpora in ~/corpora
"""

import os
import time
import warnings

import torch

from sercli.audio import load_audio
from sercli.corpora import SIX_CLASSES, scan
from sercli.encoded import pool_frames
from sercli.features import remove_dc, whisper_log_mel
from sercli.metrics import evaluate
from sercli.models import encoder_path, load_model, pooled_stats
from sercli.training.splits import make_splits
from sercli.whisper import load_encoder

warnings.filterwarnings("ignore")
torch.set_num_threads(1)

labels = list(SIX_CLASSES)
clips = [c for c in scan(os.path.expanduser("~/corpora")).clips if c.label in labels]
val = make_splits(clips, labels)["val"]
enc, _ = load_encoder(encoder_path("whisper-tiny.en"))
q = torch.ao.quantization.quantize_dynamic(enc, {torch.nn.Linear}, dtype=torch.qint8)
m = load_model("whisper-tiny")
V = {"fp32": [], "int8": []}
t = {"fp32": 0.0, "int8": 0.0}
for c in val:
    y, _ = load_audio(c.path)
    mel = torch.from_numpy(whisper_log_mel(remove_dc(y)))[None]
    for name, e in (("fp32", enc), ("int8", q)):
        t0 = time.time()
        with torch.inference_mode():
            hs = e.hidden_states(mel, (2, 3, 4))
            V[name].append(pooled_stats(pool_frames(torch.stack([h[0] for h in hs])).to(torch.float16).numpy()))
        t[name] += time.time() - t0
for name in V:
    p = m.impl.predict_proba(V[name])
    r = evaluate([c.label for c in val], [labels[i] for i in p.argmax(1)], labels)
    print(name, "val UAR", round(r["uar"], 4), "encoder s", round(t[name], 1), flush=True)
