"""Reliability: every bad input gets a row (never a traceback), nothing is lost on an interrupt,
runs are reproducible, and model files cannot run code.

The big test classifies one folder of broken, odd and good inputs in a single run; property
tests drive the audio and feature functions with any length, amplitude and sample rate; the
signal tests run the real CLI in a subprocess and interrupt it mid-run.
"""

from __future__ import annotations

import glob
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sercli import discovery
from sercli.cli import cli
from sercli.dataset import clip_features
from sercli.errors import AudioError, display_path
from sercli.runtime import classify as runtime_classify
from sercli.runtime import windows

from .conftest import as_from_a_terminal, speechlike, write_many_clips

REPO = Path(__file__).resolve().parents[1]
PROPS = settings(
    max_examples=50,
    deadline=None,
    derandomize=True,  # same examples in CI every run
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def run(args, **kw):
    return CliRunner().invoke(cli, args, catch_exceptions=False, **kw)


def jsonl(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# --------------------------------------------------------------------------------------------
# One folder of every kind of bad, odd and good input

OK, FAIL, EITHER = True, False, None


def build_inputs(root: Path, rng: np.random.Generator) -> dict[str, tuple[bool | None, str]]:
    """Write the inputs; returns {path: (expected ok, reason the error must mention)}."""
    root.mkdir(parents=True, exist_ok=True)
    exp: dict[str, tuple[bool | None, str]] = {}

    def put(name, y, sr=16000, ok=OK, reason="", **kw):
        sf.write(root / name, y, sr, **kw)
        exp[str(root / name)] = (ok, reason)

    def raw(name, data: bytes, ok=FAIL, reason=""):
        (root / name).write_bytes(data)
        exp[str(root / name)] = (ok, reason)

    sp = lambda s=1.0, sr=16000, **k: speechlike(rng, s, sr=sr, **k)  # noqa: E731
    # good files, plain
    put("good.wav", sp(1.2))
    put("good.flac", sp(1.0), format="FLAC")
    # broken containers and non-audio
    raw("empty.wav", b"", reason="empty file (0 bytes)")
    put("header_only.wav", np.zeros(0, np.float32), subtype="PCM_16", ok=FAIL, reason="no audio samples")
    whole = root / "_whole.wav"
    sf.write(whole, sp(2.0), 16000, subtype="PCM_16")
    raw("truncated.wav", whole.read_bytes()[:32_023], ok=EITHER)  # cut mid-sample, header says 2 s
    whole.unlink()
    raw("random_bytes.wav", rng.integers(0, 256, 6000, dtype=np.uint8).tobytes(), reason="cannot decode audio")
    raw("text.wav", b"this is a text file, not audio\n" * 20, reason="text, not audio")
    (root / "folder.wav").mkdir()
    exp[str(root / "folder.wav")] = (FAIL, "is a directory")
    put("unreadable.wav", sp(1.0), ok=EITHER)  # root can still read it
    os.chmod(root / "unreadable.wav", 0)
    (root / "broken_link.wav").symlink_to(root / "nowhere.wav")
    exp[str(root / "broken_link.wav")] = (FAIL, "broken symbolic link")
    (root / "loop_a.wav").symlink_to(root / "loop_b.wav")
    (root / "loop_b.wav").symlink_to(root / "loop_a.wav")
    exp[str(root / "loop_a.wav")] = exp[str(root / "loop_b.wav")] = (FAIL, "symbolic link loop")
    os.mkfifo(root / "fifo.wav")  # would block a naive open()
    exp[str(root / "fifo.wav")] = (FAIL, "named pipe")
    # odd names
    for name in (
        "with space.wav",
        'quote\'s "double".wav',
        "new\nline.wav",
        "ünïcödé 感情.wav",
        "tab\tand [bold]markup.wav",
    ):
        put(name, sp(1.0))
    if sys.platform.startswith("linux"):  # a name that is not UTF-8
        bad = os.fsdecode(os.fsencode(str(root)) + b"/caf\xe9 latin-1.wav")
        sf.write(os.fsencode(bad), sp(1.0), 16000)
        exp[bad] = (OK, "")
    # rates, sample formats, channels, levels
    put("rate_8k.wav", sp(1.0, 8000), 8000)
    put("rate_96k.wav", sp(1.0, 96000), 96000)
    put("pcm_u8.wav", sp(1.0), subtype="PCM_U8")
    put("pcm_24.wav", sp(1.0), subtype="PCM_24")
    put("float_32.wav", sp(1.0), subtype="FLOAT")
    y = sp(1.0)
    y[1000:1400] = np.nan
    y[5000], y[6000] = np.inf, -np.inf
    put("nan_inf.wav", y, subtype="FLOAT")
    put("huge_floats.wav", sp(1.0) * np.float32(1e30), subtype="FLOAT")  # squares overflow float32
    put("clipped.wav", np.clip(sp(1.0, level=1.0) * 8, -1, 1))
    clean = sp(1.0, level=0.2)
    put("dc_clean.wav", clean, subtype="FLOAT")
    put("dc_offset.wav", clean + np.float32(0.6), subtype="FLOAT")  # same clip, +0.6 DC
    put("dc_only.wav", np.full(16000, 0.5, np.float32), ok=FAIL, reason="silent")
    put("six_channels.wav", np.stack([sp(1.0) for _ in range(6)], axis=1))
    put("too_short.wav", sp(0.05), ok=FAIL, reason="too short")
    put("silent.wav", np.zeros(16000, np.float32), ok=FAIL, reason="silent")
    put("rate_1hz.wav", np.zeros(8, np.float32), sr=1, ok=FAIL, reason="too low")
    # containers, and AIFF data under a .wav name
    put("clip.mp3", sp(1.0), format="MP3")
    put("clip.ogg", sp(1.0), format="OGG")
    put("clip.opus", sp(1.0), format="OGG", subtype="OPUS")
    put("aiff_data.wav", sp(1.0), format="AIFF")
    # two hours at 8 kHz: speech now and then, digital silence between (silent windows are cheap)
    with sf.SoundFile(root / "two_hours.wav", "w", 8000, 1, "PCM_16") as f:
        gap = np.zeros(8000 * 598, np.float32)
        for _ in range(12):
            f.write(sp(2.0, 8000))
            f.write(gap)
    exp[str(root / "two_hours.wav")] = (OK, "")
    return exp


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs") / "in"
    exp = build_inputs(root, np.random.default_rng(1234))
    yield root, exp
    os.chmod(root / "unreadable.wav", 0o644)


def check_rows(rows, expected, output, stderr):
    """Every path once, in order; each row a valid prediction or a one-line error naming the file."""
    assert [r["path"] for r in rows] == sorted(expected)
    assert "Traceback" not in output
    for r in rows:
        ok, reason = expected[r["path"]]
        if r["error"] is None:
            assert ok is not FAIL, f"{r['path']!r} should have failed ({reason})"
            assert r["label"] in r["scores"] and len(r["scores"]) == 6
            assert all(np.isfinite(v) for v in r["scores"].values())
            assert abs(sum(r["scores"].values()) - 1) < 1e-4
            assert r["confidence"] == max(r["scores"].values())
        else:
            assert ok is not OK, f"{r['path']!r} failed: {r['error']}"
            err = r["error"]
            assert r["label"] is None and r["scores"] is None
            assert "\n" not in err and "\r" not in err
            assert err.startswith(display_path(r["path"]) + ": "), err
            assert reason in err, (err, reason)
            assert f"error: {err}\n" in stderr


def test_every_bad_input_in_one_run(bad_dir, tiny_cnn, monkeypatch):
    root, exp = bad_dir
    streamed = []
    real = runtime_classify._stream_result

    def spy(m, a, *args, **kw):
        streamed.append(a.path)
        return real(m, a, *args, **kw)

    monkeypatch.setattr(runtime_classify, "_stream_result", spy)
    t0 = time.time()
    r = run(["classify", str(root), "--model", str(tiny_cnn), "--jobs", "2"])
    rows = jsonl(r.stdout)
    check_rows(rows, exp, r.output, r.stderr)
    assert r.exit_code == 1
    n_failed = sum(1 for x in rows if x["error"])
    assert f"classified {len(rows) - n_failed} of {len(rows)} files" in r.stderr
    by = {os.path.basename(x["path"]): x for x in rows}
    # the long file went through the streaming path, whole
    assert streamed == [str(root / "two_hours.wav")]
    assert by["two_hours.wav"]["duration_s"] == pytest.approx(7200, abs=1)
    # facts of the odd formats
    assert by["six_channels.wav"]["channels"] == 6
    assert by["rate_96k.wav"]["sample_rate"] == 96000 and by["rate_8k.wav"]["sample_rate"] == 8000
    # DC is removed before features: the offset clip scores as the clean one
    assert by["dc_offset.wav"]["scores"] == pytest.approx(by["dc_clean.wav"]["scores"], abs=1e-4)
    assert time.time() - t0 < 60


def test_only_good_files_exit_0_in_argument_order(bad_dir, tiny_cnn):
    root, exp = bad_dir
    good = [p for p, (ok, _) in exp.items() if ok is OK and "two_hours" not in p][::-1]
    r = run(["classify", *good, "--model", str(tiny_cnn)])
    assert r.exit_code == 0, r.output
    assert [x["path"] for x in jsonl(r.stdout)] == good
    assert all(x["error"] is None for x in jsonl(r.stdout))
    assert "Traceback" not in r.output and "error:" not in r.stderr


def test_same_inputs_give_byte_identical_jsonl(bad_dir, tiny_cnn):
    root, _ = bad_dir
    outs = [run(["classify", str(root), "-m", str(tiny_cnn), "-q", "--jobs", j]).stdout_bytes for j in ("1", "2", "2")]
    assert outs[0] == outs[1] == outs[2]
    assert len(outs[0].splitlines()) == len(os.listdir(root))
    assert not re.search(rb'"(time|elapsed|seconds|date)', outs[0])


def test_table_shows_names_verbatim(tmp_path, rng, tiny_cnn, monkeypatch):
    """Rich markup in a file name is shown, not interpreted (and "[/x]" does not crash it)."""
    d = tmp_path / "t" / "odd["
    d.mkdir(parents=True)
    sf.write(d / "red]x.wav", speechlike(rng, 1.0), 16000)  # path holds "[/red]"
    sf.write(d / "[bold]y.wav", speechlike(rng, 1.0), 16000)
    (d / "[i]bad.wav").write_bytes(bytes(range(256)) * 4)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    # --jobs 1: joblib's reused workers keep the cwd they started in (see the report)
    r = run(["classify", "t", "-m", str(tiny_cnn), "--format", "table", "--jobs", "1"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    flat = re.sub(r"[\s│┃|]+", "", r.stdout)
    for name in ("odd[/red]x.wav", "odd[/[bold]y.wav", "odd[/[i]bad.wav", "cannotdecodeaudio"):
        assert name in flat, (name, r.stdout)


def test_report_file_errors_are_one_line(bad_dir, tiny_cnn, tmp_path):
    root, _ = bad_dir
    r = run(["classify", str(root / "good.wav"), "-m", str(tiny_cnn), "-o", str(tmp_path / "no" / "r.jsonl")])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert r.stderr.count("\n") == 1 and "cannot write the report" in r.stderr


# --------------------------------------------------------------------------------------------
# Properties: any length, amplitude and sample rate -> finite features or a clear AudioError

NEEDS = ("logmel", "summary", "paper_mel", "paper_mfcc")


def assert_finite_features(y):
    from sercli import features as F

    feats = clip_features(y, NEEDS)
    for k, v in feats.items():
        assert np.isfinite(v).all(), k
    for f in (F.log_mel, F.mfcc, F.summary_vector, F.pitch_track):
        assert np.isfinite(f(y)).all(), f.__name__


amplitudes = st.one_of(st.just(0.0), st.floats(1e-30, 1e30), st.sampled_from([1.0, 1e38, np.nan, np.inf]))


@PROPS
@given(
    n=st.integers(0, 6000),
    sr=st.one_of(st.integers(1, 200_000), st.sampled_from([8000, 44100, 96000])),
    amp=amplitudes,
    channels=st.integers(1, 3),
    subtype=st.sampled_from(["PCM_16", "PCM_U8", "PCM_24", "FLOAT", "DOUBLE"]),
    seed=st.integers(0, 2**16),
)
def test_any_wav_decodes_to_finite_features_or_a_clear_error(tmp_path_factory, n, sr, amp, channels, subtype, seed):
    from sercli.audio import load_audio

    p = tmp_path_factory.mktemp("prop") / "x y.wav"
    x = np.random.default_rng(seed).standard_normal((n, channels)).astype(np.float32)
    with np.errstate(all="ignore"):
        x = x * np.float32(amp)
    sf.write(p, x, sr, subtype=subtype)
    try:
        y, info = load_audio(p)
    except AudioError as e:
        msg = str(e)
        assert msg.startswith(f"{p}: ") and "\n" not in msg and len(msg) > len(str(p)) + 4
        assert sr < 4000, msg
    else:
        assert y.dtype == np.float32 and y.ndim == 1 and np.isfinite(y).all()
        assert abs(len(y) - n * 16000 / sr) <= 2
        assert_finite_features(y)
    a = windows.analyse_file(str(p), NEEDS, 4.0, 0.5)
    if a.error:
        assert a.error.startswith(f"{p}: ") and "\n" not in a.error
    else:
        for w in a.windows:
            assert w.silent or all(np.isfinite(v).all() for v in w.feats.values())


@PROPS
@given(
    y=st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True), max_size=3000).map(
        lambda v: np.array(v, dtype=np.float32)
    )
)
def test_features_are_finite_for_any_samples(y):
    assert_finite_features(y)


@PROPS
@given(n=st.integers(0, 40_000), amp=amplitudes, seed=st.integers(0, 2**16))
def test_features_are_finite_for_any_length_and_amplitude(n, amp, seed):
    y = speechlike(np.random.default_rng(seed), n / 16000) if n else np.zeros(0, np.float32)
    with np.errstate(all="ignore"):
        y = (y * np.float32(amp)).astype(np.float32)
    assert_finite_features(y)


@PROPS
@given(n=st.integers(0, 5000), sr=st.integers(4000, 400_000), amp=amplitudes, seed=st.integers(0, 2**16))
def test_resample_and_mono_any_rate(n, sr, amp, seed):
    from sercli.audio import resample, to_mono

    x = np.random.default_rng(seed).standard_normal((n, 2)).astype(np.float32)
    with np.errstate(all="ignore"):
        x = x * np.float32(amp)
    y = resample(to_mono(x), orig_sr=sr)
    assert y.dtype == np.float32 and np.isfinite(y).all()
    assert abs(len(y) - n * 16000 / sr) <= 2
    assert_finite_features(y)


@PROPS
@given(p=st.text(min_size=1, max_size=30))
def test_display_path_is_one_line_and_reports_round_trip(p):
    from sercli.report import dumps

    shown = display_path(p)
    assert shown.isprintable() and "\n" not in shown
    assert shown == p or not p.isprintable()
    line = dumps({"path": p})
    line.encode("utf-8")
    assert json.loads(line)["path"] == p


def test_undecodable_name_round_trips_through_jsonl_report(bad_dir, tiny_cnn, tmp_path):
    root, exp = bad_dir
    bad = [p for p in exp if "latin-1" in p]
    if not bad:
        pytest.skip("needs a file system that takes non-UTF-8 names")
    out = tmp_path / "r.jsonl"
    r = run(["classify", bad[0], "-m", str(tiny_cnn), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert [x["path"] for x in jsonl(out.read_text("utf-8"))] == bad
    r = run(["classify", bad[0], "-m", str(tiny_cnn), "-o", str(tmp_path / "r.csv")])
    assert r.exit_code == 0 and "caf\\xe9" in (tmp_path / "r.csv").read_text("utf-8")


# --------------------------------------------------------------------------------------------
# Nothing lost: atomic reports, interrupts, --resume


def test_atomic_file_never_leaves_partial_report(tmp_path):
    from sercli.report import AtomicFile

    target = tmp_path / "r.jsonl"
    with pytest.raises(RuntimeError):
        with AtomicFile(target) as f:
            f.f.write('{"half": ')
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []
    with AtomicFile(target) as f:
        f.f.write("{}\n")
    assert target.read_text() == "{}\n" and os.listdir(tmp_path) == ["r.jsonl"]
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()  # not mkstemp's 0600


def _umask():
    m = os.umask(0o022)
    os.umask(m)
    return m


@pytest.fixture(scope="module")
def many_clips(tmp_path_factory):
    d = write_many_clips(tmp_path_factory.mktemp("many") / "clips", 160)
    (d / "zz_broken.wav").write_bytes(b"RIFF")
    return d


def _interrupt_run(clips, model, out, sig, jobs, group):
    """Start `sercli classify` in its own session, signal it after its first rows, wait."""
    cmd = [sys.executable, "-m", "sercli", "classify", str(clips), "-m", str(model), "-o", str(out), "-j", str(jobs)]
    p = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        cwd=REPO,
        preexec_fn=as_from_a_terminal,
    )
    try:
        deadline = time.time() + 60
        while time.time() < deadline and p.poll() is None:
            tmps = glob.glob(str(out.parent / f".{out.name}.*.tmp"))
            if tmps and Path(tmps[0]).read_text().count("\n") >= 1:
                break
            time.sleep(0.02)
        assert p.poll() is None, "run ended before it could be interrupted"
        (os.killpg if group else os.kill)(p.pid, sig)
        _, err = p.communicate(timeout=60)
    except BaseException:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise
    # no worker is left behind (joblib/loky workers are in the same session)
    for _ in range(100):
        try:
            os.killpg(p.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.killpg(p.pid, signal.SIGKILL)
        pytest.fail("worker processes outlived the interrupted run")
    return p.returncode, err


def _valid_jsonl(path):
    text = path.read_text("utf-8")
    assert text == "" or text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


@pytest.mark.parametrize(
    "sig,jobs,group",
    [
        (signal.SIGINT, 1, False),  # jobs 1: the interrupt lands in decoding, in this process
        (signal.SIGTERM, 2, False),
        (signal.SIGINT, 2, True),  # Ctrl-C: the whole process group, workers included
    ],
)
def test_interrupt_leaves_a_complete_report_then_resume_finishes_it(many_clips, tiny_cnn, tmp_path, sig, jobs, group):
    out = tmp_path / "out.jsonl"
    rc, err = _interrupt_run(many_clips, tiny_cnn, out, sig, jobs, group)
    assert rc == 128 + sig, err
    assert "Traceback" not in err and "Warning" not in err, err
    m = re.search(r"interrupted \((SIGINT|SIGTERM)\): (\d+) of (\d+) files done", err)
    assert m and m.group(1) == signal.Signals(sig).name, err
    rows = _valid_jsonl(out) if out.exists() else []
    assert int(m.group(2)) == len(rows) and int(m.group(3)) == 161
    assert 0 < len(rows) < 161
    assert not glob.glob(str(tmp_path / ".*.tmp"))
    # --resume does the rest; every path exactly once, in input order
    r = run(["classify", str(many_clips), "-m", str(tiny_cnn), "-o", str(out), "--resume"])
    assert r.exit_code == 1 and "Traceback" not in r.output  # zz_broken.wav fails
    assert f"resuming: {len(rows)} files already" in r.stderr
    assert f"classified {160 - len(rows)} of {161 - len(rows)} files" in r.stderr
    final = _valid_jsonl(out)
    assert final[: len(rows)] == rows
    assert [x["path"] for x in final] == sorted(str(p) for p in many_clips.iterdir())


def test_resume_skips_done_files_and_keeps_their_failures(bad_dir, tiny_cnn, tmp_path):
    root, exp = bad_dir
    good = sorted(p for p, (ok, _) in exp.items() if ok is OK and "two_hours" not in p)
    files = [str(root / "text.wav"), *good]  # one failure, then good files
    out = tmp_path / "r.jsonl"
    full = run(["classify", *files, "-m", str(tiny_cnn), "-o", str(out), "-q"])
    assert full.exit_code == 1
    lines = out.read_text("utf-8").splitlines(keepends=True)
    assert len(lines) == len(files) and json.loads(lines[0])["error"]
    out.write_text("".join(lines[:3]) + lines[3][:20], "utf-8")  # 3 done rows + a torn line
    r = run(["classify", *files, "-m", str(tiny_cnn), "-o", str(out), "--resume"])
    assert "resuming: 3 files already" in r.stderr
    assert f"classified {len(files) - 3} of {len(files) - 3} files" in r.stderr
    assert r.exit_code == 1 and "1 failed in the earlier run" in r.stderr  # it still counts
    assert out.read_text("utf-8") == "".join(lines)


# --------------------------------------------------------------------------------------------
# Safe models


@pytest.mark.parametrize("pin_hash", [False, True], ids=["hash-mismatch", "hash-ok-but-corrupt"])
def test_corrupt_bundled_default_warns_once_and_falls_back_to_svm(bad_dir, monkeypatch, tmp_path, pin_hash):
    from sercli import models

    root, _ = bad_dir
    w = tmp_path / "w"
    w.mkdir()
    default = models.REGISTRY[models.DEFAULT_MODEL][0]
    (w / default).write_bytes(b"PK\x03\x04 corrupted weights")
    for f in ("svm.npz", "svm.card.json"):
        (w / f).write_bytes((models.weights_dir() / f).read_bytes())
    monkeypatch.setattr(models.loading, "weights_dir", lambda: w)
    if pin_hash:
        monkeypatch.setitem(models.REGISTRY, models.DEFAULT_MODEL, (default, models.sha256_file(w / default)))
    r = run(["classify", str(root / "good.wav"), str(root / "good.flac")])
    assert r.exit_code == 0 and "Traceback" not in r.output
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, r.stderr
    assert str(w / default) in warnings[0] and "falling back to the 'svm' model" in warnings[0]
    assert ("does not match the pinned" if not pin_hash else "not a valid sercli model") in warnings[0]
    assert {x["model"] for x in jsonl(r.stdout)} == {"svm"}


class _Evil:
    marker = ""

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("kind", ["raw-pickle", "torch-zip"])
def test_model_file_with_pickled_code_is_refused(bad_dir, tmp_path, kind):
    import torch

    root, _ = bad_dir
    marker = tmp_path / "pwned"
    _Evil.marker = str(marker)
    evil = tmp_path / "evil.pt"
    if kind == "raw-pickle":
        evil.write_bytes(pickle.dumps(_Evil()))
    else:
        torch.save({"config": _Evil(), "dims": {}, "state_dict": {}}, evil)
    r = run(["classify", str(root / "good.wav"), "--model", str(evil)])
    assert r.exit_code == 1 and r.stdout == ""
    assert "Traceback" not in r.output and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith(f"Error: {evil}: ")
    assert ("refusing a pickle" if kind == "raw-pickle" else "not a valid sercli model") in r.stderr
    assert not marker.exists()


def test_worker_reads_relative_paths_from_the_callers_folder(tmp_path, rng, monkeypatch):
    """A reused worker process keeps the folder it started in: analyse_file takes the caller's."""
    (tmp_path / "d").mkdir()
    sf.write(tmp_path / "d" / "x.wav", speechlike(rng, 1.0), 16000)
    (tmp_path / "d" / "bad.wav").write_bytes(b"\x00\x01\x02junk" * 50)
    monkeypatch.chdir(REPO)
    a = windows.analyse_file("d/x.wav", ("logmel",), 4.0, 0.5, cwd=str(tmp_path))
    assert a.error is None and a.path == "d/x.wav" and len(a.windows) == 1
    b = windows.analyse_file("d/bad.wav", ("logmel",), 4.0, 0.5, cwd=str(tmp_path))
    assert b.error.startswith("d/bad.wav: cannot decode audio")


def test_collect_paths_follows_an_explicit_folder_link_but_no_loop_inside(tmp_path, rng):
    real = tmp_path / "real"
    real.mkdir()
    sf.write(real / "a.wav", speechlike(rng, 0.5), 16000)
    (real / "up").symlink_to(real)  # a loop, never followed in the walk
    (real / "up.wav").symlink_to(real)  # a folder link named like audio: a row
    (tmp_path / "link").symlink_to(real)
    warned = []
    got = discovery.collect_paths([str(tmp_path / "link")], warn=warned.append)
    assert got == [str(tmp_path / "link" / "a.wav"), str(tmp_path / "link" / "up.wav")]
    assert warned == []
