"""`sercli evaluate`: split selection, label mapping, skipped and failed clips, outputs, and
metric values on a constructed case computed by hand."""

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

from sercli.cli import cli
from sercli.corpora import SIX_CLASSES, Clip
from sercli.evaluate import evaluate_model, select_split
from sercli.models import Model
from sercli.plots import png_size

from .conftest import speechlike


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("feature-cache")


def run(args):
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def evaluate_json(data, cache, *extra):
    r = run(["evaluate", "--data", str(data), "--format", "json", "--jobs", "1", "--cache", str(cache), *extra])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout), r


# ---------------------------------------------------------------- a case computed by hand


def _duration_rule(self, feats):
    """A deterministic 'model': a 1 s clip is angry, 2 s disgust, 3 s fear (100 frames a second)."""
    out = np.full((len(feats), len(self.labels)), 0.01, np.float32)
    for i, f in enumerate(feats):
        out[i, int(round((f["logmel"].shape[1] - 1) / 100)) - 1] = 0.95
    return out


@pytest.fixture
def case(tmp_path, rng, monkeypatch):
    """Test speakers: cremad 1004 and 1009, ravdess 05, tess YAF; train speaker cremad 1001;
    a label folder (no speaker). Clip label, duration (-> rule's prediction):"""
    import soundfile as sf

    clips = {
        "cremad/1004_DFA_ANG_XX.wav": 1,  # angry -> angry
        "cremad/1004_IEO_ANG_XX.wav": 2,  # angry -> disgust
        "cremad/1004_TIE_SAD_XX.wav": 1,  # sad -> angry
        "ravdess/Actor_05/03-01-05-01-01-01-05.wav": 1,  # angry -> angry
        "ravdess/Actor_05/03-01-07-01-01-01-05.wav": 2,  # disgust -> disgust
        "ravdess/Actor_05/03-01-02-01-01-01-05.wav": 1,  # calm: not a label of the model
        "tess/YAF_w1_ps.wav": 1,  # surprise: not a label of the model
        "tess/YAF_w2_fear.wav": 3,  # fear -> fear
        "cremad/1001_DFA_HAP_XX.wav": 1,  # train speaker: happy -> angry
        "mine/neutral/take 1.wav": 1,  # no speaker: neutral -> angry
    }
    for rel, seconds in clips.items():
        p = tmp_path / "data" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(p, speechlike(rng, seconds), 16000)
    bad = tmp_path / "data" / "cremad" / "1009_DFA_NEU_XX.wav"  # a test speaker's broken file
    bad.write_bytes(b"RIFF1234WAVEjunk")
    monkeypatch.setattr(Model, "predict_proba", _duration_rule)
    return tmp_path / "data"


def test_hand_computed_test_split(case, tmp_path):
    m, r = evaluate_json(case, tmp_path / "cache", "--model", "svm")
    assert m["split"] == "test"  # default: the data has test speakers
    assert m["labels"] == list(SIX_CLASSES) and m["model"] == "svm"
    assert m["n"] == 6
    assert m["skipped"] == {"calm": 1, "surprise": 1} and m["n_skipped"] == 2
    assert m["n_failed"] == 1 and "1009_DFA_NEU_XX.wav" in m["failed"][0]
    assert "1009_DFA_NEU_XX.wav" in r.stderr and "Traceback" not in r.stderr
    assert m["confusion"] == [
        [2, 1, 0, 0, 0, 0],
        [0, 1, 0, 0, 0, 0],
        [0, 0, 1, 0, 0, 0],
        [0] * 6,
        [0] * 6,
        [1, 0, 0, 0, 0, 0],
    ]
    assert m["accuracy"] == pytest.approx(4 / 6)
    # recalls over the classes present: angry 2/3, disgust 1, fear 1, sad 0
    assert m["uar"] == pytest.approx((2 / 3 + 1 + 1 + 0) / 4)
    # F1: angry (p 2/3, r 2/3) 2/3, disgust (p 1/2, r 1) 2/3, fear 1, sad 0
    assert m["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1 + 0) / 4)
    assert m["per_class"]["angry"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3})
    assert m["per_class"]["disgust"]["precision"] == pytest.approx(0.5)
    assert m["per_class"]["happy"]["support"] == 0
    assert m["confusion_normalized"][0] == pytest.approx([2 / 3, 1 / 3, 0, 0, 0, 0], abs=1e-4)
    # cremad: angry->angry, angry->disgust, sad->angry: recalls angry 1/2, sad 0; F1 angry 1/2, sad 0
    assert m["per_corpus"]["cremad"] == pytest.approx({"n": 3, "accuracy": 1 / 3, "uar": 0.25, "macro_f1": 0.25})
    assert m["per_corpus"]["ravdess"] == {"n": 2, "accuracy": 1.0, "uar": 1.0, "macro_f1": 1.0}
    assert m["per_corpus"]["tess"] == {"n": 1, "accuracy": 1.0, "uar": 1.0, "macro_f1": 1.0}
    assert set(m["per_corpus"]) == {"cremad", "ravdess", "tess"}
    assert "predictions" not in m


