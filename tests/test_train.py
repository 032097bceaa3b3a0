"""1-epoch smoke trains of every recipe on tiny synthetic corpora, cache and determinism."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from sercli import dataset
from sercli.cli import cli
from sercli.corpora import scan
from sercli.errors import RecipeError
from sercli.models import load_file, sha256_file
from sercli.training.recipe import bundled_names, load_recipe, training_keys

from .conftest import REPO

#: the lab's experiment recipes (not installed); they may extend bundled ones by name
LAB = REPO / "train" / "recipes"
BUNDLED = bundled_names()
RECIPES = sorted(BUNDLED + [p.stem for p in LAB.glob("*.toml")])


def recipe_arg(name: str) -> str:
    """What --recipe takes for a recipe: a bundled name, or a lab recipe's path."""
    return name if name in BUNDLED else str(LAB / f"{name}.toml")


def test_recipes_exist():
    assert {"cnn", "seed-cnn", "svm"} <= set(BUNDLED)
    assert list(load_recipe("cnn").labels) == ["angry", "disgust", "fear", "happy", "neutral", "sad"]


#: cards trained under another name: the recipes cnn-v1 and then cnn-v2 were "cnn" until the
#: default changed (cnn-fast was the experiment that became cnn-v2); two reruns of cnn-e45 were run
#: as recipe "cnn" set to 45 epochs
RENAMED = {
    "cnn-v1.card.json": "cnn-v1",
    "cnn-v1-retrain.card.json": "cnn-v1",
    "cnn-fast.card.json": "cnn-v2",
    "cnn-v2.card.json": "cnn-v2",
    "cnn-v2-retrain.card.json": "cnn-v2",
    "cnn-e45-threads1.card.json": "cnn-e45",
    "cnn-e45-fresh.card.json": "cnn-e45",
}
#: recipe files that differed from another by the held-out corpus alone, retired for
#: `--set protocol=loco:CORPUS` (train/recipes/README.md): old name -> (recipe, protocol)
RETIRED = {
    f"{old}-{corpus}": (new, f"loco:{corpus}")
    for corpus in ("cremad", "ravdess", "savee", "tess")
    for old, new in (
        ("cnn-spk2-loco", "cnn-spk2-loco"),
        ("cnn-spk3-adv-loco", "cnn-spk3-adv-loco"),
        ("cnn-spk3-aug-loco", "cnn-spk3-aug-loco"),
        ("cnn-spk3-loco30", "cnn-spk3"),
    )
}
CARDS = sorted(
    p
    for pattern in ("weights/*.card.json", "train/results/*.card.json", "train/results/experiments/*.card.json")
    for p in REPO.glob(pattern)
)


@pytest.mark.parametrize("card", CARDS, ids=lambda p: p.name)
def test_committed_cards_match_their_recipe_files(card):
    """A committed card's recipe is what its recipe file (extends resolved) gives today, so that
    editing one recipe cannot silently change what another reproduces."""
    recipe = json.loads(card.read_text())["recipe"]
    name = RENAMED.get(card.name, recipe["name"])
    overrides = {}
    if name in RETIRED:
        name, protocol = RETIRED[name]
        overrides = {"protocol": protocol}
    if name not in RECIPES:
        pytest.skip(f"{card.name}: recipe {name} was a one-off file outside train/recipes")
    then, now = training_keys(recipe), training_keys(load_recipe(recipe_arg(name), overrides).as_dict())
    diff = {k: (then.get(k), now.get(k)) for k in set(then) | set(now) if then.get(k) != now.get(k)}
    assert not diff, diff


