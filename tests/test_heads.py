"""The whisper-head model kind: training writes a calibrated, loadable head; classify and
evaluate run it; the encoder can run in the main process (--device); bad head files are refused."""

import hashlib
import json

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from sercli.calibration import calibration
from sercli.cli import cli
from sercli.corpora import Clip
from sercli.encoded import ENCODED_SETTINGS, _key, encode_clips
from sercli.errors import ModelError
from sercli.models import encoder_path, load_file, load_model, sha256_file
from sercli.runtime.classify import classify


@pytest.fixture(scope="module")
def trained_head(tiny_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("head")
    r = CliRunner().invoke(
        cli,
        [
            "train",
            "--data",
            str(tiny_corpus),
            "--recipe",
            "whisper-tiny",
            "-o",
            str(out),
            "--epochs",
            "2",
            "--jobs",
            "1",
            "--threads",
            "1",
            "--cache",
            str(out / "cache"),
        ],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    return out


def test_training_writes_a_calibrated_head_with_its_encoder(trained_head):
    card = json.loads((trained_head / "whisper-tiny.card.json").read_text())
    assert card["kind"] == "whisper-head"
    assert card["encoder"]["name"] == "whisper-tiny.en" and "MIT" in card["encoder"]["licence"]
    assert card["features"]["layers"] == [2, 3, 4]
    assert card["temperature"] > 0 and len(card["history"]) == 2
    assert 0 <= card["metrics"]["test"]["calibration"]["ece"] <= 1
    assert (trained_head / "whisper-tiny.reliability.png").stat().st_size > 1000
    md = (trained_head / "whisper-tiny.card.md").read_text()
    assert "## Encoder" in md and "## Calibration" in md
    # the encoder outputs were cached: every block up to the highest one read
    cached = list((trained_head / "cache" / "encoded").rglob("*.npy"))
    assert cached and np.load(cached[0]).shape[0] == 4


def test_head_classifies_and_evaluates(trained_head, tiny_corpus):
    path = trained_head / "whisper-tiny.pt"
    m = load_file(path)
    assert m.kind == "whisper-head" and m.encoder == "whisper-tiny.en"
    files = sorted(str(p) for p in tiny_corpus.rglob("*.wav"))[:4]
    rows = list(classify(files, model=m, jobs=1))
    assert all(r.error is None for r in rows)
    assert all(abs(sum(r.scores.values()) - 1) < 1e-3 for r in rows)
    r = CliRunner().invoke(
        cli,
        ["evaluate", "--data", str(tiny_corpus), "--model", str(path), "--split", "all", "--format", "json"],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["n"] == len(list(tiny_corpus.rglob("*.wav")))


def test_encoder_in_main_process_matches_the_workers(sample_dir):
    """--device cuda runs the encoder in the main process on batches padded to a common length;
    on the CPU the same path must give the workers' scores (padding masked out)."""
    files = sorted(str(p) for p in (sample_dir / "cremad").glob("*.wav"))[:8]
    base = list(classify(files, model="whisper-tiny", jobs=1))
    m = load_model("whisper-tiny")
    m.use_device("cpu")
    assert m.needs == ("whisper_mel",)
    batched = list(classify(files, model=m, jobs=1))
    for a, b in zip(base, batched):
        assert a.label == b.label
        assert max(abs(a.scores[k] - b.scores[k]) for k in a.scores) < 2e-3


def test_device_cuda_without_a_gpu_is_a_usage_error(tmp_path, write_wav, rng):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    wav = write_wav("a.wav", 0.1 * rng.standard_normal(16000).astype(np.float32))
    r = CliRunner().invoke(cli, ["classify", str(wav), "--device", "cuda"])
    assert r.exit_code == 2
    assert "no CUDA GPU" in r.output and "Traceback" not in r.output


def _rewrite(src, dst, edit):
    blob = torch.load(src, weights_only=True)
    edit(blob)
    torch.save(blob, dst)
    return dst


def test_head_with_wrong_label_count_is_refused(trained_head, tmp_path):
    bad = _rewrite(
        trained_head / "whisper-tiny.pt", tmp_path / "bad.pt", lambda b: b["config"].update(labels=["a", "b", "c"])
    )
    with pytest.raises(ModelError, match="3 labels for 6 outputs"):
        load_file(bad)


def test_head_trained_on_another_encoder_is_refused(trained_head, tmp_path):
    bad = _rewrite(
        trained_head / "whisper-tiny.pt", tmp_path / "bad.pt", lambda b: b["config"].update(encoder_sha256="0" * 64)
    )
    with pytest.raises(ModelError, match="another whisper-tiny.en encoder"):
        load_file(bad)


def test_head_reading_blocks_the_encoder_lacks_is_refused(trained_head, tmp_path):
    bad = _rewrite(trained_head / "whisper-tiny.pt", tmp_path / "bad.pt", lambda b: b["dims"].update(layers=[2, 3, 9]))
    with pytest.raises(ModelError, match="outside the encoder"):
        load_file(bad)


def test_head_of_an_unknown_encoder_precision_is_refused(trained_head, tmp_path):
    bad = _rewrite(trained_head / "whisper-tiny.pt", tmp_path / "bad.pt", lambda b: b["dims"].update(precision="fp16"))
    with pytest.raises(ModelError, match="encoder precision 'fp16' is not one of fp32, bf16, int8"):
        load_file(bad)
    r = CliRunner().invoke(cli, ["classify", "--model", str(bad), str(tmp_path)])
    assert r.exit_code != 0 and "fp16" in r.output and "Traceback" not in r.output


def test_bad_head_recipe_is_a_one_line_error(tiny_corpus, tmp_path):
    (tmp_path / "bad.toml").write_text('extends = "whisper-tiny"\nlayers = [2, 7]\n')
    r = CliRunner().invoke(
        cli, ["train", "--data", str(tiny_corpus), "--recipe", str(tmp_path / "bad.toml"), "-o", str(tmp_path / "out")]
    )
    assert r.exit_code != 0
    assert "layers must be a list of distinct encoder blocks from 1 to 4" in r.output
    assert "Traceback" not in r.output


def test_calibration_error_of_known_cases():
    p = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    # bin 0.9: both right (accuracy 1 vs 0.9); bin 0.6: one right (0.5 vs 0.6)
    cal = calibration(p, [0, 0, 0, 1])
    assert cal["ece"] == pytest.approx(0.5 * 0.1 + 0.5 * 0.1)
    assert [b["n"] for b in cal["table"]] == [2, 2]
    assert calibration(np.array([[1.0, 0.0]]), [0])["ece"] == 0


def test_info_names_the_encoder_and_its_licence():
    r = CliRunner().invoke(cli, ["info", "--model", "whisper-tiny"], catch_exceptions=False)
    assert r.exit_code == 0
    flat = " ".join(r.output.split())
    assert "encoder: whisper-tiny.en" in flat and "MIT" in flat and "calibration: temperature" in flat
    assert "encoder precision: bf16, trained and run at it" in flat
    r = CliRunner().invoke(cli, ["info", "--model", "whisper-tiny", "--format", "json"], catch_exceptions=False)
    card = json.loads(r.stdout)
    assert card["encoder"]["sha256"] == card["encoder"]["sha256"].lower() and len(card["encoder"]["sha256"]) == 64


def test_speed_copies_are_shorter_and_cached_apart_from_the_plain_outputs(tmp_path):
    t = np.arange(32000) / 16000
    y = (0.3 * np.sin(2 * np.pi * 220 * t * (1 + 0.2 * t))).astype(np.float32)
    sf.write(tmp_path / "a.wav", y, 16000)
    clip = Clip(str(tmp_path / "a.wav"), "x", "s1", "happy")
    enc, cache = encoder_path("whisper-tiny.en"), tmp_path / "cache"
    out = {
        sp: encode_clips([clip], enc, (1, 2), jobs=1, cache_dir=cache, progress=False, speed=sp)[1][0]
        for sp in (1.0, 1.25)
    }
    assert out[1.0].shape[:2] == (2, 50) and out[1.25].shape[:2] == (2, 40)  # 2 s and 1.6 s at 25 frames/s
    assert len(list(cache.rglob("*.npy"))) == 2
    # the plain key is the one written before speed copies existed, so old caches stay valid
    h = hashlib.sha256(repr((sorted(ENCODED_SETTINGS.items()), sha256_file(enc), (1, 2))).encode())
    h.update((tmp_path / "a.wav").read_bytes())
    assert (
        _key(clip.path, sha256_file(enc), (1, 2), 1.0)
        == h.hexdigest()
        != _key(clip.path, sha256_file(enc), (1, 2), 1.25)
    )
    again = encode_clips([clip], enc, (1, 2), jobs=1, cache_dir=cache, progress=False)[1][0]
    assert np.array_equal(again, out[1.0])


def _chirp_clip(tmp_path):
    t = np.arange(32000) / 16000
    y = (0.3 * np.sin(2 * np.pi * 220 * t * (1 + 0.2 * t))).astype(np.float32)
    sf.write(tmp_path / "a.wav", y, 16000)
    return Clip(str(tmp_path / "a.wav"), "x", "s1", "happy")


def test_bf16_encoder_outputs_are_close_to_float32_and_cached_apart(tmp_path, monkeypatch):
    import sercli.encoded as encoded

    clip, enc, cache = _chirp_clip(tmp_path), encoder_path("whisper-tiny.en"), tmp_path / "cache"

    def run(precision):
        return encode_clips([clip], enc, (1, 2), jobs=1, cache_dir=cache, progress=False, precision=precision)[1][0]

    fp32 = run("fp32").astype(np.float32)
    if encoded.native_bf16():
        bf16 = run("bf16").astype(np.float32)
        assert len(list(cache.rglob("*.npy"))) == 2
        assert not np.array_equal(bf16, fp32)  # the arithmetic did change
        # bf16 keeps 8 bits of mantissa: a few per cent of the largest value at most
        assert np.abs(bf16 - fp32).max() < 0.1 * np.abs(fp32).max()
    # a CPU without native bf16 runs a bf16 head's encoder in float32: the same vectors, the same key
    encoded.native_bf16.cache_clear()
    monkeypatch.setattr(encoded, "native_bf16", lambda: False)
    assert encoded.run_precision("bf16") == "fp32" and encoded.run_precision("int8") == "int8"
    y = np.asarray(sf.read(clip.path, dtype="float32")[0])
    assert np.array_equal(
        encoded.encode_signal(y, str(enc), (1, 2), precision="bf16"), encoded.encode_signal(y, str(enc), (1, 2))
    )
    before = set(cache.rglob("*.npy"))
    assert np.array_equal(run("bf16"), fp32.astype(np.float16))
    assert set(cache.rglob("*.npy")) == before
    with pytest.raises(ValueError, match="precision"):
        encoded.run_precision("fp16")


def test_precision_is_in_the_feature_key_and_the_recipe():
    from sercli.models import encoded_key, parse_encoded_key
    from sercli.training.recipe import RecipeError, build_recipe

    assert encoded_key("e.pt", [2, 3]) == "encoder:e.pt:2,3"  # float32 keys as before precisions
    assert parse_encoded_key("encoder:e.pt:2,3") == ("e.pt", (2, 3), "fp32")
    assert parse_encoded_key(encoded_key("e.pt", [4], "bf16")) == ("e.pt", (4,), "bf16")
    tiny = load_model("whisper-tiny")
    assert tiny.impl.dims.precision == "bf16" and tiny.needs == ("encoder:whisper-tiny.en-encoder.pt:2,3,4:bf16",)
    base = {"name": "x", "model": "whisper-head", "labels": ["a", "b"], "encoder": "whisper-tiny.en", "layers": [2]}
    assert build_recipe({**base, "precision": "int8"}).run_precision == "int8"
    # trained on float32 outputs, run (and its val and test speakers scored) in bf16
    mixed = build_recipe({**base, "precision": "fp32", "classify_precision": "bf16"})
    assert (mixed.precision, mixed.run_precision) == ("fp32", "bf16")
    assert load_model("whisper-base").needs == ("encoder:whisper-base-encoder.pt:3,4,5,6:bf16",)
    with pytest.raises(RecipeError, match="precision"):
        build_recipe({**base, "precision": "fp16"})


def test_fine_tuning_lab_pools_a_padded_batch_as_classify_pools_each_clip():
    """train.finetune_base / finetune_tiny train blocks on padded batches at 50 frames per
    second: their pooled vectors must be classify's (pool_frames to 25 per second, then
    pooled_stats), clip by clip, odd lengths and padding included."""
    from sercli.encoded import pool_frames
    from sercli.models.head import pooled_stats
    from train.finetune_base import Tuned

    g = torch.Generator().manual_seed(0)
    n = torch.tensor([7, 10, 1, 9])
    h = torch.randn(len(n), int(n.max()), 5, generator=g)
    got = Tuned.pooled(h, n).numpy()
    for j, k in enumerate(n.tolist()):
        want = pooled_stats(pool_frames(h[j, :k][None]).numpy())
        assert np.abs(got[j] - want).max() < 1e-5, j
