"""python -m train.reproduce end to end on a tiny synthetic corpus, and the pieces it added: the
leave-one-corpus-out protocol, the linear SVM on the paper's features and the dual RNN."""

import importlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from sercli.corpora import scan, speaker_split, split_of
from sercli.errors import CorpusError
from sercli.models import NumpySVM, load_file, save_svm, save_torch
from sercli.training.recipe import load_recipe
from sercli.training.splits import loco_split, make_splits

from .conftest import REPO


def _module():
    return importlib.import_module("train.reproduce")


def test_reproduce_end_to_end(tiny_corpus, tmp_path):
    out = tmp_path / "results"
    env = {**os.environ, "SERCLI_CACHE": str(tmp_path / "cache")}
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "train.reproduce",
            "--data",
            str(tiny_corpus),
            "--out",
            str(out),
            "--epochs-scale",
            "0.001",
            "--jobs",
            "1",
            "--threads",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=REPO,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    ids = [r["id"] for r in res["runs"]]
    protocols = ["paper", "speaker", "loco:cremad", "loco:ravdess", "loco:savee", "loco:tess"]
    assert ids == (
        [f"{m}/{p}" for m in ("svm", "rnn", "seed-cnn", "cnn") for p in protocols]
        + [f"{m}/{p}" for m in ("svm-spk", "cnn-spk", "cnn-spk3") for p in protocols[1:]]
    )
    assert all(r["status"] == "ok" for r in res["runs"]), [r.get("reason") for r in res["runs"]]
    assert res["paper_table2"] == {"svm": 0.38, "rnn": 0.43, "seed-cnn": 0.62, "human": 0.72}
    by_id = {r["id"]: r for r in res["runs"]}
    for r in res["runs"]:
        card = json.loads((out / r["card"]).read_text())
        assert card["metrics"]["test"]["accuracy"] == r["test"]["accuracy"]  # read, not typed
        assert (out / r["weights"]).is_file()
        assert r["epochs"] in (None, 1)
    assert by_id["svm/paper"]["labels"] == ["angry", "disgust", "fear", "happy", "sad"]
    assert len(by_id["cnn/speaker"]["labels"]) == 6
    # leave one corpus out: the test set is the whole held-out corpus, which never trains
    loco = by_id["rnn/loco:tess"]
    assert loco["data"]["test"]["per_corpus"] == {"tess": 18}
    assert "tess" not in loco["data"]["train"]["per_corpus"] and "tess" not in loco["data"]["val"]["per_corpus"]
    md = (out / "results.md").read_text()
    assert "38%" in md and "43%" in md and "62%" in md and "72%" in md
    acc = by_id["cnn/speaker"]["test"]["accuracy"]
    assert f"{100 * acc:.1f}%" in md
    loaded = load_file(out / by_id["rnn/paper"]["weights"])
    assert loaded.kind == "seed-rnn" and loaded.needs == ("paper_mel", "paper_mfcc")
    svm = load_file(out / by_id["svm/paper"]["weights"])
    assert svm.impl.kernel == "linear" and svm.needs == ("paper_mel", "paper_mfcc")


def test_reproduce_missing_corpora_and_reuse(tiny_corpus, tmp_path, capsys):
    """Only two corpora: LOCO runs for those two; with --resume a run whose card exists is reused."""
    data = tmp_path / "data"
    for c in ("cremad", "tess"):
        shutil.copytree(tiny_corpus / c, data / c)
    mod = _module()

    def main(*only, resume=False):
        return mod.main(
            [
                "--data",
                str(data),
                "--out",
                str(tmp_path / "r"),
                "--jobs",
                "1",
                "--cache",
                str(tmp_path / "cache"),
                "--only",
                *only,
            ]
            + ["--resume"] * resume
        )

    assert main("svm") == 0
    res = json.loads((tmp_path / "r" / "results.json").read_text())
    assert [r["id"] for r in res["runs"]] == ["svm/paper", "svm/speaker", "svm/loco:cremad", "svm/loco:tess"]
    assert all(r["status"] == "ok" and not r["reused"] for r in res["runs"])
    assert res["loco_corpora"] == ["cremad", "tess"]
    assert "no clips of ravdess, savee" in capsys.readouterr().err
    assert main("svm/paper,svm/loco:tess", resume=True) == 0
    res = json.loads((tmp_path / "r" / "results.json").read_text())
    assert [(r["id"], r["reused"]) for r in res["runs"]] == [("svm/paper", True), ("svm/loco:tess", True)]
    # one corpus only: nothing to train a LOCO model on -> recorded as skipped, not fatal
    shutil.rmtree(data / "tess")
    assert main("svm/loco:cremad") == 0
    run = json.loads((tmp_path / "r" / "results.json").read_text())["runs"][0]
    assert run["status"] == "skipped" and "no training clips" in run["reason"]
    assert "skipped" in (tmp_path / "r" / "results.md").read_text()


