"""Group normalisation (--normalize-by): the math, group-normalised SVM files, classify's
two-pass mode (order, error rows, single clips) and the usage error for models without it."""

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from sercli.audio import load_audio
from sercli.cli import cli
from sercli.corpora import SIX_CLASSES, Clip
from sercli.dataset import FeatureSet, clip_features
from sercli.features import SUMMARY_DIM
from sercli.models import load_file, save_svm
from sercli.normalize import normalize_groups, prior_stats
from sercli.runtime.classify import classify, classify_file
from sercli.runtime.grouping import group_keys

from .conftest import speechlike


def run(args, input=None):
    return CliRunner().invoke(cli, args, input=input, catch_exceptions=False)


# ---------------------------------------------------------------- math


def test_group_zscore_with_prior_matches_hand_computation():
    X = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0], [10.0, 0.0], [14.0, 2.0]])
    groups = ["a", "a", "a", "b", "b"]
    mu0, sd0 = np.array([0.0, 1.0]), np.array([1.0, 2.0])
    Z = normalize_groups(X, groups, mu0, sd0, prior_n=1.0)
    # group a, n = 3, k = 1: w = 3/4; feature 0: mean 0.75*2 + 0.25*0 = 1.5,
    # var 0.75*(2/3) + 0.25*1 = 0.75
    np.testing.assert_allclose(Z[:3, 0], (np.array([1, 2, 3]) - 1.5) / np.sqrt(0.75))
    # feature 1 is constant in group a: var = 0.25 * 4 = 1 (the prior keeps it finite)
    np.testing.assert_allclose(Z[:3, 1], (5 - (0.75 * 5 + 0.25 * 1)) / 1.0)
    # group b, n = 2: w = 2/3; feature 0: mean 2/3*12 = 8, var 2/3*4 + 1/3*1 = 3
    np.testing.assert_allclose(Z[3:, 0], (np.array([10, 14]) - 8) / np.sqrt(3))
    # a negligible prior is a plain per-group z-score
    Z0 = normalize_groups(X[:, :1], groups, mu0[:1], sd0[:1], prior_n=1e-12)
    for rows in (slice(0, 3), slice(3, 5)):
        assert abs(Z0[rows].mean()) < 1e-9 and abs(Z0[rows].std() - 1) < 1e-6
    # order of rows and of first appearance does not matter
    perm = [4, 0, 3, 2, 1]
    np.testing.assert_allclose(normalize_groups(X[perm], [groups[i] for i in perm], mu0, sd0, 1.0), Z[perm])


def test_single_rows_and_prior_stats():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4, 3))
    mu0, sd0 = np.array([1.0, 0.0, -1.0]), np.array([2.0, 1.0, 0.5])
    alone = normalize_groups(X, None, mu0, sd0, prior_n=3.0)
    np.testing.assert_allclose(alone, normalize_groups(X, [0, 1, 2, 3], mu0, sd0, prior_n=3.0))
    np.testing.assert_allclose(alone, np.sqrt(3 / 4) * (X - mu0) / sd0)  # n = 1: sqrt(k/(1+k)) (x-mu0)/sd0
    # each group counts once in the prior, whatever its size
    Y = np.array([[0.0], [2.0], [10.0], [10.0], [10.0], [10.0]])
    m, s = prior_stats(Y, ["a", "a", "b", "b", "b", "b"])
    assert m[0] == pytest.approx((1 + 10) / 2) and s[0] == pytest.approx(np.sqrt((1 + 0) / 2))


# ---------------------------------------------------------------- model files


def _fs(rng, speakers, per_speaker, base, scale):
    """Summary vectors around real ones (base, scale): speaker offsets plus an emotion signal."""
    clips, X = [], []
    for s in speakers:
        offset = rng.normal(0, 1, SUMMARY_DIM)  # a speaker's voice
        for i in range(per_speaker):
            lab = SIX_CLASSES[i % 6]
            clips.append(Clip(f"/x/{s}_{i}.wav", "ravdess", s, lab))
            z = offset + rng.normal(0, 0.5, SUMMARY_DIM) + 1.5 * (np.arange(SUMMARY_DIM) % 6 == i % 6)
            X.append(base + scale * z)
    n = len(clips)
    return FeatureSet(
        clips, [np.zeros((64, 1))] * n, np.zeros((n, 128)), np.zeros((n, 20)), np.array(X, np.float32), []
    )


