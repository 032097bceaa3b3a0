"""Reliability, round two (issue 17): inputs and events that lost data, hung, crashed or
clobbered a file. One test (or more) per item of the issue; each failed before its fix."""
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

from .conftest import speechlike

REPO = Path(__file__).resolve().parents[1]


def run(args, **kw):
    return CliRunner().invoke(cli, args, catch_exceptions=False, **kw)


def jsonl(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def one_line_error(r, *words):
    """A one-line message on stderr holding `words`, no traceback."""
    assert "Traceback" not in r.output, r.output
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


def zero_length_flac(path: Path, y: np.ndarray, sr: int = 16000) -> Path:
    """A valid FLAC whose STREAMINFO gives its length as 0 ("unknown", as a pipe writer leaves it)."""
    sf.write(path, y, sr, format="FLAC")
    b = bytearray(path.read_bytes())
    assert b[:4] == b"fLaC" and b[4] & 0x7F == 0          # STREAMINFO first
    b[21] &= 0xF0                                         # 36 bits of total samples, from bit 4 of byte 21
    b[22:26] = b"\0\0\0\0"
    path.write_bytes(bytes(b))
    return path


# --------------------------------------------------------------------------------------------
# 1. a header that does not know the length

def test_1_flac_of_unknown_length_is_read_to_its_real_end(tmp_path, rng):
    from sercli.audio import audio_info, load_audio
    p = zero_length_flac(tmp_path / "pipe.flac", speechlike(rng, 2.0))
    assert sf.info(str(p)).frames > 2 ** 62                 # what libsndfile makes of it
    assert audio_info(p).frames == 32000
    y, info = load_audio(p)
    assert len(y) == 32000 and info.frames == 32000


def test_1_flac_of_unknown_length_is_classified_in_bounded_memory(tmp_path, rng):
    """In a child capped at 1.5 GB of address space: it used to plan 3e14 windows and run out."""
    p = zero_length_flac(tmp_path / "pipe.flac", speechlike(rng, 9.0))
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (1536 << 20, 1536 << 20)); "
            "from sercli.cli import main; sys.argv = ['sercli'] + sys.argv[1:]; main()")
    r = subprocess.run([sys.executable, "-c", code, "classify", str(p), "-m", "svm", "-j", "1",
                        "--segments"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 0, r.stderr
    row = jsonl(r.stdout)[0]
    assert row["error"] is None and row["duration_s"] == 9.0
    assert [s["end_s"] for s in row["segments"]][-1] == 9.0 and len(row["segments"]) == 4


# --------------------------------------------------------------------------------------------
# 5. WAV codecs libsndfile decodes only as a stream

@pytest.mark.parametrize("subtype", ["GSM610", "G721_32", "NMS_ADPCM_16"])
def test_5_stream_only_wav_codecs_are_classified_and_plotted(tmp_path, rng, tiny_cnn, subtype):
    p = tmp_path / f"{subtype}.wav"
    sf.write(p, speechlike(rng, 1.5, sr=8000), 8000, subtype=subtype)
    r = run(["classify", str(p), "-m", str(tiny_cnn), "-j", "1"])
    assert r.exit_code == 0, r.output
    row = jsonl(r.stdout)[0]
    assert row["error"] is None and abs(row["duration_s"] - 1.5) < 0.05
    png = tmp_path / "x.png"
    r = run(["plot", str(p), "-o", str(png)])
    assert r.exit_code == 0, r.output
    assert png.read_bytes()[:4] == b"\x89PNG"


# --------------------------------------------------------------------------------------------
# Also: say why, not just "silent"; permission denied is not "no such file"

def test_also_all_inf_and_phase_inverted_stereo_say_why(tmp_path, rng, tiny_cnn):
    inf = tmp_path / "inf.wav"
    sf.write(inf, np.full(16000, np.inf, np.float32), 16000, subtype="FLOAT")
    y = speechlike(rng, 1.0)
    inv = tmp_path / "inverted.wav"
    sf.write(inv, np.stack([y, -y], axis=1), 16000, subtype="FLOAT")
    quiet = tmp_path / "quiet.wav"
    sf.write(quiet, np.zeros((16000, 2), np.float32), 16000)
    r = run(["classify", str(inf), str(inv), str(quiet), "-m", str(tiny_cnn), "-j", "1"])
    rows = jsonl(r.stdout)
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert rows[0]["error"] == f"{inf}: no finite samples: every sample is NaN or infinite"
    assert rows[1]["error"].startswith(f"{inv}: silent once its 2 channels are mixed to mono: they cancel")
    assert rows[2]["error"] == f"{quiet}: silent: no window louder than -60 dBFS"


def test_also_permission_denied_is_not_no_such_file(tmp_path, rng, tiny_cnn, monkeypatch):
    """Root reads anything, so the refusal is simulated where the CLI looks the path up."""
    p = tmp_path / "locked" / "x.wav"
    p.parent.mkdir()
    sf.write(p, speechlike(rng, 1.0), 16000)
    real = os.lstat

    def lstat(path, *a, **kw):
        if os.fspath(path) == str(p):
            raise PermissionError(13, "Permission denied", str(p))
        return real(path, *a, **kw)
    monkeypatch.setattr(os, "lstat", lstat)
    r = run(["classify", str(p), "-m", str(tiny_cnn), "-j", "1"])
    assert f"warning: {p}: permission denied" in r.stderr
    assert "no such file" not in r.stderr
