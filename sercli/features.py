"""Feature extraction, vectorised in numpy (no numba, no per-frame Python loops).

The mel filterbank is librosa's (Slaney scale and normalisation), rebuilt here so that the
classify path never imports librosa; tests bound the difference to librosa's reference
functions. All functions take 16 kHz mono float32 audio of shape (n,).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

# scipy's pocketfft vectorises across rows and keeps float32: 1.5-3x faster than numpy.fft here
import scipy.fft as _fft

from .constants import FMAX, FMIN, HOP_LENGTH, N_FFT, N_MELS, N_MFCC, SAMPLE_RATE, TOP_DB, WIN_LENGTH


def _hz_to_mel(f):
    f = np.asarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mels)


def _mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@lru_cache(maxsize=8)
def mel_filterbank(
    *, sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS, fmin: float = FMIN, fmax: float = FMAX
) -> np.ndarray:
    """Slaney-normalised triangular mel filters, shape (n_mels, n_fft // 2 + 1), float32.

    Matches librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax).
    """
    fftfreqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)


@lru_cache(maxsize=4)
def _window(win_length: int, n_fft: int) -> np.ndarray:
    # periodic Hann, centred in n_fft as librosa pads it
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win_length) / win_length)
    left = (n_fft - win_length) // 2
    out = np.zeros(n_fft, dtype=np.float32)
    out[left : left + win_length] = w
    return out


#: Sample values are clipped to this (120 dB above full scale): a corrupt float file can hold
#: values up to 3e38, whose squares overflow float32 and would make every feature NaN.
MAX_ABS = 1e6


def as_signal(y: np.ndarray) -> np.ndarray:
    """(n,) float32 that every feature can take: NaN/Inf become 0, |values| <= MAX_ABS."""
    y = np.asarray(y, dtype=np.float32)
    if y.size and not (np.isfinite(y).all() and float(np.abs(y).max()) <= MAX_ABS):
        y = np.clip(np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0), -MAX_ABS, MAX_ABS)
    return y


def remove_dc(y: np.ndarray) -> np.ndarray:
    """`y` minus its mean (float32). A DC offset is not sound, but it would dominate the lowest
    mel band, the zero-crossing rate and the level, and make a silent clip look loud."""
    y = as_signal(y)
    if not y.size:
        return y
    return (y - np.float32(y.mean(dtype=np.float64))).astype(np.float32, copy=False)


def power_spectrogram(
    y: np.ndarray, *, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH, win_length: int = WIN_LENGTH
) -> np.ndarray:
    """|STFT|^2 with centred frames and zero padding; (n,) -> (n_fft // 2 + 1, n_frames)."""
    y = as_signal(y)
    pad = n_fft // 2
    y = np.pad(y, (pad, pad))
    if y.size < n_fft:
        y = np.pad(y, (0, n_fft - y.size))
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop_length]
    spec = _fft.rfft(frames * _window(win_length, n_fft), axis=1, overwrite_x=True)
    return (spec.real**2 + spec.imag**2).astype(np.float32, copy=False).T


def power_to_db(S: np.ndarray, *, top_db: float | None = TOP_DB, amin: float = 1e-10) -> np.ndarray:
    """10 log10(S) with ref 1.0, clipped to `top_db` below the maximum (librosa's default)."""
    db = 10.0 * np.log10(np.maximum(S, amin))
    if top_db is not None and db.size:
        db = np.maximum(db, db.max() - top_db)
    return db.astype(np.float32)