@pytest.fixture(scope="module")
def svm_files(tmp_path_factory):
    """A plain and a group-normalised SVM on synthetic summary vectors around those of
    speech-like signals (no corpus: fast)."""
    from sercli.training.recipe import build_recipe
    from sercli.training.svm import train_svm

    rng = np.random.default_rng(3)
    real = np.stack([clip_features(speechlike(rng, 1.0, f0=100 + 25 * i), ("summary",))["summary"] for i in range(6)])
    base, scale = real.mean(0), real.std(0) + 1e-3
    data = {
        "train": _fs(rng, ["01", "03", "05", "07"], 24, base, scale),
        "val": _fs(rng, ["02", "04"], 12, base, scale),
    }
    out = tmp_path_factory.mktemp("svm")
    paths = {}
    for name, extra in (("plain", {}), ("spk", {"normalize": "group", "group_prior": 1.0})):
        recipe = build_recipe({"name": name, "model": "svm", "labels": list(SIX_CLASSES), "C": 10.0, **extra})
        svm = train_svm(data, list(SIX_CLASSES), recipe, 0)
        paths[name] = out / f"{name}.npz"
        save_svm(paths[name], svm, {"kind": "svm", "labels": list(SIX_CLASSES), "recipe": name})
    return paths


def _config(path):
    with np.load(path, allow_pickle=False) as z:
        return json.loads(bytes(z["config"]).decode()), set(z.files)


def test_group_svm_file_records_normalize_and_round_trips(svm_files):
    cfg, files = _config(svm_files["spk"])
    assert cfg["normalize"] == "group" and cfg["group_prior"] == 1.0
    assert {"group_mean", "group_std"} <= files
    cfg, files = _config(svm_files["plain"])
    assert "normalize" not in cfg and "group_mean" not in files  # plain files as before
    m = load_file(svm_files["spk"])
    assert m.group_trained and m.supports_group_norm and not load_file(svm_files["plain"]).group_trained
    X = np.random.default_rng(1).normal(size=(3, SUMMARY_DIM)).astype(np.float32)
    feats = [{"summary": x} for x in X]
    # without groups each clip is normalised alone with the stored training statistics
    np.testing.assert_allclose(
        m.predict_proba(feats),
        m.impl.predict_proba(normalize_groups(X, None, m.impl.group_mean, m.impl.group_std, 1.0)),
        rtol=1e-6,
    )
    np.testing.assert_allclose(m.predict_proba_grouped(feats, ["a", "b", "c"]), m.predict_proba(feats), rtol=1e-6)


# ---------------------------------------------------------------- classify


@pytest.fixture
def two_folders(tmp_path, rng, write_wav):
    paths = []
    for i in range(5):
        folder = "A" if i % 2 == 0 else "B"
        paths.append(write_wav(f"rec/{folder}/c{i}.wav", speechlike(rng, 1.0 + 0.2 * i, f0=110 + 30 * i), 16000))
    bad = tmp_path / "rec" / "B" / "broken.wav"
    bad.write_bytes(b"not audio at all")
    # interleaved, with the bad file in the middle
    return [str(p) for p in (paths[0], paths[1], bad, paths[2], paths[3], paths[4])]


def test_classify_normalize_by_folder_keeps_order_and_error_rows(two_folders, svm_files):
    model = load_file(svm_files["spk"])
    res = list(classify(two_folders, model=model, jobs=1, normalize_by="folder"))
    assert [r.path for r in res] == two_folders
    assert [r.ok for r in res] == [True, True, False, True, True, True]
    assert "broken.wav" in res[2].error and res[2].label is None
    # the same numbers by hand: features, then each folder's rows normalised together
    good = [p for p in two_folders if "broken" not in p]
    feats = [clip_features(load_audio(p)[0], ("summary",)) for p in good]
    probs = model.predict_proba_grouped(feats, [os.path.dirname(p) for p in good])
    got = [r for r in res if r.ok]
    for r, p in zip(got, probs):
        assert r.label == model.labels[int(np.argmax(p))]
        np.testing.assert_allclose([r.scores[k] for k in model.labels], p, atol=2e-6)
    # grouping differs from each clip alone
    alone = list(classify(good, model=model, jobs=1))
    assert any(a.scores != g.scores for a, g in zip(alone, got))


def test_cli_normalize_by_one_row_per_input_in_order(two_folders, svm_files, tmp_path):
    rec = tmp_path / "rec"
    r = run(
        [
            "classify",
            str(rec / "A"),
            str(rec / "B"),
            "-m",
            str(svm_files["plain"]),
            "--normalize-by",
            "folder",
            "--format",
            "jsonl",
            "-q",
            "-j",
            "1",
        ]
    )
    assert r.exit_code == 1, r.output  # one bad file
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    expected = sorted(p for p in two_folders if "/A/" in p) + sorted(p for p in two_folders if "/B/" in p)
    assert [x["path"] for x in rows] == expected
    assert [x["error"] is None for x in rows] == ["broken" not in p for p in expected]


