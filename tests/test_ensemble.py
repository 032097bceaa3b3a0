"""Ensemble files: JSON naming hash-pinned member model files and their weights."""

import json

import numpy as np
import pytest

from sercli.errors import ModelError
from sercli.features import SUMMARY_DIM
from sercli.models import ENSEMBLE_FORMAT, load_file, sha256_file


@pytest.fixture(scope="module")
def two_cnns(tmp_path_factory):
    import torch

    from sercli.corpora import SIX_CLASSES
    from sercli.models import nets, save_torch

    d = tmp_path_factory.mktemp("ens")
    paths = []
    for seed, summary in ((1, 0), (2, SUMMARY_DIM)):
        torch.manual_seed(seed)
        net = nets.EmotionCNN(nets.CNNDims(n_mels=64, n_labels=6, channels=[4, 8], hidden=8, n_summary=summary))
        p = d / f"m{seed}.pt"
        save_torch(p, net, {"kind": "cnn", "labels": list(SIX_CLASSES), "recipe": "test"})
        paths.append(p)
    return paths


@pytest.fixture(scope="module")
def group_cnn(two_cnns):
    """A tiny CNN marked as trained on group-normalised inputs (prior statistics 0 and 1)."""
    import torch

    from sercli.corpora import SIX_CLASSES
    from sercli.models import nets, save_torch

    torch.manual_seed(3)
    net = nets.EmotionCNN(
        nets.CNNDims(n_mels=64, n_labels=6, channels=[4, 8], hidden=8, group_norm=True, group_prior=1.0)
    )
    p = two_cnns[0].parent / "g.pt"
    save_torch(p, net, {"kind": "cnn", "labels": list(SIX_CLASSES), "recipe": "test"})
    return p


def write_spec(path, members, per_clip=(), **extra):
    spec = {
        "format": ENSEMBLE_FORMAT,
        "description": "test ensemble",
        **extra,
        "members": [{"file": p.name, "sha256": sha256_file(p), "weight": w} for p, w in members],
    }
    for i in per_clip:
        spec["members"][i]["per_clip"] = True
    path.write_text(json.dumps(spec))
    return path


def feats(rng, n=3):
    return [
        {
            "logmel": rng.normal(-40, 10, (64, int(rng.integers(50, 120)))).astype(np.float32),
            "summary": rng.normal(0, 1, SUMMARY_DIM).astype(np.float32),
        }
        for _ in range(n)
    ]


def test_ensemble_is_the_weighted_mean_of_its_members(two_cnns, rng):
    a, b = two_cnns
    spec = write_spec(a.parent / "ens.json", [(a, 0.3), (b, 0.7)])
    ens = load_file(spec)
    ma, mb = load_file(a), load_file(b)
    x = feats(rng)
    got = ens.predict_proba(x)
    want = 0.3 * ma.predict_proba(x) + 0.7 * mb.predict_proba(x)
    assert got.shape == (3, 6) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got.sum(1), 1, atol=1e-5)
    assert ens.kind == "ensemble" and ens.labels == ma.labels
    assert ens.needs == ("logmel", "summary")  # the union, in member order
    assert not ens.supports_group_norm and not ens.group_trained
    assert [m["weight"] for m in ens.card["members"]] == [0.3, 0.7]
    assert ens.card["description"] == "test ensemble" and ens.sha256 == sha256_file(spec)


