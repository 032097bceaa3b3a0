import numpy as np
import pytest
import soundfile as sf

from sercli.audio import audio_info, iter_blocks, load_audio, resample
from sercli.errors import AudioError

from .conftest import speechlike


@pytest.mark.parametrize("sr", [8000, 16000, 22050, 44100, 48000, 96000])
def test_any_rate_becomes_16k(sr, rng, write_wav):
    p = write_wav(f"a_{sr}.wav", speechlike(rng, 1.0, sr=sr), sr)
    y, info = load_audio(p)
    assert info.sample_rate == sr
    assert abs(len(y) - 16000) <= 2
    assert y.dtype == np.float32


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_sample_formats(subtype, rng, write_wav):
    x = speechlike(rng, 0.5)
    p = write_wav(f"x_{subtype}.wav", x, 16000, subtype=subtype)
    y, _ = load_audio(p)
    assert np.abs(y - x).max() < 0.02


def test_multichannel_is_averaged(rng, write_wav):
    x = speechlike(rng, 0.5)
    six = np.stack([x] * 3 + [-x * 0] * 3, axis=1)
    y, info = load_audio(write_wav("six.wav", six))
    assert info.channels == 6
    np.testing.assert_allclose(y, x / 2, atol=1e-4)


def test_nan_and_inf_become_zero(rng, write_wav):
    x = speechlike(rng, 0.5)
    x[100:200] = np.nan
    x[300] = np.inf
    y, _ = load_audio(write_wav("nan.wav", x, subtype="FLOAT"))
    assert np.isfinite(y).all()


@pytest.mark.parametrize("fmt,ext", [("FLAC", "flac"), ("OGG", "ogg"), ("AIFF", "wav"), ("MP3", "mp3")])
def test_container_formats_and_lying_extensions(fmt, ext, rng, tmp_path):
    x = speechlike(rng, 1.0)
    p = tmp_path / f"clip.{ext}"
    sf.write(p, x, 16000, format=fmt)
    y, info = load_audio(p)
    assert abs(len(y) - 16000) < 2000  # mp3 adds encoder padding


def test_iter_blocks_matches_whole_file(rng, write_wav):
    x = speechlike(rng, 3.0, sr=44100)
    p = write_wav("long.wav", x, 44100)
    whole, _ = load_audio(p)
    _, blocks = iter_blocks(p, block_seconds=0.7)
    streamed = np.concatenate(list(blocks))
    assert abs(len(streamed) - len(whole)) <= 2
    n = min(len(streamed), len(whole))
    assert np.abs(streamed[:n] - whole[:n]).max() < 1e-3


def test_resample_identity():
    x = np.arange(10, dtype=np.float32)
    assert resample(x, orig_sr=16000) is not None
    np.testing.assert_array_equal(resample(x, orig_sr=16000), x)


@pytest.mark.parametrize(
    "content,reason",
    [
        (b"", "empty file"),
        (b"hello, this is not audio\n", "text, not audio"),
        (b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00", "MP4/M4A"),
        (bytes(range(256)) * 8, "cannot decode audio"),
    ],
)
def test_bad_files_raise_one_line_errors(content, reason, tmp_path):
    p = tmp_path / "bad.wav"
    p.write_bytes(content)
    with pytest.raises(AudioError) as e:
        load_audio(p)
    msg = str(e.value)
    assert msg.startswith(str(p)) and reason in msg and "\n" not in msg


def test_directory_missing_and_broken_link(tmp_path):
    (tmp_path / "d.wav").mkdir()
    (tmp_path / "link.wav").symlink_to(tmp_path / "nowhere.wav")
    for name, reason in (("d.wav", "directory"), ("missing.wav", "no such file"), ("link.wav", "broken symbolic link")):
        with pytest.raises(AudioError, match=reason):
            audio_info(tmp_path / name)
