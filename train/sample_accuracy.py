"""Accuracy and UAR of the bundled models on the real sample of test speakers.

    python -m train.sample_accuracy [SAMPLE_DIR]

Prints the numbers that set the floors of tests/test_real_sample.py.
"""

import sys
from pathlib import Path

from sercli.corpora import scan
from sercli.metrics import evaluate
from sercli.runtime.classify import classify

sample = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared/corpora/sample")
clips = scan(sample).clips
for model, by in (
    ("whisper-tiny", None),
    ("whisper-tiny-spk", "speaker"),
    ("whisper-tiny-spk", None),
    ("cnn", None),
    ("svm", None),
    ("seed-cnn", None),
    ("cnn-spk", "speaker"),
    ("cnn-spk", None),
    ("cnn-spk-ens", "speaker"),
    ("cnn-spk-ens", None),
):
    rows = list(classify([c.path for c in clips], model=model, jobs=2, normalize_by=by))
    labels = list(rows[0].scores)
    pairs = [(c.label, r.label) for c, r in zip(clips, rows) if c.label in labels]
    m = evaluate([t for t, _ in pairs], [p for _, p in pairs], labels)
    print(f"{model}{' --normalize-by ' + by if by else ''}: n={m['n']} accuracy={m['accuracy']:.3f} uar={m['uar']:.3f}")