def test_only_filters():
    mod = _module()
    runs = mod.plan(["cremad", "tess"])
    assert len(runs) == 4 * 4 + 3 * 3  # the -spk models have no paper-protocol run
    assert [r["id"] for r in mod.select(runs, ["cnn", "loco"])] == ["cnn/loco:cremad", "cnn/loco:tess"]
    assert [r["id"] for r in mod.select(runs, ["paper"])] == ["svm/paper", "rnn/paper", "seed-cnn/paper", "cnn/paper"]
    assert [r["recipe"] for r in mod.select(runs, ["cnn"])] == ["cnn-paper", "cnn", "cnn-loco", "cnn-loco"]
    assert [r["recipe"] for r in mod.select(runs, ["rnn"])] == ["seed-rnn"] + ["seed-rnn-short"] * 3
    with pytest.raises(SystemExit):
        mod.select(runs, ["bogus"])


def test_loco_split(tiny_corpus):
    clips = scan(tiny_corpus).clips
    table = speaker_split()
    s = loco_split(clips, "ravdess")
    assert {c.corpus for c in s["test"]} == {"ravdess"} and len(s["test"]) == 18
    for part in ("train", "val"):
        assert s[part] and {c.corpus for c in s[part]} <= {"cremad", "tess", "savee"}
        assert {split_of(c, table) for c in s[part]} == {part}
    used = {c.path for part in s.values() for c in part}
    # the other corpora's canonical test speakers are left out
    assert not [c for c in clips if c.corpus != "ravdess" and split_of(c, table) == "test" and c.path in used]
    with pytest.raises(CorpusError, match="no clips of corpus 'emodb'"):
        loco_split(clips, "emodb")
    recipe = load_recipe("cnn", {"protocol": "loco:tess"})
    assert {c.corpus for c in make_splits(clips, recipe.labels, recipe.protocol, 0)["test"]} == {"tess"}
    with pytest.raises(CorpusError, match="unknown protocol"):
        make_splits(clips, recipe.labels, "nope", 0)


def test_linear_numpy_svm_equals_sklearn(rng, tmp_path):
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    X = rng.standard_normal((90, 148)) + np.repeat(np.eye(3, 148) * 3, 30, axis=0)
    y = np.repeat(np.arange(3), 30)
    scaler = StandardScaler().fit(X)
    svc = SVC(kernel="linear", C=1.0).fit(scaler.transform(X), y)
    svm = NumpySVM.from_sklearn(scaler, svc, features="paper")
    Xt = rng.standard_normal((20, 148)) * 2
    svc.set_params(decision_function_shape="ovo")
    np.testing.assert_allclose(svm.decision_ovo(Xt), svc.decision_function(scaler.transform(Xt)), atol=1e-8)
    assert (svm.predict_proba(Xt).argmax(1) == svc.predict(scaler.transform(Xt))).all()
    p = tmp_path / "lin.npz"
    save_svm(p, svm, {"kind": "svm", "labels": list("abc")})
    m = load_file(p)
    assert m.impl.kernel == "linear" and m.needs == ("paper_mel", "paper_mfcc")
    feats = [{"paper_mel": x[:128], "paper_mfcc": x[128:]} for x in Xt]
    np.testing.assert_allclose(m.predict_proba(feats), svm.predict_proba(Xt), atol=1e-6)


def test_seed_rnn_roundtrip(tmp_path):
    import torch

    from sercli.models import nets

    torch.manual_seed(0)
    net = nets.SeedRNN(nets.SeedRNNDims(n_labels=5, hidden=8, cell="gru")).eval()
    p = tmp_path / "rnn.pt"
    save_torch(p, net, {"kind": "seed-rnn", "labels": list("abcde"), "recipe": "t"})
    m = load_file(p)
    assert m.kind == "seed-rnn" and m.impl.dims.cell == "gru"
    r = np.random.default_rng(0)
    feats = [
        {"paper_mel": r.standard_normal(128).astype(np.float32), "paper_mfcc": r.standard_normal(20).astype(np.float32)}
        for _ in range(3)
    ]
    proba = m.predict_proba(feats)
    assert proba.shape == (3, 5)
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-5)
    with torch.inference_mode():
        ref = torch.softmax(
            net(
                torch.from_numpy(np.stack([f["paper_mel"] for f in feats])),
                torch.from_numpy(np.stack([f["paper_mfcc"] for f in feats])),
            ),
            -1,
        ).numpy()
    np.testing.assert_allclose(proba, ref, atol=1e-6)
    with pytest.raises(ValueError, match="unknown RNN cell"):
        nets.SeedRNN(nets.SeedRNNDims(cell="transformer"))