def test_a_per_clip_member_sees_each_clip_alone_under_group_normalisation(two_cnns, group_cnn, rng):
    a, _ = two_cnns  # a single-clip CNN: it cannot be normalised by group
    d = a.parent
    plain = load_file(write_spec(d / "mix0.json", [(a, 0.4), (group_cnn, 0.6)]))
    assert not plain.supports_group_norm  # without per_clip the single-clip member refuses groups
    ens = load_file(write_spec(d / "mix.json", [(a, 0.4), (group_cnn, 0.6)], per_clip=[0]))
    assert ens.supports_group_norm and ens.group_trained
    assert [m.get("per_clip", False) for m in ens.card["members"]] == [True, False]
    ma, mg = load_file(a), load_file(group_cnn)
    x = feats(rng, 4)
    groups = ["s1", "s1", "s2", "s2"]
    got = ens.predict_proba_grouped(x, groups)  # ma would refuse groups: it must run per clip
    want = 0.4 * ma.predict_proba(x) + 0.6 * mg.predict_proba_grouped(x, groups)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    # every member per clip: nothing is left to normalise by group
    alone = load_file(write_spec(d / "mix2.json", [(a, 0.4), (group_cnn, 0.6)], per_clip=[0, 1]))
    assert not alone.supports_group_norm


def test_ensemble_classifies_files(two_cnns, write_wav, rng):
    from sercli.runtime.classify import classify

    from .conftest import speechlike

    a, b = two_cnns
    spec = write_spec(a.parent / "ens2.json", [(a, 0.5), (b, 0.5)])
    p = write_wav("x/1001_DFA_ANG_XX.wav", speechlike(rng, 2.0), 16000)
    (r,) = list(classify([p], model=str(spec), jobs=1))
    assert r.ok and r.label in load_file(a).labels
    assert abs(sum(r.scores.values()) - 1) < 1e-3


def test_a_replaced_member_is_refused(two_cnns, tmp_path):
    import shutil

    a, b = two_cnns
    shutil.copy(a, tmp_path / "m1.pt")
    shutil.copy(b, tmp_path / "m2.pt")
    spec = write_spec(tmp_path / "ens.json", [(tmp_path / "m1.pt", 0.5), (tmp_path / "m2.pt", 0.5)])
    shutil.copy(a, tmp_path / "m2.pt")  # a member swapped after the spec pinned it
    with pytest.raises(ModelError, match=r"ens\.json: member .*m2\.pt: sha256 .* does not match the pinned"):
        load_file(spec)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda s: s.update(format="other"), "not a valid sercli ensemble file"),
        (lambda s: s.update(members=[]), "members must be a non-empty list"),
        (lambda s: s["members"][0].pop("sha256"), "not a valid sercli ensemble file"),
        (lambda s: s["members"][0].update(weight=0.9), "weights must be non-negative and sum to 1"),
        (lambda s: s["members"][0].update(weight="x"), "not a valid sercli ensemble file"),
        (lambda s: s["members"][0].update(file="nope.pt"), r"bad\.json: member .*nope\.pt: model file not found"),
        (lambda s: s["members"][0].update(per_clip="yes"), "per_clip must be true or false"),
    ],
)
def test_bad_ensemble_files_give_one_line_errors(two_cnns, tmp_path, mutate, message):
    import shutil

    a, b = two_cnns
    for p in (a, b):
        shutil.copy(p, tmp_path / p.name)
    spec = {
        "format": ENSEMBLE_FORMAT,
        "members": [{"file": p.name, "sha256": sha256_file(p), "weight": 0.5} for p in (a, b)],
    }
    mutate(spec)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(spec))
    with pytest.raises(ModelError, match=message) as info:
        load_file(path)
    assert "\n" not in str(info.value)


def test_members_must_share_labels(two_cnns, tmp_path):
    from sercli.models import nets, save_torch

    a, _ = two_cnns
    net = nets.EmotionCNN(nets.CNNDims(n_mels=64, n_labels=5, channels=[4, 8], hidden=8))
    five = tmp_path / "five.pt"
    save_torch(five, net, {"kind": "cnn", "labels": ["angry", "happy", "neutral", "sad", "fear"]})
    import shutil

    shutil.copy(a, tmp_path / a.name)
    spec = write_spec(tmp_path / "ens.json", [(tmp_path / a.name, 0.5), (five, 0.5)])
    with pytest.raises(ModelError, match="must be the same, in order"):
        load_file(spec)


