"""`sercli plot`: a PNG of the expected pixel size for short and long recordings, errors."""

import numpy as np
import pytest
from click.testing import CliRunner

from sercli.cli import cli
from sercli.plots import CLIP_FIGSIZE, DPI, TIMELINE_FIGSIZE, plot_clip, png_size

from .conftest import speechlike

SHORT = (int(CLIP_FIGSIZE[0] * DPI), int(CLIP_FIGSIZE[1] * DPI))
LONG = (int(TIMELINE_FIGSIZE[0] * DPI), int(TIMELINE_FIGSIZE[1] * DPI))


def run(args, **kw):
    return CliRunner().invoke(cli, args, **kw)


def test_short_clip_default_out_in_current_folder(tmp_path, rng, write_wav, monkeypatch):
    p = write_wav("in/clip one.wav", speechlike(rng, 2.0, sr=44100), 44100)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    r = run(["plot", str(p)])
    assert r.exit_code == 0, r.output
    out = work / "clip one.png"
    assert png_size(out) == SHORT
    import matplotlib.image as mpimg

    img = mpimg.imread(out)
    assert img.shape[:2] == (SHORT[1], SHORT[0]) and img.std() > 0.05  # not a blank image
    assert "wrote clip one.png" in r.stderr


def test_long_recording_gets_segment_timeline(tmp_path, rng, write_wav, tiny_cnn):
    y = np.concatenate([speechlike(rng, 5.0), np.zeros(16000 * 5, np.float32), speechlike(rng, 3.0)])
    p = write_wav("long.wav", y)
    out = tmp_path / "figs" / "long-plot.png"
    out.parent.mkdir()
    r = run(["plot", str(p), "--out", str(out), "--model", str(tiny_cnn)])
    assert r.exit_code == 0, r.output
    assert png_size(out) == LONG
    info = plot_clip(p, tmp_path / "again.png", model=str(tiny_cnn))
    assert info["duration_s"] == pytest.approx(13.0) and (info["width"], info["height"]) == LONG
    segs = info["segments"]
    assert segs[0]["start_s"] == 0 and segs[-1]["end_s"] == pytest.approx(13.0, abs=0.01)
    assert any(s["silent"] for s in segs) and any(s["label"] for s in segs)
    assert info["label"] in {"angry", "disgust", "fear", "happy", "neutral", "sad"}
    assert not list((tmp_path / "figs").glob(".*tmp"))


def test_five_seconds_is_not_long(tmp_path, rng, write_wav):
    p = write_wav("five.wav", speechlike(rng, 5.0))
    info = plot_clip(p, tmp_path / "five.png", model="no-model-needed")
    assert info["segments"] is None and png_size(tmp_path / "five.png") == SHORT


def test_bad_files_one_line_exit_1(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF1234WAVEjunk")
    for f, status in ((bad, 1), (tmp_path / "missing.wav", 2)):  # a missing path: usage error
        r = run(["plot", str(f), "-o", str(tmp_path / "x.png")])
        assert r.exit_code == status
        assert len(r.stderr.strip().splitlines()) == 1 and str(f) in r.stderr
        assert "Traceback" not in r.stderr
    assert not (tmp_path / "x.png").exists()
    r = run(["plot", str(bad), "-o", str(tmp_path / "x.png"), "--debug"])
    assert r.exit_code == 1 and type(r.exception).__name__ == "AudioError"