def melspectrogram(y: np.ndarray, *, n_mels: int = N_MELS, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Mel power spectrogram; (n,) -> (n_mels, n_frames)."""
    return mel_filterbank(sr=sr, n_mels=n_mels) @ power_spectrogram(y)


def log_mel(y: np.ndarray, *, n_mels: int = N_MELS, top_db: float | None = TOP_DB) -> np.ndarray:
    """Log-mel spectrogram in dB; (n,) -> (n_mels, n_frames), float32."""
    return power_to_db(melspectrogram(y, n_mels=n_mels), top_db=top_db)


@lru_cache(maxsize=4)
def _dct_matrix(n_mfcc: int, n_mels: int) -> np.ndarray:
    # orthonormal DCT-II, as scipy.fft.dct(norm="ortho") used by librosa.feature.mfcc
    k = np.arange(n_mfcc)[:, None]
    n = np.arange(n_mels)[None, :]
    m = np.cos(np.pi / n_mels * (n + 0.5) * k) * np.sqrt(2.0 / n_mels)
    m[0] /= np.sqrt(2.0)
    return m.astype(np.float32)


def mfcc_from_log_mel(S_db: np.ndarray, *, n_mfcc: int = N_MFCC) -> np.ndarray:
    """(n_mels, n_frames) log-mel in dB -> (n_mfcc, n_frames) MFCCs."""
    return _dct_matrix(n_mfcc, S_db.shape[0]) @ S_db


def mfcc(y: np.ndarray, *, n_mfcc: int = N_MFCC, n_mels: int = N_MELS) -> np.ndarray:
    """MFCCs as librosa.feature.mfcc on the same mel settings; (n,) -> (n_mfcc, n_frames)."""
    return mfcc_from_log_mel(log_mel(y, n_mels=n_mels), n_mfcc=n_mfcc)


def paper_vectors(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The seed paper's inputs: time-means of 128-band log-mel and of 20 MFCCs.

    Returns (mel, mfcc) with shapes (128,) and (20,).
    """
    S_db = log_mel(y, n_mels=N_MELS)
    return S_db.mean(axis=1), mfcc_from_log_mel(S_db).mean(axis=1)


def _deltas(x: np.ndarray) -> np.ndarray:
    # first difference along time, same width (edge repeated)
    if x.shape[1] < 2:
        return np.zeros_like(x)
    return np.diff(x, axis=1, prepend=x[:, :1])


def pitch_track(
    y: np.ndarray, *, fmin: float = 60.0, fmax: float = 400.0, frame_length: int = 640, hop_length: int = HOP_LENGTH
) -> np.ndarray:
    """F0 per frame in Hz by normalised autocorrelation, 0 where unvoiced; (n,) -> (n_frames,)."""
    y = as_signal(y)
    if y.size < frame_length:
        y = np.pad(y, (0, frame_length - y.size))
    frames = np.lib.stride_tricks.sliding_window_view(y, frame_length)[::hop_length]
    frames = frames - frames.mean(axis=1, keepdims=True)
    lo, hi = int(SAMPLE_RATE / fmax), int(SAMPLE_RATE / fmin)
    f0 = np.zeros(len(frames), np.float32)
    # lag-0 autocorrelation is the frame energy; frames 30 dB below the loudest are unvoiced
    # whatever their autocorrelation, so only the loud ones need the FFTs (speech clips are
    # often a third silence)
    energy = np.einsum("ij,ij->i", frames, frames) + 1e-9
    loud = np.flatnonzero(energy > (energy.max() * 1e-3))
    if not loud.size:
        return f0
    # lags 0..hi of the linear autocorrelation need an FFT of frame_length + hi points at least;
    # a power of two (1024 for the defaults) is several times faster than 2 * frame_length
    nfft = 1 << (frame_length + min(hi, frame_length) - 1).bit_length()
    spec = _fft.rfft(frames[loud], n=nfft, axis=1, overwrite_x=True)  # float32 in, complex64 out
    ac = _fft.irfft(spec.real**2 + spec.imag**2, n=nfft, axis=1, overwrite_x=True)
    seg = ac[:, lo : min(hi, frame_length)] / (ac[:, :1] + 1e-9)
    lag = seg.argmax(axis=1)
    peak = seg[np.arange(len(seg)), lag]
    f0[loud] = np.where(peak > 0.45, SAMPLE_RATE / (lag + lo), 0.0)
    return f0


SUMMARY_DIM = 2 * 40 + 2 * N_MFCC * 2 + 2 * 6 + 4


def summary_vector(y: np.ndarray, P: np.ndarray | None = None) -> np.ndarray:
    """Utterance summary for the SVM, shape (SUMMARY_DIM,) float32.

    Mean and std over time of: 40-band log-mel, 20 MFCCs and their deltas, zero-crossing
    rate, spectral centroid, rolloff (85%), flatness, RMS (dB) and its delta; plus
    pitch mean, std and range over voiced frames, and the voiced fraction. `P` is
    power_spectrogram(y) when the caller has it already.
    """
    if P is None:
        P = power_spectrogram(y)  # (257, T)
    S_db = power_to_db(mel_filterbank(n_mels=40) @ P)
    mf = mfcc_from_log_mel(power_to_db(mel_filterbank(n_mels=N_MELS) @ P))
    dmf = _deltas(mf)
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE).astype(np.float32)[:, None]
    tot = P.sum(axis=0) + 1e-10
    centroid = (freqs * P).sum(axis=0) / tot / 1000.0
    cum = np.cumsum(P, axis=0)
    rolloff = freqs[np.argmax(cum >= 0.85 * cum[-1:], axis=0), 0] / 1000.0
    flatness = np.exp(np.log(P + 1e-10).mean(axis=0)) / (P.mean(axis=0) + 1e-10)
    rms_db = 10 * np.log10(P.mean(axis=0) + 1e-10)
    yp = np.pad(as_signal(y), (N_FFT // 2, N_FFT // 2))
    if yp.size < WIN_LENGTH:
        yp = np.pad(yp, (0, WIN_LENGTH - yp.size))
    fr = np.lib.stride_tricks.sliding_window_view(yp, WIN_LENGTH)[::HOP_LENGTH]
    zcr = (np.abs(np.diff(np.signbit(fr), axis=1)).mean(axis=1)).astype(np.float32)
    T = min(len(zcr), P.shape[1])
    frame_feats = np.stack(
        [zcr[:T], centroid[:T], rolloff[:T], flatness[:T], rms_db[:T] / 10.0, _deltas(rms_db[None, :T] / 10.0)[0]]
    )
    f0 = pitch_track(y)
    voiced = f0[f0 > 0]
    if voiced.size:
        lf = np.log2(voiced)
        pitch = [lf.mean() - 7.0, lf.std(), np.percentile(lf, 95) - np.percentile(lf, 5)]
    else:
        pitch = [0.0, 0.0, 0.0]
    out = np.concatenate(
        [
            S_db.mean(1),
            S_db.std(1),
            mf.mean(1),
            mf.std(1),
            dmf.mean(1),
            dmf.std(1),
            frame_feats.mean(1),
            frame_feats.std(1),
            pitch,
            [voiced.size / max(1, f0.size)],
        ]
    ).astype(np.float32)
    return np.nan_to_num(out)


#: Whisper's front end: 80 (or 128) mel bands of a 25 ms window every 10 ms at 16 kHz
WHISPER_N_FFT = 400
WHISPER_HOP = 160


def whisper_log_mel(y: np.ndarray, *, n_mels: int = 80) -> np.ndarray:
    """Whisper's log-mel spectrogram (openai/whisper audio.log_mel_spectrogram, without its
    padding to 30 s): periodic Hann, centred frames with reflect padding, the last frame
    dropped, Slaney mel filters, log10 floored 8 below the maximum, then (x + 4) / 4.

    (n,) 16 kHz float32 -> (n_mels, n // 160), float32.
    """
    y = as_signal(y)
    pad = WHISPER_N_FFT // 2
    y = np.pad(y, (pad, pad), mode="reflect" if y.size > pad else "constant")
    frames = np.lib.stride_tricks.sliding_window_view(y, WHISPER_N_FFT)[::WHISPER_HOP][:-1]
    spec = _fft.rfft(frames * _window(WHISPER_N_FFT, WHISPER_N_FFT), axis=1)
    power = (spec.real**2 + spec.imag**2).astype(np.float32)
    mel = mel_filterbank(sr=SAMPLE_RATE, n_fft=WHISPER_N_FFT, n_mels=n_mels) @ power.T
    log_spec = np.log10(np.maximum(mel, 1e-10))
    if log_spec.size:
        log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0).astype(np.float32)