def test_an_ensemble_cannot_nest(two_cnns, tmp_path):
    import shutil

    a, b = two_cnns
    for p in (a, b):
        shutil.copy(p, tmp_path / p.name)
    inner = write_spec(tmp_path / "inner.json", [(tmp_path / a.name, 0.5), (tmp_path / b.name, 0.5)])
    outer = write_spec(tmp_path / "outer.json", [(inner, 1.0)])
    with pytest.raises(ModelError, match="members must be model files"):
        load_file(outer)


def load_script():
    from train import ensemble

    return ensemble


def test_simplex_grid():
    grid = load_script().simplex(3, 0.5)
    assert sorted(grid) == sorted([(1, 0, 0), (0, 1, 0), (0, 0, 1), (0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5)])
    assert len(load_script().simplex(2, 0.1)) == 11


def test_ensemble_script_chooses_on_val_and_its_numbers_hold(two_cnns, tiny_corpus, tmp_path, capsys):
    from sercli.corpora import scan, speaker_split, split_of
    from sercli.dataset import extract_dataset
    from sercli.evaluate import predict_clips
    from sercli.metrics import evaluate
    from sercli.training.splits import subset

    a, b = two_cnns
    out = tmp_path / "w" / "ens.json"
    assert (
        load_script().main(
            [
                "--data",
                str(tiny_corpus),
                "--member",
                str(a),
                "--member",
                str(b),
                "--mode",
                "single",
                "--step",
                "0.25",
                "--jobs",
                "1",
                "--out",
                str(out),
                "--cache",
                str(tmp_path / "cache"),
            ]
        )
        == 0
    )
    assert "wrote" in capsys.readouterr().out
    ens = load_file(out)  # members found relative to the file, hashes checked
    spec = json.loads(out.read_text())
    assert [m["file"] for m in spec["members"]] == [f"../../{two_cnns[0].parent.name}/{p.name}" for p in two_cnns]
    # the grid holds each member alone, so the chosen weights do at least as well on val
    assert spec["metrics"]["val"]["uar"] >= max(m["val"]["uar"] for m in spec["member_metrics"].values())
    # and the file's test numbers are what the loaded ensemble scores
    fs = extract_dataset(scan(tiny_corpus).clips, jobs=1, cache_dir=tmp_path / "cache")
    table = speaker_split()
    test = subset(fs, [i for i, c in enumerate(fs.clips) if split_of(c, table) == "test"])
    p = predict_clips(ens, test)
    r = evaluate([c.label for c in test.clips], [ens.labels[i] for i in p.argmax(1)], list(ens.labels))
    assert r["n"] == spec["metrics"]["test"]["n"] > 0
    assert r["uar"] == pytest.approx(spec["metrics"]["test"]["uar"])
    assert r["accuracy"] == pytest.approx(spec["metrics"]["test"]["accuracy"])


