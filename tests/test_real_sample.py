"""The bundled models on real clips of held-out (test) speakers: ../shared/corpora/sample.

The floors sit a few points under what the bundled weights measured on this sample
(`python -m train.sample_accuracy` prints it), so a change to decoding, resampling or
features that degrades the shipped models fails here.
"""

import json

import pytest
from click.testing import CliRunner

from sercli.cli import cli
from sercli.corpora import scan, speaker_split, split_of
from sercli.metrics import evaluate

# train/sample_accuracy.py on the bundled weights measured UAR whisper-tiny 0.816, cnn 0.560,
# svm 0.420, and with --normalize-by speaker whisper-tiny-spk 0.858, cnn-spk 0.620 and cnn-spk-ens
# 0.642 (98 clips of 6 classes, 10 speakers of 6 to 26 clips); the floors sit 0.05 under (a clip
# is ~0.01). seed-cnn has no floor here: it was trained under the paper's random split, which
# includes these speakers.
FLOORS = {
    ("whisper-tiny", "none"): 0.766,
    ("whisper-tiny-spk", "speaker"): 0.808,
    ("cnn", "none"): 0.510,
    ("svm", "none"): 0.370,
    ("cnn-spk", "speaker"): 0.570,
    ("cnn-spk-ens", "speaker"): 0.590,
}


def test_sample_is_test_speakers_only(sample_dir):
    table = speaker_split()
    clips = scan(sample_dir).clips
    assert len(clips) >= 90
    assert {split_of(c, table) for c in clips} == {"test"}


@pytest.mark.parametrize("model,normalize_by", sorted(FLOORS))
def test_bundled_model_accuracy_floor_on_real_sample(model, normalize_by, sample_dir):
    r = CliRunner().invoke(
        cli,
        ["classify", str(sample_dir), "--model", model, "--format", "jsonl", "-q", "--normalize-by", normalize_by],
        catch_exceptions=False,
    )
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    clips = {c.path: c for c in scan(sample_dir).clips}
    assert len(rows) == len(clips) and all(x["error"] is None for x in rows)
    labelled = [(clips[x["path"]].label, x["label"]) for x in rows if clips[x["path"]].label in x["scores"]]
    m = evaluate([t for t, _ in labelled], [p for _, p in labelled], sorted(rows[0]["scores"]))
    assert m["uar"] >= FLOORS[(model, normalize_by)], m
