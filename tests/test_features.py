"""Our vectorised features against librosa's reference functions on the same signals."""

import numpy as np
import pytest

from sercli import features as F
from sercli.dataset import CNN_MELS, clip_features

from .conftest import speechlike


@pytest.fixture
def y(rng):
    return speechlike(rng, 2.0)


@pytest.mark.parametrize("n_mels", [40, 64, 128])
def test_mel_filterbank_matches_librosa(n_mels):
    import librosa

    ref = librosa.filters.mel(sr=16000, n_fft=512, n_mels=n_mels)
    assert F.mel_filterbank(n_mels=n_mels).shape == ref.shape
    np.testing.assert_allclose(F.mel_filterbank(n_mels=n_mels), ref, atol=1e-6)


def test_melspectrogram_matches_librosa(y):
    import librosa

    ref = librosa.feature.melspectrogram(y=y, sr=16000, n_fft=512, hop_length=160, win_length=400, n_mels=128)
    ours = F.melspectrogram(y)
    assert ours.shape == ref.shape == (128, 1 + len(y) // 160)
    assert np.abs(ours - ref).max() <= 1e-4 * ref.max()


def test_log_mel_and_mfcc_match_librosa(y):
    import librosa

    S = librosa.feature.melspectrogram(y=y, sr=16000, n_fft=512, hop_length=160, win_length=400, n_mels=128)
    ref_db = librosa.power_to_db(S, ref=1.0, top_db=80.0)
    np.testing.assert_allclose(F.log_mel(y), ref_db, atol=0.01)
    ref_mfcc = librosa.feature.mfcc(S=ref_db, n_mfcc=20)
    ours = F.mfcc(y)
    assert ours.shape == ref_mfcc.shape
    assert np.abs(ours - ref_mfcc).max() < 0.05


def test_paper_vectors_shapes(y):
    mel, mfcc = F.paper_vectors(y)
    assert mel.shape == (128,) and mfcc.shape == (20,)
    assert np.isfinite(mel).all() and np.isfinite(mfcc).all()


def test_summary_vector_shape_and_finite(y):
    s = F.summary_vector(y)
    assert s.shape == (F.SUMMARY_DIM,) and s.dtype == np.float32
    assert np.isfinite(s).all()
    # gain changes the level features, not the spectral shape features
    s2 = F.summary_vector(0.5 * y)
    assert not np.allclose(s, s2)


def test_pitch_track_finds_f0():
    sr = 16000
    t = np.arange(sr) / sr
    y = sum(np.sin(2 * np.pi * 180 * k * t) / k for k in range(1, 5)).astype(np.float32) * 0.3
    f0 = F.pitch_track(y)
    voiced = f0[f0 > 0]
    assert voiced.size > 0.8 * f0.size
    assert np.median(voiced) == pytest.approx(180, rel=0.03)
    assert (F.pitch_track(np.zeros(sr, np.float32)) == 0).all()


def test_clip_features_shapes(y):
    f = clip_features(y)
    assert f["logmel"].shape == (CNN_MELS, 1 + len(y) // 160)
    assert f["paper_mel"].shape == (128,) and f["paper_mfcc"].shape == (20,)
    assert f["summary"].shape == (F.SUMMARY_DIM,)


@pytest.mark.parametrize("n", [0, 1, 100, 511, 513])
def test_tiny_inputs_give_finite_features(n, rng):
    y = (0.1 * rng.standard_normal(n)).astype(np.float32)
    assert np.isfinite(F.log_mel(y)).all()
    assert np.isfinite(F.summary_vector(y)).all()