@pytest.mark.parametrize("recipe", RECIPES)
def test_smoke_train_every_recipe(recipe, tiny_corpus, tmp_path):
    out = tmp_path / "out"
    r = CliRunner().invoke(
        cli,
        [
            "train",
            "--data",
            str(tiny_corpus),
            "--recipe",
            recipe_arg(recipe),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--jobs",
            "1",
            "--threads",
            "1",
            "--cache",
            str(tmp_path / "cache"),
        ],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    card = json.loads((out / f"{recipe}.card.json").read_text())
    weights = out / card["weights"]
    assert card["sha256"] == sha256_file(weights)
    for key in (
        "labels",
        "features",
        "sample_rate",
        "data",
        "protocol",
        "metrics",
        "command",
        "library_versions",
        "licence",
        "intended_use",
        "caveats",
    ):
        assert key in card, key
    assert card["data"]["train"]["clips"] > 0
    m = card["metrics"]["test"]
    assert {"accuracy", "uar", "macro_f1", "per_class", "confusion"} <= set(m)
    assert (out / f"{recipe}.card.md").read_text().startswith("# Model card")
    assert (out / f"{recipe}.confusion.png").stat().st_size > 1000
    model = load_file(weights)
    assert list(model.labels) == card["labels"]


def test_speaker_split_keeps_test_speakers_out_of_training(tiny_corpus, tmp_path):
    from sercli.training.splits import make_splits

    recipe = load_recipe("cnn")
    splits = make_splits(scan(tiny_corpus).clips, recipe.labels, recipe.protocol, 0)
    train_spk = {c.speaker_key for c in splits["train"]}
    test_spk = {c.speaker_key for c in splits["test"]}
    val_spk = {c.speaker_key for c in splits["val"]}
    assert train_spk and test_spk and val_spk
    assert not train_spk & test_spk and not train_spk & val_spk and not val_spk & test_spk
    assert "tess:YAF" in test_spk and "cremad:1004" in test_spk


@pytest.mark.parametrize("threads", [1, 2])
def test_training_is_deterministic(tiny_corpus, tmp_path, threads):
    from sercli.training.run import run

    shas = []
    for i in range(2):
        card = run(
            tiny_corpus,
            recipe=load_recipe("cnn"),
            out=tmp_path / f"o{i}",
            epochs=1,
            jobs=1,
            threads=threads,
            cache_dir=str(tmp_path / "cache"),
            progress=False,
        )
        shas.append(card["sha256"])
    assert shas[0] == shas[1]


def test_feature_cache_skips_extraction(tiny_corpus, tmp_path, monkeypatch):
    clips = scan(tiny_corpus).clips[:6]
    cache = tmp_path / "cache"
    first = dataset.extract_dataset(clips, jobs=1, cache_dir=cache, progress=False)
    assert len(list(cache.rglob("*.npz"))) == 6

    def boom(*a, **k):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(dataset, "load_audio", boom)
    second = dataset.extract_dataset(clips, jobs=1, cache_dir=cache, progress=False)
    np.testing.assert_array_equal(first.summary, second.summary)
    # a changed file is a new key, so it is extracted again
    import soundfile as sf

    y, sr = sf.read(clips[0].path)
    sf.write(clips[0].path, y * 0.5, sr)
    with pytest.raises(AssertionError, match="decoded although cached"):
        dataset._one(clips[0].path, str(cache))


def test_features_for_training_use_one_blas_thread_in_any_process(tiny_corpus, monkeypatch):
    """Extraction in this process (--jobs 1) caps BLAS at one thread, as joblib's workers do:
    with more, a matrix product sums in another order and the cached features (so the trained
    weights) depend on --jobs in their last digit (seen on 1 of 40 CREMA-D clips)."""
    from threadpoolctl import threadpool_info, threadpool_limits

    seen = []
    real = dataset.clip_features

    def spy(y, *a, **k):
        seen.append({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})
        return real(y, *a, **k)

    monkeypatch.setattr(dataset, "clip_features", spy)
    with threadpool_limits(limits=2, user_api="blas"):
        before = {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}
        dataset._one(scan(tiny_corpus).clips[0].path, None)
    assert seen == [{1}]
    if max(before) < 2:
        pytest.skip("one core: BLAS cannot run two threads here, so the cap is not exercised")


def test_train_writes_manifest_and_distribution_plots(tiny_corpus, tmp_path):
    man = tmp_path / "manifest.csv"
    r = CliRunner().invoke(
        cli,
        [
            "train",
            "--data",
            str(tiny_corpus),
            "--recipe",
            "svm",
            "--out",
            str(tmp_path / "o"),
            "--jobs",
            "1",
            "--cache",
            str(tmp_path / "c"),
            "--manifest",
            str(man),
        ],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    import pandas as pd

    df = pd.read_csv(man)
    assert len(df) == len(scan(tiny_corpus).clips)
    assert set(df["split"]) == {"train", "val", "test"}
    assert (tmp_path / "manifest.per-corpus.png").exists() and (tmp_path / "manifest.combined.png").exists()


def test_unknown_recipe_is_clear(tiny_corpus, tmp_path):
    r = CliRunner().invoke(cli, ["train", "--data", str(tiny_corpus), "--recipe", "nope"])
    assert r.exit_code == 2 and "no such recipe" in r.output  # a usage error, as an unknown --model


def test_recipe_extends_another(tmp_path):
    base = load_recipe("cnn").as_dict()
    (tmp_path / "child.toml").write_text('extends = "cnn"\nepochs = 3\n')
    child = load_recipe(str(tmp_path / "child.toml")).as_dict()
    assert child == {**base, "name": "child", "epochs": 3}
    (tmp_path / "a.toml").write_text(f'extends = "{tmp_path / "b.toml"}"\n')
    (tmp_path / "b.toml").write_text(f'extends = "{tmp_path / "a.toml"}"\n')
    with pytest.raises(RecipeError, match="loop"):
        load_recipe(str(tmp_path / "a.toml"))


@pytest.mark.parametrize(
    "line,reason",
    [
        ("time_pool = 0", "time_pool must be a whole number >= 1"),
        ("time_pool = 1.5", "time_pool must be a whole number >= 1"),
        ('band_norm = "yes"', "band_norm must be true or false"),
        ('pooling = "max"', 'pooling must be "stats" or "attention"'),
        ("mixup = -0.2", "mixup must be a number >= 0 (the Beta alpha)"),
        ("noise_snr_db = [20, 0]", "noise_snr_db must be [low, high] and low <= high"),
        ("reverb_rt60_s = [0, 1]", "reverb_rt60_s must be [low, high] with 0 < low and low <= high"),
        ('noise_prob = "half"', "noise_prob must be a number from 0 to 1"),
        ("reverb_prob = 1.5", "reverb_prob must be a number from 0 to 1"),
        ("corpus_adversary = -1", "corpus_adversary must be a number >= 0 (the weight of the corpus adversary's loss)"),
    ],
)
def test_bad_cnn_options_are_one_line_errors(tiny_corpus, tmp_path, line, reason):
    (tmp_path / "bad.toml").write_text(f'extends = "cnn"\n{line}\n')
    r = CliRunner().invoke(
        cli,
        ["train", "--data", str(tiny_corpus), "--recipe", str(tmp_path / "bad.toml"), "--out", str(tmp_path / "out")],
    )
    assert r.exit_code == 1 and "Traceback" not in r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: recipe bad: {reason}, got "), r.stderr
    assert not (tmp_path / "out").exists()


def test_mix_batch_blends_inputs_and_keeps_the_longer_length(rng):
    import torch

    from sercli.training.augment import mix_batch

    x = torch.from_numpy(rng.normal(size=(4, 3, 5)).astype(np.float32))
    lengths, summ = torch.tensor([5, 2, 4, 3]), torch.from_numpy(rng.normal(size=(4, 2)).astype(np.float32))
    mx, ml, ms, lam, other = mix_batch(x, lengths, summ, np.random.default_rng(1), 0.4)
    assert 0.0 <= lam <= 1.0 and sorted(other.tolist()) == [0, 1, 2, 3]
    np.testing.assert_allclose(mx.numpy(), (lam * x + (1 - lam) * x[other]).numpy(), atol=1e-6)
    np.testing.assert_allclose(ms.numpy(), (lam * summ + (1 - lam) * summ[other]).numpy(), atol=1e-6)
    assert ml.tolist() == [max(int(lengths[i]), int(lengths[j])) for i, j in enumerate(other.tolist())]
    assert mix_batch(x, lengths, None, np.random.default_rng(1), 0.4)[2] is None


def test_room_and_noise_add_power_as_sound_does(rng):
    from sercli.training.augment import room_and_noise
    from sercli.training.recipe import Augmentation

    m = np.full((64, 200), -80.0, np.float32)
    m[:, 50:60] = -20.0  # a 100 ms burst in silence
    assert room_and_noise(m, rng, Augmentation()) is m  # no keys: untouched
    rev = room_and_noise(m, np.random.default_rng(0), Augmentation(reverb_rt60_s=(0.5, 0.5), reverb_prob=1.0))
    assert rev.shape == m.shape and np.isfinite(rev).all()
    assert np.all(rev[:, 60:70] > m[:, 60:70] + 10)  # the burst rings on after it ends ...
    assert np.all(rev[:, :50] <= m[:, :50] + 3.02)  # before it, only the floor's own echo (<= 2x)
    assert np.all(np.diff(rev[:, 60:120], axis=1) <= 1e-3)  # and decays
    quiet = room_and_noise(m, np.random.default_rng(0), Augmentation(noise_snr_db=(40, 40), noise_prob=1.0))
    loud = room_and_noise(m, np.random.default_rng(0), Augmentation(noise_snr_db=(0, 0), noise_prob=1.0))
    # the clip's mean power is about -33 dB (10 frames at -20 of 200): noise 40 dB below that
    # leaves the burst as it was and fills the silence (-80) to about -73; at 0 dB, to about -33
    assert np.abs(quiet[:, 50:60] - m[:, 50:60]).max() < 0.2
    assert quiet[:, :50].mean() > m[:, :50].mean() + 5
    assert loud[:, :50].mean() > quiet[:, :50].mean() + 30


def test_recipe_runs_groups_reruns_by_training_keys(tmp_path, capsys):
    """train/recipe_runs.py: a rerun under another name joins its recipe; means come from the cards."""
    from train import recipe_runs as mod

    def card(name, epochs, val, test, description="d"):
        m = {"val": {"uar": val}, "test": {"uar": test, "per_corpus": {"tess": {"uar": test}}}}
        p = tmp_path / f"{name}-{val}.card.json"
        p.write_text(
            json.dumps(
                {
                    "recipe": {"name": name, "description": description, "epochs": epochs},
                    "metrics": m,
                    "seconds": {"total": 120.0},
                    "command": f"sercli train {name}",
                }
            )
        )
        return str(p)

    files = [card("a", 45, 0.6, 0.7), card("b", 45, 0.4, 0.5, "other prose"), card("c", 30, 0.3, 0.3)]
    assert mod.main(files) == 0
    out = capsys.readouterr().out
    assert out.count("## ") == 2
    assert "| mean of 2 runs | 0.500 | 0.600 |" in out and "| range | 0.400 to 0.600 | 0.500 to 0.700 |" in out
    assert "| 2.0 |" in out and "mean of 1" not in out
    bad = tmp_path / "bad.card.json"
    bad.write_text("[]")
    with pytest.raises(SystemExit, match="bad.card.json: not a model card"):
        mod.main([str(bad)])


def test_loco_table_sets_each_held_out_corpus_against_its_in_corpus_uar(tmp_path, capsys):
    """train/loco_table.py: per corpus, held-out UAR and the gap to the in-corpus UAR, in points."""
    from train import loco_table as mod

    inside = tmp_path / "in.card.json"
    inside.write_text(
        json.dumps({"name": "m", "metrics": {"test": {"per_corpus": {"cremad": {"uar": 0.64}, "tess": {"uar": 0.5}}}}})
    )
    for corpus, uar in (("cremad", 0.50), ("tess", 0.55)):
        (tmp_path / f"lo-{corpus}.card.json").write_text(
            json.dumps(
                {
                    "recipe": {"protocol": f"loco:{corpus}"},
                    "metrics": {"test": {"uar": uar}},
                    "epochs": 8,
                    "seconds": {"total": 90.0},
                }
            )
        )
    mod.main(["--in-corpus", str(inside), "--row", f"r={tmp_path}/lo-*.card.json"])
    out = capsys.readouterr().out
    assert "| r | 50.0% / 14.0 | 55.0% / -5.0 | 52.5% | 4.5 | 1 of 2 | 8 | 3 |" in out
    # ensemble files (train/ensemble.py): the protocol at the top, no epochs or times
    (tmp_path / "ens-in.json").write_text(
        json.dumps({"protocol": "speaker", "metrics": {"test": {"per_corpus_uar": {"cremad": 0.6, "tess": 0.7}}}})
    )
    (tmp_path / "ens-lo.json").write_text(json.dumps({"protocol": "loco:tess", "metrics": {"test": {"uar": 0.65}}}))
    mod.main(["--in-corpus", str(tmp_path / "ens-in.json"), "--row", f"e={tmp_path}/ens-lo.json"])
    out = capsys.readouterr().out
    assert "`ens-in.json`, test UAR on each corpus's test speakers: cremad 60.0%, tess 70.0%." in out
    assert "| e | – | 65.0% / 5.0 | 65.0% | 5.0 | 1 of 1 | – | – |" in out
    (tmp_path / "sp.card.json").write_text(json.dumps({"recipe": {"protocol": "speaker"}}))
    with pytest.raises(SystemExit, match="not a leave-one-corpus-out card"):
        mod.main(["--in-corpus", str(inside), "--row", f"r={tmp_path}/sp.card.json"])
    (tmp_path / "broken.json").write_text("[1")
    with pytest.raises(SystemExit, match=r"broken.json: not a model card or ensemble file \(JSONDecodeError"):
        mod.main(["--in-corpus", str(tmp_path / "broken.json"), "--row", f"r={tmp_path}/lo-*.card.json"])
    with pytest.raises(SystemExit, match=r"missing.json: not a model card or ensemble file \(FileNotFoundError"):
        mod.main(["--in-corpus", str(tmp_path / "missing.json"), "--row", f"r={tmp_path}/lo-*.card.json"])
    (tmp_path / "nometrics.card.json").write_text(json.dumps({"recipe": {"protocol": "loco:tess"}}))
    with pytest.raises(SystemExit, match=r"nometrics.card.json: not a model card or ensemble file \(KeyError"):
        mod.main(["--in-corpus", str(inside), "--row", f"r={tmp_path}/nometrics.card.json"])


def test_train_and_evaluate_a_labs_own_corpus_split_by_its_speakers(tmp_path, rng):
    """Speakers outside speakers.csv (a CSV manifest of a lab's corpus) are split whole into
    train / val / test, and `evaluate --split test` scores the same test speakers."""
    import soundfile as sf

    from .conftest import speechlike

    data = tmp_path / "lab"
    rows = ["path,label,speaker"]
    for spk in range(20):
        for lab in ("angry", "happy", "sad", "neutral"):
            p = data / f"p{spk}" / f"{lab}.wav"
            p.parent.mkdir(parents=True, exist_ok=True)
            sf.write(p, speechlike(rng, 0.5), 16000)
            rows.append(f"{p.relative_to(data)},{lab},p{spk}")
    (data / "labels.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    # the default recipes predict six emotions: a corpus of four says which are missing, in one line
    r = CliRunner().invoke(
        cli,
        [
            "train",
            "--data",
            str(data),
            "--recipe",
            "svm",
            "--out",
            str(out),
            "--jobs",
            "1",
            "--cache",
            str(tmp_path / "c"),
        ],
    )
    assert r.exit_code == 1 and "no training clips of disgust, fear" in r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 2  # scan line + error
    recipe = tmp_path / "lab-svm.toml"
    recipe.write_text('extends = "svm"\nlabels = ["angry", "happy", "neutral", "sad"]\n')
    r = CliRunner().invoke(
        cli,
        [
            "train",
            "--data",
            str(data),
            "--recipe",
            str(recipe),
            "--out",
            str(out),
            "--jobs",
            "1",
            "--cache",
            str(tmp_path / "c"),
        ],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    card = json.loads((out / "lab-svm.card.json").read_text())
    d = card["data"]
    assert d["train"]["speakers"] and d["val"]["speakers"] and d["test"]["speakers"]
    assert d["train"]["speakers"] + d["val"]["speakers"] + d["test"]["speakers"] == 20
    r = CliRunner().invoke(
        cli,
        [
            "evaluate",
            "--data",
            str(data),
            "--model",
            str(out / "lab-svm.npz"),
            "--split",
            "test",
            "--format",
            "json",
            "--jobs",
            "1",
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["n"] == d["test"]["clips"] == 4 * d["test"]["speakers"]


def test_corpus_adversary_reverses_and_scales_the_gradient(rng):
    import torch

    from sercli.training.torch_loop import corpus_adversary

    torch.manual_seed(0)
    adv = corpus_adversary(6, 5, 3)
    e = torch.from_numpy(rng.normal(size=(4, 6)).astype(np.float32)).requires_grad_()
    adv(e, 0.25).square().sum().backward()
    reversed_grad = e.grad.clone()
    e.grad = None
    out = adv.net(e)  # the same classifier without the reversal
    assert torch.equal(adv(e, 0.25), out)  # forward is untouched
    out.square().sum().backward()
    assert torch.allclose(reversed_grad, -0.25 * e.grad)


def test_corpus_adversary_trains_and_is_not_saved(tiny_corpus, tmp_path):
    (tmp_path / "adv.toml").write_text('extends = "cnn"\ncorpus_adversary = 0.5\nchannels = [4, 8]\nhidden = 8\n')
    out = tmp_path / "out"
    r = CliRunner().invoke(
        cli,
        [
            "train",
            "--data",
            str(tiny_corpus),
            "--recipe",
            str(tmp_path / "adv.toml"),
            "--out",
            str(out),
            "--epochs",
            "2",
            "--jobs",
            "1",
            "--threads",
            "1",
            "--cache",
            str(tmp_path / "cache"),
        ],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    card = json.loads((out / "adv.card.json").read_text())
    acc = [row["corpus_accuracy"] for row in card["history"]]
    assert len(acc) == 2 and all(0.0 <= a <= 1.0 for a in acc)
    # the saved net is a plain EmotionCNN: it loads and its state holds no adversary
    import torch

    blob = torch.load(out / card["weights"], weights_only=True)
    assert not any("adversary" in k or k.startswith("net.") for k in blob["state_dict"])
    assert load_file(out / card["weights"]).kind == "cnn"


def test_corpus_adversary_needs_a_cnn(tiny_corpus, tmp_path):
    (tmp_path / "adv.toml").write_text('extends = "svm"\ncorpus_adversary = 0.5\n')
    r = CliRunner().invoke(
        cli,
        [
            "train",
            "--data",
            str(tiny_corpus),
            "--recipe",
            str(tmp_path / "adv.toml"),
            "--out",
            str(tmp_path / "out"),
            "--jobs",
            "1",
            "--cache",
            str(tmp_path / "cache"),
        ],
    )
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert r.stderr.strip().splitlines()[-1].startswith("Error: recipe adv: corpus_adversary needs model cnn")
    assert not (tmp_path / "cache").exists()


def test_corpus_adversary_needs_two_corpora(tiny_corpus, tmp_path):
    (tmp_path / "adv.toml").write_text('extends = "cnn"\ncorpus_adversary = 0.5\n')
    r = CliRunner().invoke(
        cli,
        [
            "train",
            "--data",
            str(tiny_corpus / "cremad"),
            "--recipe",
            str(tmp_path / "adv.toml"),
            "--out",
            str(tmp_path / "out"),
            "--epochs",
            "1",
            "--jobs",
            "1",
            "--cache",
            str(tmp_path / "cache"),
        ],
    )
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert r.stderr.strip().splitlines()[-1] == (
        "Error: recipe adv: corpus_adversary needs model cnn and training clips from two or more corpora (found cremad)"
    )
    assert not (tmp_path / "cache").exists()  # refused before any feature was extracted


def test_bundled_recipes_are_those_of_the_bundled_models_and_the_papers():
    """The installed recipes: every bundled model's (its card names it), their bases, and the
    seed paper's three models; experiments stay in the lab, under names of their own."""
    made = {json.loads(p.read_text())["recipe"]["name"] for p in (REPO / "weights").glob("*.card.json")}
    assert made | {"paper-svm", "seed-rnn", "seed-cnn"} <= set(BUNDLED)
    lab = {p.stem for p in LAB.glob("*.toml")}
    assert lab and not lab & set(BUNDLED)
    assert not [n for n in BUNDLED if "-loco" in n or n.startswith("cnn-attn")]
    for name in RECIPES:  # every recipe, bundled or lab, loads and checks
        assert load_recipe(recipe_arg(name)).name == name


def test_recipe_is_typed_and_frozen():
    import dataclasses

    r = load_recipe("cnn", {"time_pool": 3, "channels": [4, 8]})
    assert r.time_pool == 3 and r.channels == (4, 8) and r.mixup == 0.0  # a default filled in
    assert r.as_dict()["channels"] == [4, 8] and "mixup" not in r.as_dict()  # the card: keys as given
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.epochs = 2
    assert r.with_overrides(epochs=2).epochs == 2 and r.epochs == 30


@pytest.mark.parametrize(
    "text,value",
    [
        ("protocol=loco:cremad", "loco:cremad"),
        ("epochs=3", 3),
        ("lr=1e-3", 1e-3),
        ("fuse_summary=true", True),
        ('labels=["a", "b"]', ["a", "b"]),
        ('name="x y"', "x y"),
        ("description=two words", "two words"),
    ],
)
def test_set_values_are_toml_literals_or_else_strings(text, value):
    from sercli.training.recipe import parse_override

    assert parse_override(text) == (text.split("=")[0], value)


def test_set_overrides_recipe_keys_and_the_card_records_the_command(tiny_corpus, tmp_path, monkeypatch):
    out = tmp_path / "out"
    args = [
        "train",
        "--data",
        str(tiny_corpus),
        "--recipe",
        "svm",
        "--set",
        "protocol=loco:tess",
        "--set",
        "C=1",
        "--set",
        "description=svm, tess held out",
        "-o",
        str(out),
        "--jobs",
        "1",
        "--cache",
        str(tmp_path / "c"),
    ]
    monkeypatch.setattr("sys.argv", ["sercli"] + args)
    r = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    card = json.loads((out / "svm.card.json").read_text())
    assert card["recipe"]["protocol"] == "loco:tess" and card["recipe"]["C"] == 1
    assert card["description"] == "svm, tess held out"
    assert list(card["data"]["test"]["per_corpus"]) == ["tess"]
    assert "tess" not in card["data"]["train"]["per_corpus"]
    # the recorded command reruns as written: --set included, quoted where a shell needs it
    assert "--set protocol=loco:tess --set C=1 --set 'description=svm, tess held out'" in card["command"]


@pytest.mark.parametrize(
    "setting,message",
    [
        ("nope=1", "Error: recipe cnn: unknown key 'nope' (model cnn takes "),
        ("encoder=whisper-base", "Error: recipe cnn: encoder needs model whisper-head, not cnn"),
        ("time_pool=0", "Error: recipe cnn: time_pool must be a whole number >= 1, got 0"),
        (
            "protocol=elsewhere",
            'Error: recipe cnn: protocol must be "speaker", "paper" or "loco:<corpus>", got \'elsewhere\'',
        ),
    ],
)
def test_bad_set_is_a_one_line_error_naming_the_key(tiny_corpus, tmp_path, setting, message):
    r = CliRunner().invoke(
        cli, ["train", "--data", str(tiny_corpus), "--recipe", "cnn", "--set", setting, "--out", str(tmp_path / "out")]
    )
    assert r.exit_code == 1 and "Traceback" not in r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), r.stderr
    assert not (tmp_path / "out").exists()


def test_set_without_a_value_is_a_usage_error(tiny_corpus, tmp_path):
    r = CliRunner().invoke(
        cli,
        ["train", "--data", str(tiny_corpus), "--recipe", "cnn", "--set", "protocol", "--out", str(tmp_path / "out")],
    )
    assert r.exit_code == 2 and "--set protocol: expected KEY=VALUE" in r.output


def test_lab_recipe_extends_a_bundled_one_and_a_sibling(tmp_path):
    (tmp_path / "base.toml").write_text('extends = "cnn"\nepochs = 8\n')
    (tmp_path / "child.toml").write_text('extends = "base"\nmixup = 0.4\n')
    child = load_recipe(str(tmp_path / "child.toml"))
    assert (child.name, child.epochs, child.mixup, child.pooling) == ("child", 8, 0.4, "attention")
    with pytest.raises(RecipeError, match="no such recipe"):
        load_recipe("child")  # a lab recipe is no bundled name
