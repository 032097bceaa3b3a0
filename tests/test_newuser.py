"""What a new user trips on (issue 18): each test here failed before its fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from sercli.cli import cli

from .conftest import REPO, speechlike


def run(args, input=None):
    return CliRunner().invoke(cli, args, input=input, catch_exceptions=False)


# --- item 9: the suite writes only to temporary folders ---------------------------------------


def test_the_suite_feature_cache_is_a_temporary_folder(tmp_path_factory, tiny_corpus):
    """extract_dataset without a cache folder (as the ensemble tests did) writes under the
    session's temporary folder, not ~/.cache/sercli; so do subprocesses."""
    from sercli.corpora import scan
    from sercli.dataset import default_cache_dir, extract_dataset

    base = tmp_path_factory.getbasetemp().resolve()
    cache = default_cache_dir().resolve()
    assert cache.is_relative_to(base)
    extract_dataset(scan(tiny_corpus).clips[:2], jobs=1)
    assert any(cache.rglob("*")), "nothing was cached where the suite's cache should be"
    out = subprocess.run(
        [sys.executable, "-c", "from sercli.dataset import default_cache_dir as d; print(d())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(out).resolve().is_relative_to(base)


def test_hypothesis_keeps_nothing_in_the_checkout():
    from hypothesis.configuration import storage_directory

    where = Path(storage_directory("constants", intent_to_write=False).path).resolve()
    assert not where.is_relative_to(REPO) and not where.is_relative_to(Path.cwd().resolve())


# --- item 1: quiet real speech is classified; silence and steady low-level noise are not -------


def _first_sample_clip(sample_dir) -> Path:
    return sorted(sample_dir.rglob("*.wav"))[0]


def _at_level(y: np.ndarray, rms_dbfs: float) -> np.ndarray:
    return (y / np.sqrt(np.mean(np.square(y, dtype=np.float64))) * 10 ** (rms_dbfs / 20)).astype(np.float32)


@pytest.fixture
def quiet_and_silent(sample_dir, tmp_path):
    """One folder per label: a real clip as recorded and 42 dB quieter (RMS -66 dBFS, 16-bit, as
    a distant microphone gives it), digital silence, steady 16-bit noise and hum below -60 dBFS."""
    y, sr = sf.read(_first_sample_clip(sample_dir), dtype="float32")
    rng = np.random.default_rng(0)
    t = np.arange(3 * 16000) / 16000
    files = {
        "happy/loud.wav": (y, sr),
        "happy/quiet.wav": (_at_level(y, -66.0), sr),
        "sad/digital_silence.wav": (np.zeros(3 * 16000, np.float32), 16000),
        "sad/noise.wav": (_at_level(rng.standard_normal(3 * 16000), -68.0), 16000),
        "sad/hum.wav": (_at_level(np.sin(2 * np.pi * 50 * t), -62.0), 16000),
        "sad/dither.wav": (rng.integers(-1, 2, 3 * 16000) / 32768, 16000),
    }
    for rel, (x, rate) in files.items():
        p = tmp_path / "d" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(p, x, rate, subtype="PCM_16")
    return tmp_path / "d"


def test_quiet_real_speech_is_classified_silence_and_low_noise_are_refused(quiet_and_silent, tiny_cnn):
    r = run(["classify", str(quiet_and_silent), "-m", str(tiny_cnn), "--format", "jsonl", "-q"])
    rows = {Path(x["path"]).name: x for x in map(json.loads, r.stdout.splitlines())}
    assert rows["quiet.wav"]["error"] is None and rows["quiet.wav"]["label"], rows["quiet.wav"]
    assert rows["loud.wav"]["error"] is None
    for name in ("digital_silence.wav", "noise.wav", "hum.wav", "dither.wav"):
        assert rows[name]["label"] is None and ": silent: " in rows[name]["error"], rows[name]
    assert r.exit_code == 1


def test_silence_rule_by_level_and_activity():
    """The rule itself: speech-like audio at -66 dBFS RMS is sound; the same level of steady
    noise is not; digital silence and a DC offset (removed first) are not."""
    from sercli.features import remove_dc
    from sercli.silence import is_silent

    rng = np.random.default_rng(3)
    speech = speechlike(rng, 3.0)
    speech = np.concatenate([np.zeros(8000, np.float32), speech, np.zeros(8000, np.float32)])
    assert not is_silent(_at_level(speech, -66.0))
    assert not is_silent(_at_level(speech, -20.0))
    assert is_silent(_at_level(rng.standard_normal(48000), -66.0))
    assert is_silent(np.zeros(48000, np.float32))
    assert is_silent(remove_dc(np.full(48000, 0.5, np.float32)))


def test_classify_and_evaluate_refuse_the_same_clips(quiet_and_silent, tiny_cnn):
    c = run(["classify", str(quiet_and_silent), "-m", str(tiny_cnn), "--format", "jsonl", "-q"])
    refused = sorted(x["error"] for x in map(json.loads, c.stdout.splitlines()) if x["error"])
    e = run(
        [
            "evaluate",
            "--data",
            str(quiet_and_silent),
            "-m",
            str(tiny_cnn),
            "--split",
            "all",
            "--format",
            "json",
            "--jobs",
            "1",
        ]
    )
    assert e.exit_code == 0, e.output
    rep = json.loads(e.stdout)
    assert rep["n"] == 2 and rep["n_failed"] == 4
    assert sorted(rep["failed"]) == refused


# --- item 2: on a terminal, the progress bar ends before the table is drawn --------------------


def _on_a_terminal(args, cwd=None, timeout=120) -> str:
    """Run `python -m sercli ARGS` with stdout and stderr on a pseudo-terminal; its output."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))  # 50 x 160
    env = {**os.environ, "COLUMNS": "160", "LINES": "50", "TERM": "xterm"}
    p = subprocess.Popen(
        [sys.executable, "-m", "sercli", *args],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        cwd=cwd,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    chunks = []
    try:
        while True:
            r, _, _ = select.select([master], [], [], timeout)
            if not r:
                raise TimeoutError("no output")
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        p.wait(timeout=timeout)
    return b"".join(chunks).decode("utf-8", "replace")


def test_progress_bar_ends_before_the_table_on_a_terminal(tmp_path, rng, write_wav, tiny_cnn):
    for i in range(6):
        write_wav(f"rec/{i:02d}.wav", speechlike(rng, 1.0))
    out = _on_a_terminal(["classify", str(tmp_path / "rec"), "-m", str(tiny_cnn), "-j", "1"])
    top = out.index("\u250f")  # the table's top-left corner
    assert "classify:" in out[:top], out
    assert "classify:" not in out[top:], out  # the bar's last refresh came after the table
    line_start = out.rfind("\n", 0, top) + 1
    assert out[line_start:top].strip("\r ") == "", out  # the border starts a line of its own


# --- item 4: a missing model or command-line path is a usage error (exit 2, one line, no report) --


@pytest.mark.parametrize(
    "args",
    [
        ["classify", "{clip}", "--model", "xyz"],
        ["classify", "{clip}", "--model", "{tmp}/nope.pt"],
        ["classify", "{tmp}/nosuchdir/", "-o", "{tmp}/report.jsonl"],
        ["classify", "{clip}", "{tmp}/nosuchdir/", "-o", "{tmp}/report.jsonl"],
        ["evaluate", "--data", "{tmp}", "--model", "xyz"],
        ["info", "--model", "xyz"],
        ["plot", "{clip}", "--model", "xyz", "-o", "{tmp}/x.png"],
        ["plot", "{tmp}/nope.wav", "-o", "{tmp}/x.png"],
    ],
)
def test_missing_model_or_path_is_a_usage_error(args, tmp_path, rng, write_wav):
    clip = write_wav("clip.wav", speechlike(rng, 1.0))
    args = [a.format(clip=clip, tmp=tmp_path) for a in args]
    r = run(args)
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.stderr
    assert "warning" not in r.stderr and r.stdout == ""
    assert not (tmp_path / "report.jsonl").exists() and not (tmp_path / "x.png").exists()


def test_a_missing_path_from_stdin_stays_an_error_row(tmp_path, tiny_cnn):
    missing = str(tmp_path / "gone.wav")
    r = run(["classify", "-", "-m", str(tiny_cnn), "--format", "jsonl"], input=missing + "\n")
    assert r.exit_code == 1
    row = json.loads(r.stdout)
    assert row["path"] == missing and "no such file" in row["error"]
    assert "warning" not in r.stderr and r.stderr.count(missing) == 1  # one message, not two


# --- item 5: every refusal names the option or value to use --------------------------------------


def test_normalize_by_with_the_default_model_names_the_model_to_use(tmp_path, rng, write_wav):
    """The default model cannot take --normalize-by: the hint is the bundled model with the best
    val UAR on new speakers that can (was 'e.g. recipe cnn-spk', a training recipe); without
    --model, --normalize-by uses that model (next test)."""
    from sercli.models import DEFAULT_MODEL, bundled, group_models

    best = max((e for e in bundled() if e.group and e.test_set == "new speakers"), key=lambda e: e.val_uar)
    assert group_models()[0] == best.name and DEFAULT_MODEL not in group_models()
    assert {"cnn-spk", "cnn-spk-ens", "svm"} <= set(group_models())
    write_wav("d/a.wav", speechlike(rng, 1.0))
    r = run(["classify", str(tmp_path / "d"), "--model", DEFAULT_MODEL, "--normalize-by", "folder"])
    assert r.exit_code == 2
    (line,) = r.stderr.strip().splitlines()
    assert f"use --model {best.name}" in line and "recipe" not in line


def test_normalize_by_without_model_uses_the_best_group_model(tmp_path, rng, write_wav):
    from sercli.models import group_models

    for i in range(3):
        write_wav(f"d/a{i}.wav", speechlike(rng, 1.0))
    r = run(["classify", str(tmp_path / "d"), "--normalize-by", "folder", "--format", "jsonl"])
    assert r.exit_code == 0, r.stderr
    assert {json.loads(x)["model"] for x in r.stdout.splitlines()} == {group_models()[0]}
    assert f"using model {group_models()[0]}" in r.stderr


def test_table_to_a_file_names_the_formats_to_use(tmp_path, rng, write_wav):
    write_wav("d/a.wav", speechlike(rng, 1.0))
    r = run(["classify", str(tmp_path / "d"), "-o", str(tmp_path / "r.csv"), "--format", "table"])
    assert r.exit_code == 2 and "--format jsonl, json or csv" in r.stderr


def test_group_trained_model_without_normalize_by_is_told_the_option():
    from types import SimpleNamespace

    from sercli.runtime.grouping import group_setup

    said = []
    group_setup(SimpleNamespace(name="cnn-spk", group_trained=True), [], "none", warn=said.append)
    assert len(said) == 1 and "add --normalize-by speaker" in said[0]


# --- item 6: discoverability: sercli models, examples in --help, what was written ------------------


def test_models_lists_every_bundled_model_from_the_cards_without_torch():
    code = (
        "import sys, json\n"
        "from click.testing import CliRunner\n"
        "from sercli.cli import cli\n"
        "r = CliRunner().invoke(cli, ['models', '--format', 'json'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(json.dumps({'rows': json.loads(r.stdout), 'torch': 'torch' in sys.modules}))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["torch"] is False
    from sercli.models import REGISTRY, card_path, weights_dir

    rows = {r["name"]: r for r in out["rows"]}
    assert list(rows) == list(REGISTRY)
    speeds = json.loads((weights_dir() / "speed.json").read_text())["models"]
    for name, (fname, _) in REGISTRY.items():
        f = weights_dir() / fname
        card = json.loads((f if f.suffix == ".json" else card_path(f)).read_text())
        assert rows[name]["test_uar"] == round(card["metrics"]["test"]["uar"], 3)
        assert rows[name]["clips_per_s"] == (speeds.get(name) or {}).get("clips_per_s")
        assert rows[name]["use"]
    every = (REPO / "bench" / "results-models.md").read_text(encoding="utf-8")
    assert f"| `cnn` | each clip alone | 0.622 | **{rows['cnn']['clips_per_s']}** |" in every
    r = run(["models"])
    assert r.exit_code == 0 and all(name in r.stdout for name in REGISTRY)


def test_a_new_registry_entry_with_a_card_is_listed(tmp_path, monkeypatch):
    import shutil

    from sercli import models
    from sercli.models import catalog

    for f in models.weights_dir().glob("*.json"):
        shutil.copy(f, tmp_path / f.name)
    card = {
        "kind": "whisper-head",
        "labels": ["angry", "happy", "neutral", "sad"],
        "description": "A head on a Whisper encoder's hidden states. More text.",
        "protocol": "speaker",
        "metrics": {"test": {"uar": 0.7123}},
    }
    (tmp_path / "whisper-x.card.json").write_text(json.dumps(card))
    monkeypatch.setattr(catalog, "weights_dir", lambda: tmp_path)
    monkeypatch.setitem(models.REGISTRY, "whisper-x", ("whisper-x.pt", "0" * 64))
    rows = {r["name"]: r for r in json.loads(run(["models", "--format", "json"]).stdout)}
    assert rows["whisper-x"]["test_uar"] == 0.712 and rows["whisper-x"]["clips_per_s"] is None
    assert rows["whisper-x"]["use"] == "A head on a Whisper encoder's hidden states"
    assert rows["whisper-x"]["test_set"] == "new speakers"


def test_speed_file_is_what_the_bench_script_copies():
    """weights/speed.json holds only numbers bench/speeds.py takes from bench/results*.md: rerun
    `python -m bench.speeds` after a benchmark."""
    from bench import speeds as mod

    assert json.loads((REPO / "weights" / "speed.json").read_text()) == mod.document(), (
        "weights/speed.json is out of date: run python -m bench.speeds"
    )


def test_speeds_prefer_the_all_models_run_and_fill_in_from_single_model_runs(tmp_path):
    from bench import speeds as mod

    machine = "| CPU | X |\n| cores (os.cpu_count) | 2 |\n"
    (tmp_path / "results-models.md").write_text(
        machine + "| `cnn` | each clip alone | 0.622 | **100.5** | 7 s | 1 MB | 2.0x |\n", encoding="utf-8"
    )
    line = "| (1) `sercli classify` end to end, model `{}` (k), --jobs default | **{} clips/s** (1 s) | | |\n"
    (tmp_path / "results.md").write_text(machine + line.format("cnn", 276.3), encoding="utf-8")
    (tmp_path / "results-svm.md").write_text(machine + line.format("svm", 50.0), encoding="utf-8")
    got = mod.measured(tmp_path)
    assert got["cnn"] == {"clips_per_s": 100.5, "results": "bench/results-models.md", "machine": "X, 2 cores"}
    assert got["svm"]["clips_per_s"] == 50.0 and set(got) == {"cnn", "svm"}


@pytest.mark.parametrize("command", ["classify", "evaluate", "plot", "train", "info", "models"])
def test_every_command_help_has_examples(command):
    r = run([command, "--help"])
    assert r.exit_code == 0 and "Examples:" in r.stdout
    assert f"sercli {command}" in r.stdout.split("Examples:")[1]


def test_classify_says_what_it_wrote(tmp_path, rng, write_wav, tiny_cnn):
    write_wav("d/a.wav", speechlike(rng, 1.0))
    write_wav("d/b.wav", np.zeros(16000, np.float32))
    out = tmp_path / "report.csv"
    r = run(["classify", str(tmp_path / "d"), "-m", str(tiny_cnn), "-o", str(out)])
    assert r.exit_code == 1
    assert f"wrote {out}: 2 rows, 1 failed" in r.stderr.splitlines()[-1]


# --- item 7: -o/--output everywhere; the old --out still works, unlisted -------------------------


@pytest.mark.parametrize("command", ["classify", "evaluate", "plot", "train"])
def test_output_option_has_one_name(command):
    help_text = run([command, "--help"]).stdout
    assert "-o, --output" in help_text
    assert "--out " not in help_text and "--out," not in help_text


def test_plot_and_evaluate_take_output_and_the_old_out(tmp_path, rng, write_wav, tiny_corpus, tiny_cnn):
    clip = write_wav("c.wav", speechlike(rng, 1.0))
    for flag, name in (("-o", "a.png"), ("--output", "b.png"), ("--out", "c.png")):
        r = run(["plot", str(clip), flag, str(tmp_path / name)])
        assert r.exit_code == 0, r.output
        assert (tmp_path / name).is_file()
    r = run(["plot", str(clip), "-o", str(tmp_path / "x.png"), "--out", str(tmp_path / "y.png")])
    assert r.exit_code == 2
    for flag, name in (("-o", "e1"), ("--out", "e2")):
        r = run(
            [
                "evaluate",
                "--data",
                str(tiny_corpus),
                "-m",
                str(tiny_cnn),
                "--split",
                "all",
                "--cache",
                str(tmp_path / "cache"),
                "--jobs",
                "1",
                "--format",
                "json",
                flag,
                str(tmp_path / name),
            ]
        )
        assert r.exit_code == 0, r.output
        assert (tmp_path / name / "metrics.json").is_file()


# --- item 8: train writes to a fresh run folder and never overwrites weights without --force ----


def test_train_defaults_to_a_fresh_run_folder(tiny_corpus, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["train", "--data", str(tiny_corpus), "--recipe", "svm", "--jobs", "1", "--cache", str(tmp_path / "c")]
    r = run(args)
    assert r.exit_code == 0, r.output
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("svm-")
    assert (runs[0] / "svm.npz").is_file() and (runs[0] / "svm.card.json").is_file()
    assert not (tmp_path / "weights").exists()
    assert f"runs/{runs[0].name}" in r.stderr


def test_train_refuses_to_overwrite_weights_unless_forced(tiny_corpus, tmp_path):
    out = tmp_path / "weights"
    out.mkdir()
    (out / "cnn.pt").write_bytes(b"the bundled weights")
    # as from the repository root with an editable install: `sercli train --out weights`
    r = run(["train", "--data", str(tiny_corpus), "--recipe", "cnn", "--out", str(out)])
    assert r.exit_code == 2 and "--force" in r.stderr and str(out / "cnn.pt") in r.stderr
    assert (out / "cnn.pt").read_bytes() == b"the bundled weights"
    (out / "svm.npz").write_bytes(b"old")
    r = run(
        [
            "train",
            "--data",
            str(tiny_corpus),
            "--recipe",
            "svm",
            "-o",
            str(out),
            "--jobs",
            "1",
            "--cache",
            str(tmp_path / "c"),
            "--force",
        ]
    )
    assert r.exit_code == 0, r.output
    assert (out / "svm.npz").read_bytes() != b"old"


# --- item 3: --segments shows in the table, and CSV gets one row per window -------------------


@pytest.fixture
def long_and_short(tmp_path, rng, write_wav):
    y = np.concatenate([speechlike(rng, 6.0), np.zeros(16000 * 5, np.float32), speechlike(rng, 4.0)])
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "bad.wav").write_bytes(b"not audio")
    return [
        write_wav("d/long.wav", y),
        write_wav("d/short.wav", speechlike(rng, 2.0)),
        write_wav("d/silent.wav", np.zeros(16000, np.float32)),
        tmp_path / "d" / "bad.wav",
    ]


def test_segments_in_the_table(long_and_short, tiny_cnn, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = run(
        [
            "classify",
            *(os.path.relpath(p) for p in long_and_short),
            "-m",
            str(tiny_cnn),
            "--segments",
            "--window",
            "4",
            "--format",
            "table",
            "-q",
        ]
    )
    lines = r.stdout.splitlines()
    rows = [ln for ln in lines if "–" in ln and " s " in ln]
    assert len(rows) == 7 + 1 + 1, r.output  # 7 windows of the 15 s file, 1 of the short and silent ones
    assert sum("silent" in ln for ln in rows) >= 1
    at = [i for i, ln in enumerate(lines) if "long.wav" in ln][0]
    assert "0.0–4.0 s" in lines[at + 1]  # the windows follow their file


def test_segments_csv_is_long_form(long_and_short, tiny_cnn):
    import csv
    import io

    r = run(
        [
            "classify",
            *map(str, long_and_short),
            "-m",
            str(tiny_cnn),
            "--segments",
            "--top-k",
            "2",
            "--format",
            "csv",
            "-q",
        ]
    )
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert not any(v and v.lstrip().startswith(("[", "{")) for row in rows for v in row.values())  # no JSON cells
    longs = [x for x in rows if x["path"].endswith("long.wav")]
    assert len(longs) == 7 and [float(x["start_s"]) for x in longs] == [0, 2, 4, 6, 8, 10, 11]
    silent = [x for x in longs if x["silent"] == "1"]
    assert silent and all(x["label"] == "" for x in silent)
    assert len({x["file_label"] for x in longs}) == 1 and longs[0]["file_label"]
    voiced = [x for x in longs if x["silent"] == "0"]
    for lab in ("angry", "sad"):
        assert np.mean([float(x[f"score_{lab}"]) for x in voiced]) == pytest.approx(
            json.loads(
                run(["classify", str(long_and_short[0]), "-m", str(tiny_cnn), "-q", "--format", "jsonl"]).stdout
            )["scores"][lab],
            abs=1e-5,
        )
    assert {"top1_label", "top1_score", "top2_label", "top2_score"} <= set(rows[0])
    silent_file = [x for x in rows if x["path"].endswith("silent.wav")]
    assert len(silent_file) == 1 and "silent" in silent_file[0]["error"] and silent_file[0]["silent"] == "1"
    bad = [x for x in rows if x["path"].endswith("bad.wav")]
    assert len(bad) == 1 and bad[0]["error"] and bad[0]["start_s"] == ""  # no windows: one row
    shorts = [x for x in rows if x["path"].endswith("short.wav")]
    assert len(shorts) == 1 and float(shorts[0]["end_s"]) == pytest.approx(2.0, abs=0.01)


def test_top_k_csv_without_segments_has_columns_not_json(long_and_short, tiny_cnn):
    import csv
    import io

    r = run(["classify", str(long_and_short[1]), "-m", str(tiny_cnn), "--top-k", "3", "--format", "csv", "-q"])
    (row,) = csv.DictReader(io.StringIO(r.stdout))
    assert row["top1_label"] == row["label"] and float(row["top1_score"]) == float(row["confidence"])
    assert "top3_score" in row and "top_k" not in row


# --- item 10: plot what the selected model sees, scaled sensibly, with a readable timeline --------


def test_plot_shows_the_models_bands_and_mfccs_without_c0(tmp_path, rng, write_wav):
    from sercli.plots import plot_clip

    p = write_wav("c.wav", speechlike(rng, 2.0))
    cnn = plot_clip(p, tmp_path / "cnn.png", model="cnn")
    assert cnn["mel_bands"] == 64 and cnn["mfcc_coefficients"] is None  # the CNN sees 64 bands, no MFCC
    seed = plot_clip(p, tmp_path / "seed.png", model="seed-cnn")
    assert seed["mel_bands"] == 128 and seed["mfcc_coefficients"] == list(range(1, 20))
    # c0 (about -600 on speech at this level) would set the colour scale; without it the limit is
    # the other coefficients' range
    assert seed["mfcc_colour_limit"] < 200
    assert plot_clip(p, tmp_path / "svm.png", model="svm")["mel_bands"] == 40


def test_plot_timeline_columns_tile_the_recording(tmp_path, rng, write_wav, tiny_cnn):
    from sercli.plots import plot_clip

    y = np.concatenate([speechlike(rng, 6.0), np.zeros(16000 * 5, np.float32), speechlike(rng, 4.0)])
    info = plot_clip(write_wav("long.wav", y), tmp_path / "long.png", model=str(tiny_cnn))
    spans = info["timeline_spans"]
    assert len(spans) == len(info["segments"]) == 7
    assert spans[0][0] == 0 and spans[-1][1] == pytest.approx(15.0, abs=0.01)
    assert all(a[1] == pytest.approx(b[0]) for a, b in zip(spans, spans[1:]))  # no overlap, no gap


# --- item 11: installing on a stock machine; corpora from their official pages ------------------


def test_readme_says_how_to_get_the_cpu_build_and_the_corpora():
    import re

    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in text
    assert "GPU" in text.split("## Classify")[0] and "pytorch.org/get-started" in text
    for name, where in (
        ("RAVDESS", "zenodo.org/record/1188976"),
        ("TESS", "doi.org/10.5683/SP2/E8H2MF"),
        ("SAVEE", "kahlan.eps.surrey.ac.uk/savee"),
        ("CREMA-D", "github.com/CheyneyComputerScience/CREMA-D"),
    ):
        row = [ln for ln in text.splitlines() if ln.startswith(f"| {name}")]
        assert row and where in row[0] and re.search(r"CC BY|ODbL|free for research", row[0]), name
    # examples (shell blocks) name no folder of our machines
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        assert "/work/" not in block and "/root/" not in block and "/home/" not in block, block


def test_plot_of_a_whisper_head_shows_its_encoders_log_mel(tmp_path, rng, write_wav, monkeypatch):
    from sercli import models
    from sercli.models import loading
    from sercli.plots import plot_clip

    # a bundled head known by its card only (its needs are read from there, no weights loaded)
    card = {"kind": "whisper-head", "features": {"encoder": "whisper-tiny.en", "layers": [2, 3]}}
    (tmp_path / "whisper-x.card.json").write_text(json.dumps(card))
    monkeypatch.setattr(loading, "weights_dir", lambda: tmp_path)
    monkeypatch.setitem(models.REGISTRY, "whisper-x", ("whisper-x.pt", "0" * 64))
    info = plot_clip(write_wav("c.wav", speechlike(rng, 2.0)), tmp_path / "w.png", model="whisper-x")
    assert info["mel"] == "whisper" and info["mel_bands"] == 80 and info["mfcc_coefficients"] is None