def test_hand_computed_other_splits(case, tmp_path):
    m, _ = evaluate_json(case, tmp_path / "cache", "--model", "svm", "--split", "all")
    assert m["split"] == "all" and m["n"] == 8  # + the train speaker and the label folder
    assert m["accuracy"] == pytest.approx(4 / 8)
    assert m["per_corpus"]["folder"] == {"n": 1, "accuracy": 0.0, "uar": 0.0, "macro_f1": 0.0}
    assert m["per_corpus"]["cremad"]["n"] == 4
    assert m["skipped"] == {"calm": 1, "surprise": 1} and m["n_failed"] == 1
    m, _ = evaluate_json(case, tmp_path / "cache", "--model", "svm", "--split", "train")
    assert m["n"] == 1 and m["accuracy"] == 0.0 and m["skipped"] == {} and m["n_failed"] == 0
    assert m["confusion"][3] == [1, 0, 0, 0, 0, 0]
    r = CliRunner().invoke(
        cli,
        [
            "evaluate",
            "--data",
            str(case),
            "--model",
            "svm",
            "--split",
            "val",
            "--jobs",
            "1",
            "--cache",
            str(tmp_path / "cache"),
        ],
    )
    assert r.exit_code == 1 and "val speakers" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_library_predictions(case, tmp_path):
    r = evaluate_model(case, "svm", "test", jobs=1, cache_dir=tmp_path / "cache")
    preds = {p["path"].split("/data/")[1]: (p["label"], p["predicted"]) for p in r["predictions"]}
    assert preds["cremad/1004_IEO_ANG_XX.wav"] == ("angry", "disgust")
    assert preds["tess/YAF_w2_fear.wav"] == ("fear", "fear")
    assert len(preds) == r["n"] == 6


# ---------------------------------------------------------------- real models on the tiny corpus


def test_json_keys_with_tiny_cnn(tiny_corpus, tiny_cnn, cache):
    m, _ = evaluate_json(tiny_corpus, cache, "--model", str(tiny_cnn))
    for key in (
        "n",
        "labels",
        "accuracy",
        "uar",
        "macro_f1",
        "per_class",
        "confusion",
        "confusion_normalized",
        "per_corpus",
        "skipped",
        "n_skipped",
        "failed",
        "n_failed",
        "split",
        "model",
        "model_sha256",
    ):
        assert key in m, key
    # default split: test speakers cremad 1004, ravdess 05, tess YAF, savee KL, 6 clips each
    assert m["split"] == "test" and m["n"] == 24 and m["skipped"] == {} and m["failed"] == []
    assert {c: v["n"] for c, v in m["per_corpus"].items()} == {"cremad": 6, "ravdess": 6, "savee": 6, "tess": 6}
    assert np.array(m["confusion"]).sum() == 24 and 0 <= m["uar"] <= 1
    m_all, _ = evaluate_json(tiny_corpus, cache, "--model", str(tiny_cnn), "--split", "all")
    assert m_all["n"] == 72


def test_whole_clip_scores_equal_classify(tiny_corpus, tiny_cnn, cache):
    """Clips up to 5 s: evaluate (cached float16 log-mel, whole clip) == classify (float32)."""
    from sercli.models import load_file
    from sercli.runtime.classify import classify_file

    model = load_file(tiny_cnn)
    r = evaluate_model(tiny_corpus, model, "test", jobs=1, cache_dir=cache)
    assert r["n"] == 24
    for p in r["predictions"]:
        c = classify_file(p["path"], model=model)
        assert c.ok and c.duration_s <= 5
        np.testing.assert_allclose(
            [p["scores"][k] for k in model.labels], [c.scores[k] for k in model.labels], atol=1e-3
        )


def test_bundled_svm_with_out_files(tiny_corpus, cache, tmp_path):
    out = tmp_path / "eval"
    m, r = evaluate_json(tiny_corpus, cache, "--model", "svm", "--out", str(out))
    names = {
        "metrics.json",
        "per_class.csv",
        "per_corpus.csv",
        "confusion.csv",
        "confusion_normalized.csv",
        "predictions.csv",
        "confusion.png",
    }
    assert names <= {p.name for p in out.iterdir()}
    assert json.loads((out / "metrics.json").read_text()) == m
    rows = list(csv.DictReader(open(out / "per_class.csv")))
    assert [x["label"] for x in rows] == list(SIX_CLASSES)
    assert sum(int(x["support"]) for x in rows) == m["n"] == 24
    conf = list(csv.reader(open(out / "confusion.csv")))
    assert conf[0][1:] == list(SIX_CLASSES) and [[int(v) for v in row[1:]] for row in conf[1:]] == m["confusion"]
    preds = list(csv.DictReader(open(out / "predictions.csv")))
    assert len(preds) == 24 and sum(int(p["correct"]) for p in preds) == round(m["accuracy"] * 24)
    w, h = png_size(out / "confusion.png")
    assert w > 300 and h > 300
    assert "wrote 7 files" in r.stderr


def test_table_output(tiny_corpus, cache):
    r = run(["evaluate", "--data", str(tiny_corpus), "--model", "svm", "--jobs", "1", "--cache", str(cache)])
    assert r.exit_code == 0
    for word in ("accuracy", "UAR", "macro-F1", "per class", "per corpus", "ravdess", "disgust"):
        assert word in r.stdout, word
    assert "evaluated svm on 24 clips" in r.stderr


def test_select_split_default():
    test = Clip("a.wav", "cremad", "1004", "angry")
    train = Clip("b.wav", "cremad", "1001", "angry")
    folder = Clip("c.wav", "folder", None, "sad")
    assert select_split([test, train, folder], None) == ([test], "test")
    assert select_split([train, folder], None) == ([train, folder], "all")
    assert select_split([train, folder], "train") == ([train], "train")
    assert select_split([test, train, folder], "all")[0] == [test, train, folder]


def test_errors_are_one_line(tmp_path, tiny_corpus):
    r = CliRunner().invoke(cli, ["evaluate", "--data", str(tiny_corpus), "--model", "nope"])
    assert r.exit_code == 2 and "unknown model" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "empty").mkdir()
    r = CliRunner().invoke(cli, ["evaluate", "--data", str(tmp_path / "empty"), "--model", "svm"])
    assert r.exit_code == 1 and "no labelled clips" in r.stderr
    assert run(["evaluate", "--data", str(tiny_corpus), "--split", "dev"]).exit_code == 2