def test_manifest_speakers_group_files(tmp_path, two_folders, svm_files):
    good = [p for p in two_folders if "broken" not in p]
    man = tmp_path / "m.csv"
    man.write_text(
        "path,speaker\n"
        + "".join(f"{os.path.relpath(p, tmp_path)},{'x' if i < 2 else 'y'}\n" for i, p in enumerate(good))
    )
    r = run(
        [
            "classify",
            str(man),
            "-m",
            str(svm_files["spk"]),
            "--normalize-by",
            "speaker",
            "--format",
            "jsonl",
            "-q",
            "-j",
            "1",
        ]
    )
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [os.path.realpath(x["path"]) for x in rows] == [os.path.realpath(p) for p in good]
    want = list(
        classify(
            good,
            model=str(svm_files["spk"]),
            jobs=1,
            normalize_by="speaker",
            speakers={p: ("x" if i < 2 else "y") for i, p in enumerate(good)},
        )
    )
    assert [x["scores"] for x in rows] == [w.scores for w in want]


def test_speaker_groups_from_names_else_folder():
    keys = group_keys(
        [
            "/d/ravdess/Actor_01/03-01-05-01-01-01-01.wav",
            "/d/x/03-01-04-01-01-01-01.wav",
            "/d/x/anything.wav",
            "/d/y/anything.wav",
            "/d/y/m.wav",
        ],
        "speaker",
        speakers={"/d/y/m.wav": "S7"},
    )
    assert keys[0] == keys[1]  # RAVDESS actor 01, wherever it lies
    assert keys[2] != keys[3] and keys[2][0] == "folder"
    assert keys[4] == ("speaker", "given", "S7")


def test_model_without_group_support_is_a_one_line_usage_error(tiny_cnn, two_folders, tmp_path):
    r = run(["classify", two_folders[0], "-m", str(tiny_cnn), "--normalize-by", "speaker"])
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--normalize-by needs a model trained for it" in lines[0]
    from sercli.models import group_models

    assert f"use --model {group_models()[0]}" in lines[0]  # the option and value to use (issue 18)
    r = run(["evaluate", "--data", str(tmp_path), "-m", str(tiny_cnn), "--normalize-by", "folder"])
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1
    assert f"use --model {group_models()[0]}" in r.stderr


def test_single_clip_with_group_model_falls_back_with_warning(two_folders, svm_files):
    warnings = []
    one = classify_file(two_folders[0], model=str(svm_files["spk"]), warn=warnings.append)
    assert one.ok and one.label in SIX_CLASSES
    assert any("trained on features normalised per speaker" in w for w in warnings)
    # --normalize-by with a group of one clip: the same fallback, and a small-group warning
    warnings.clear()
    grouped = next(
        classify([two_folders[0]], model=str(svm_files["spk"]), jobs=1, normalize_by="folder", warn=warnings.append)
    )
    assert grouped.scores == one.scores
    assert any("fewer than" in w for w in warnings)


# ---------------------------------------------------------------- group-trained CNN


def test_cnn_group_inputs_match_hand_computation():
    from sercli.normalize import cnn_group_inputs

    # two bands; clip band means (1, 4), (3, 4) in group a, (10, 0) in group b
    mels = [
        np.array([[0.0, 2.0], [4.0, 4.0]]),
        np.array([[3.0, 3.0], [4.0, 4.0]]),
        np.array([[10.0, 10.0], [0.0, 0.0]]),
    ]
    summ = np.array([[1.0], [3.0], [5.0]])
    mu0, sd0 = np.array([0.0, 2.0, 0.0]), np.array([1.0, 1.0, 2.0])
    off, z = cnn_group_inputs(mels, summ, ["a", "a", "b"], mu0, sd0, prior_n=1.0)
    # group a, n = 2, k = 1: w = 2/3; band 0 mean 2/3*2 = 4/3 -> offset 4/3; band 1: 2/3*4 + 1/3*2 - 2
    np.testing.assert_allclose(off[0], [4 / 3, 2 / 3 * 4 + 2 / 3 - 2], rtol=1e-6)
    np.testing.assert_allclose(off[1], off[0])
    np.testing.assert_allclose(off[2], [0.5 * 10, 0.5 * 0 + 0.5 * 2 - 2], rtol=1e-6)
    # summary of group a: mean 2/3*2 = 4/3, var 2/3*1 + 1/3*4 = 2
    np.testing.assert_allclose(z[:2, 0], (np.array([1.0, 3.0]) - 4 / 3) / np.sqrt(2), rtol=1e-6)
    off1, z1 = cnn_group_inputs(mels, None, None, mu0[:2], sd0[:2], prior_n=1.0)
    assert z1 is None
    np.testing.assert_allclose(off1[0], [0.5 * 1, 0.5 * 4 + 0.5 * 2 - 2], rtol=1e-6)


