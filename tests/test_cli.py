"""`sercli classify` and `sercli info` through click's CliRunner, plus the installed console script."""

import csv
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from sercli.cli import cli

from .conftest import speechlike


@pytest.fixture
def clips(tmp_path, rng, write_wav):
    for i, sr in enumerate((16000, 44100, 8000)):
        write_wav(f"rec/s{i}/{i:02d}_take.wav", speechlike(rng, 1.2, sr=sr, f0=120 + 40 * i), sr)
    write_wav("rec/s0/notes.flac", speechlike(rng, 1.0), 16000)
    (tmp_path / "rec" / "readme.txt").write_text("not picked up: not an audio extension")
    return tmp_path / "rec"


def run(args, input=None):
    return CliRunner().invoke(cli, args, input=input, catch_exceptions=False)


def jsonl(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_piped_default_is_jsonl_in_sorted_order(clips, tiny_cnn):
    r = run(["classify", str(clips), "--model", str(tiny_cnn), "--quiet"])
    assert r.exit_code == 0, r.output
    rows = jsonl(r.stdout)
    assert [os.path.relpath(x["path"], clips) for x in rows] == [
        "s0/00_take.wav",
        "s0/notes.flac",
        "s1/01_take.wav",
        "s2/02_take.wav",
    ]
    for x in rows:
        assert set(x) >= {
            "path",
            "label",
            "confidence",
            "scores",
            "duration_s",
            "sample_rate",
            "channels",
            "model",
            "error",
        }
        assert x["error"] is None and x["label"] in x["scores"]
        assert len(x["scores"]) == 6 and abs(sum(x["scores"].values()) - 1) < 1e-4
        assert x["model"] == "tiny"
    assert [x["sample_rate"] for x in rows] == [16000, 16000, 44100, 8000]


def test_stdout_is_data_only_and_summary_on_stderr(clips, tiny_cnn):
    r = run(["classify", str(clips), "--model", str(tiny_cnn)])
    assert len(jsonl(r.stdout)) == 4
    assert "classified 4 of 4 files" in r.stderr


@pytest.mark.parametrize("fmt", ["json", "csv", "jsonl"])
def test_formats_and_output_file(fmt, clips, tiny_cnn, tmp_path):
    out = tmp_path / f"report.{fmt}"
    r = run(["classify", str(clips), "-m", str(tiny_cnn), "-o", str(out), "-q"])
    assert r.exit_code == 0 and r.stdout == ""
    text = out.read_text()
    if fmt == "json":
        rows = json.loads(text)
    elif fmt == "jsonl":
        rows = jsonl(text)
    else:
        rows = list(csv.DictReader(io.StringIO(text)))
        assert {f"score_{k}" for k in ("angry", "disgust", "fear", "happy", "neutral", "sad")} <= set(rows[0])
    assert len(rows) == 4
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_format_flag_to_stdout(clips, tiny_cnn):
    r = run(["classify", str(clips), "-m", str(tiny_cnn), "--format", "csv", "-q"])
    assert r.stdout.splitlines()[0].startswith("path,label,confidence")
    r = run(["classify", str(clips), "-m", str(tiny_cnn), "--format", "table", "-q"])
    assert "emotion" in r.stdout and "00_take.wav" in r.stdout


def test_exit_code_1_when_some_fail_and_rows_kept(clips, tiny_cnn, tmp_path):
    bad = clips / "s9" / "broken.wav"
    bad.parent.mkdir()
    bad.write_bytes(b"RIFF1234WAVEjunk")
    r = run(["classify", str(clips), "-m", str(tiny_cnn)])
    assert r.exit_code == 1
    rows = jsonl(r.stdout)
    assert len(rows) == 5
    err = [x for x in rows if x["error"]]
    assert len(err) == 1 and err[0]["path"] == str(bad) and err[0]["label"] is None
    assert "\n" not in err[0]["error"] and str(bad) in err[0]["error"]
    assert "Traceback" not in r.stderr and "1 failed" in r.stderr


def test_usage_errors_exit_2(clips, tmp_path):
    assert run(["classify"]).exit_code == 2
    assert run(["classify", str(clips), "--jobs", "0"]).exit_code == 2
    assert run(["classify", str(clips), "-o", str(tmp_path / "r.txt")]).exit_code == 2
    assert run(["classify", str(clips), "--resume"]).exit_code == 2
    assert run(["classify", str(clips), "--format", "xml"]).exit_code == 2


def test_unknown_model_is_one_line_usage_error(clips):
    r = run(["classify", str(clips), "--model", "nope"])
    assert r.exit_code == 2 and "unknown model" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "--model nope" in r.stderr and r.stdout == ""


def test_paths_from_stdin(clips, tiny_cnn):
    listing = "\n".join(str(p) for p in sorted(clips.rglob("*.wav"))) + "\n"
    r = run(["classify", "-", "-m", str(tiny_cnn), "-q"], input=listing)
    assert [x["path"] for x in jsonl(r.stdout)] == listing.split()


def test_no_recursive_and_ext(clips, tiny_cnn):
    r = run(["classify", str(clips / "s0"), "-m", str(tiny_cnn), "-q", "--ext", "flac"])
    assert [os.path.basename(x["path"]) for x in jsonl(r.stdout)] == ["notes.flac"]
    r = run(["classify", str(clips), "-m", str(tiny_cnn), "-q", "--no-recursive"])
    assert jsonl(r.stdout) == []


def test_jobs_do_not_change_output(clips, tiny_cnn):
    a = run(["classify", str(clips), "-m", str(tiny_cnn), "-q", "--jobs", "1"]).stdout
    b = run(["classify", str(clips), "-m", str(tiny_cnn), "-q", "--jobs", "2"]).stdout
    assert a == b and a


def test_top_k_and_segments_for_long_recording(tmp_path, rng, write_wav, tiny_cnn):
    y = np.concatenate([speechlike(rng, 6.0), np.zeros(16000 * 3, np.float32), speechlike(rng, 4.0)])
    p = write_wav("long.wav", y)
    r = run(["classify", str(p), "-m", str(tiny_cnn), "-q", "--segments", "--top-k", "2", "--window", "2"])
    row = jsonl(r.stdout)[0]
    segs = row["segments"]
    assert segs[0]["start_s"] == 0 and segs[-1]["end_s"] == pytest.approx(13.0, abs=0.01)
    assert all(b["start_s"] == pytest.approx(a["start_s"] + 1.0) for a, b in zip(segs, segs[1:-1]))
    assert any(s["silent"] and s["label"] is None for s in segs)
    voiced = [s for s in segs if not s["silent"]]
    mean = {k: np.mean([s["scores"][k] for s in voiced]) for k in row["scores"]}
    assert row["scores"] == pytest.approx(mean, abs=1e-5)
    assert [d["label"] for d in row["top_k"]] == sorted(mean, key=lambda k: -mean[k])[:2]


def test_silent_and_too_short_are_reported_not_classified(tmp_path, write_wav, tiny_cnn):
    write_wav("d/silent.wav", np.zeros(16000, np.float32))
    write_wav("d/short.wav", np.full(800, 0.1, np.float32))
    r = run(["classify", str(tmp_path / "d"), "-m", str(tiny_cnn), "-q"])
    rows = {os.path.basename(x["path"]): x for x in jsonl(r.stdout)}
    assert r.exit_code == 1
    assert rows["silent.wav"]["label"] is None and "silent" in rows["silent.wav"]["error"]
    assert rows["short.wav"]["label"] is None and "too short" in rows["short.wav"]["error"]


def test_info_json():
    r = run(["info", "--model", "svm", "--format", "json"])
    card = json.loads(r.stdout)
    assert card["labels"] == ["angry", "disgust", "fear", "happy", "neutral", "sad"]
    assert len(card["sha256"]) == 64 and "test" in card["metrics"]
    assert "non-commercial" in card["licence"]
    r = run(["info", "--model", "svm"])
    assert r.exit_code == 0 and "UAR" in r.stdout


def test_info_ensemble_lists_members_and_which_run_per_clip():
    r = run(["info", "--model", "cnn-spk-ens"])
    members = [line for line in r.stdout.splitlines() if line.startswith("member: ")]
    assert r.exit_code == 0 and len(members) == 4
    assert [("each clip alone" in m) for m in members] == [True, False, False, False]  # cnn first


def test_python_api(clips, tiny_cnn):
    import sercli

    r = sercli.classify_file(clips / "s0" / "00_take.wav", model=str(tiny_cnn))
    assert r.ok and r.label in r.scores and r.sample_rate == 16000
    rs = list(sercli.classify(sorted(clips.rglob("*.wav")), model=str(tiny_cnn), jobs=1))
    assert len(rs) == 3 and all(isinstance(x, sercli.ClipResult) for x in rs)


def test_help_does_not_import_heavy_modules():
    code = (
        "import sys; from sercli.cli import cli\n"
        "try:\n    cli(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'librosa', 'numpy', 'sklearn', 'pandas') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out


def test_console_script_pipes_jsonl(clips, tiny_cnn):
    exe = os.path.join(os.path.dirname(sys.executable), "sercli")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "sercli"]
    p = subprocess.run(cmd + ["classify", str(clips), "--model", str(tiny_cnn)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert len(jsonl(p.stdout)) == 4
    p = subprocess.run(
        cmd + ["classify", str(clips / "nope.wav"), "--model", str(tiny_cnn)], capture_output=True, text=True
    )
    assert p.returncode == 2 and "Traceback" not in p.stderr  # a missing path: usage error
    (clips / "bad.wav").write_bytes(b"RIFF1234WAVEjunk")
    p = subprocess.run(
        cmd + ["classify", str(clips / "bad.wav"), "--model", str(tiny_cnn)], capture_output=True, text=True
    )
    assert p.returncode == 1 and "Traceback" not in p.stderr


def test_only_the_cli_package_imports_click():
    import ast
    from pathlib import Path

    import sercli

    root = Path(sercli.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        if path.relative_to(root).parts[0] == "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            if any(n == "click" or n.startswith("click.") for n in names):
                offenders.append(str(path.relative_to(root)))
    assert offenders == []