def test_ensemble_script_speaker_mode_runs_a_single_clip_member_per_clip(
    two_cnns, group_cnn, tiny_corpus, tmp_path, capsys
):
    from sercli.corpora import scan, speaker_split, split_of
    from sercli.dataset import extract_dataset
    from sercli.evaluate import predict_clips_grouped
    from sercli.metrics import evaluate
    from sercli.runtime.grouping import clip_groups
    from sercli.training.splits import subset

    a, _ = two_cnns
    out = tmp_path / "spk.json"
    assert (
        load_script().main(
            [
                "--data",
                str(tiny_corpus),
                "--member",
                str(a),
                "--member",
                str(group_cnn),
                "--mode",
                "speaker",
                "--step",
                "0.25",
                "--jobs",
                "1",
                "--out",
                str(out),
                "--cache",
                str(tmp_path / "cache"),
            ]
        )
        == 0
    )
    spec = json.loads(out.read_text())
    assert [m.get("per_clip", False) for m in spec["members"]] == [True, False]
    ens = load_file(out)
    assert ens.supports_group_norm
    # the file's test numbers are what the loaded ensemble scores with each speaker's clips together
    fs = extract_dataset(scan(tiny_corpus).clips, jobs=1, cache_dir=tmp_path / "cache")
    test = subset(fs, [i for i, c in enumerate(fs.clips) if split_of(c, speaker_split()) == "test"])
    p = predict_clips_grouped(ens, test, clip_groups(test.clips, "speaker"))
    r = evaluate([c.label for c in test.clips], [ens.labels[i] for i in p.argmax(1)], list(ens.labels))
    assert r["n"] == spec["metrics"]["test"]["n"] > 0
    assert r["uar"] == pytest.approx(spec["metrics"]["test"]["uar"])
    # a speaker-mode ensemble needs a member that can be normalised by group
    with pytest.raises(SystemExit, match="at least one member that supports --normalize-by"):
        load_script().main(
            [
                "--data",
                str(tiny_corpus),
                "--member",
                str(a),
                "--member",
                str(two_cnns[1]),
                "--mode",
                "speaker",
                "--out",
                str(tmp_path / "no.json"),
            ]
        )


def test_ensemble_script_needs_distinct_member_names(two_cnns, tmp_path):
    a, _ = two_cnns
    with pytest.raises(SystemExit, match="same name"):
        load_script().main(
            [
                "--data",
                str(tmp_path),
                "--member",
                str(a),
                "--member",
                str(a),
                "--mode",
                "single",
                "--out",
                str(tmp_path / "e.json"),
            ]
        )


@pytest.mark.parametrize("step", ["0.3", "0", "1.5"])
def test_ensemble_script_refuses_a_step_that_does_not_divide_one(tmp_path, step):
    with pytest.raises(SystemExit, match="whole steps"):
        load_script().main(
            [
                "--data",
                str(tmp_path),
                "--member",
                "a.pt",
                "--member",
                "b.pt",
                "--mode",
                "single",
                "--step",
                step,
                "--out",
                str(tmp_path / "e.json"),
            ]
        )


def test_ensemble_script_reports_a_bad_member_in_one_line(tmp_path):
    with pytest.raises(SystemExit, match=r"nope\.pt: model file not found"):
        load_script().main(
            [
                "--data",
                str(tmp_path),
                "--member",
                str(tmp_path / "nope.pt"),
                "--member",
                str(tmp_path / "b.pt"),
                "--mode",
                "single",
                "--out",
                str(tmp_path / "e.json"),
            ]
        )


def test_ensemble_script_loco_protocol_tests_on_the_held_out_corpus(two_cnns, tiny_corpus, tmp_path, capsys):
    """--protocol loco:CORPUS scores the test part on every clip of CORPUS and nothing else."""
    from sercli.corpora import scan

    a, b = two_cnns
    out = tmp_path / "loco.json"
    assert (
        load_script().main(
            [
                "--data",
                str(tiny_corpus),
                "--member",
                str(a),
                "--member",
                str(b),
                "--mode",
                "single",
                "--protocol",
                "loco:tess",
                "--jobs",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    spec = json.loads(out.read_text())
    labels = set(spec["labels"])
    n_tess = sum(1 for c in scan(tiny_corpus).clips if c.corpus == "tess" and c.label in labels)
    assert spec["protocol"] == "loco:tess"
    assert spec["metrics"]["test"]["n"] == n_tess > 0
    assert set(spec["metrics"]["test"]["per_corpus_uar"]) == {"tess"}
    assert "tess" not in spec["metrics"]["val"]["per_corpus_uar"]
    with pytest.raises(SystemExit, match="--protocol must be"):
        load_script().main(
            [
                "--data",
                str(tiny_corpus),
                "--member",
                str(a),
                "--member",
                str(b),
                "--mode",
                "single",
                "--protocol",
                "paper",
                "--out",
                str(out),
            ]
        )