@pytest.fixture(scope="module")
def group_cnn(tmp_path_factory):
    """A randomly initialised CNN marked as trained with normalize = "group", with summary
    fusion and prior statistics from speech-like clips."""
    import torch

    from sercli.models import nets, save_torch

    rng = np.random.default_rng(5)
    feats = [clip_features(speechlike(rng, 1.0, f0=90 + 30 * i), ("logmel", "summary")) for i in range(6)]
    V = np.stack([np.concatenate([f["logmel"].mean(1), f["summary"]]) for f in feats])
    torch.manual_seed(1)
    net = nets.EmotionCNN(
        nets.CNNDims(
            n_mels=64, n_labels=6, channels=[4, 8], hidden=8, n_summary=SUMMARY_DIM, group_norm=True, group_prior=1.0
        )
    )
    net.group_mean.copy_(torch.from_numpy(V.mean(0).astype(np.float32)))
    net.group_std.copy_(torch.from_numpy(V.std(0).astype(np.float32) + 1e-3))
    p = tmp_path_factory.mktemp("gcnn") / "gcnn.pt"
    save_torch(p, net, {"kind": "cnn", "labels": list(SIX_CLASSES), "recipe": "test"})
    return p


def test_group_cnn_removes_a_groups_spectral_colouring(group_cnn, rng):
    m = load_file(group_cnn)
    assert m.group_trained and m.supports_group_norm
    m.impl.dims.group_prior = 1e-9  # groups entirely their own statistics
    feats = [clip_features(speechlike(rng, 1.0 + 0.1 * i, f0=100 + 20 * i), ("logmel", "summary")) for i in range(4)]
    tilt = np.linspace(-6.0, 6.0, 64)[:, None]  # a microphone's colouring, in dB per band
    coloured = [{"logmel": f["logmel"] + tilt, "summary": f["summary"]} for f in feats]
    p = m.predict_proba_grouped(feats + coloured, ["a"] * 4 + ["b"] * 4)
    np.testing.assert_allclose(p[:4], p[4:], atol=1e-5)
    # alone, with the prior of a trained model, each clip keeps half its colouring: scores move
    m.impl.dims.group_prior = 1.0
    assert np.abs(m.predict_proba(feats) - m.predict_proba(coloured)).max() > 1e-4


def test_classify_normalize_by_with_group_cnn(group_cnn, two_folders):
    res = list(classify(two_folders, model=str(group_cnn), jobs=1, normalize_by="folder"))
    assert [r.path for r in res] == two_folders
    assert [r.ok for r in res] == [True, True, False, True, True, True]
    # the same as scoring every clip's features with its folder as the group
    m = load_file(group_cnn)
    good = [p for p, r in zip(two_folders, res) if r.ok]
    feats = [clip_features(load_audio(p)[0], m.needs) for p in good]
    for f in feats:
        f["logmel"] = f["logmel"].astype(np.float16)
    want = m.predict_proba_grouped(feats, [os.path.dirname(p) for p in good])
    got = np.array([[r.scores[k] for k in m.labels] for r in res if r.ok])
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert list(classify(two_folders, model=str(group_cnn), jobs=2, normalize_by="folder")) == res
    warnings = []
    one = classify_file(two_folders[0], model=str(group_cnn), warn=warnings.append)
    assert one.ok and any("trained on features normalised per speaker" in w for w in warnings)


def test_evaluate_normalize_by_speaker_with_group_cnn(group_cnn, tiny_corpus, tmp_path):
    args = [
        "evaluate",
        "--data",
        str(tiny_corpus),
        "-m",
        str(group_cnn),
        "--split",
        "all",
        "--format",
        "json",
        "-j",
        "1",
        "--cache",
        str(tmp_path / "cache"),
    ]
    grouped = json.loads(run(args + ["--normalize-by", "speaker"]).stdout)
    alone = json.loads(run(args).stdout)
    assert grouped["normalize_by"] == "speaker" and alone["normalize_by"] == "none"
    assert grouped["n"] == alone["n"] > 0
    # the group's statistics change the inputs, hence the predictions of a (random) CNN
    assert grouped["confusion"] != alone["confusion"]
