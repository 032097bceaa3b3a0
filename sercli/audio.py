"""Reading any audio libsndfile can decode as 16 kHz mono float32.

Short clips are read whole; long recordings are streamed in blocks so that memory stays
bounded whatever the length (`iter_blocks`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .constants import SAMPLE_RATE
from .errors import AudioError

# Containers libsndfile cannot decode, recognised by their first bytes, so that the error
# names the format instead of libsndfile's generic "Format not recognised".
_MAGIC = [
    (4, b"ftyp", "MP4/M4A/MOV container (AAC or video)"),
    (0, b"\x1a\x45\xdf\xa3", "Matroska/WebM container"),
    (0, b"RIFF", None),  # checked below: AVI is RIFF too
    (0, b"FLV", "FLV video"),
    (0, b"\x30\x26\xb2\x75", "ASF/WMA/WMV container"),
    (0, b"#!AMR", "AMR audio"),
    (0, b"\x00\x00\x01\xba", "MPEG program stream (video)"),
    (0, b"%PDF", "PDF document"),
    (0, b"PK\x03\x04", "ZIP archive"),
]


@dataclass(frozen=True)
class AudioInfo:
    """What a file holds, before any conversion."""
    path: str
    sample_rate: int
    channels: int
    frames: int
    format: str

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def sniff_format(path: str | os.PathLike) -> str | None:
    """Name a container libsndfile cannot read, from its magic bytes; None if unknown."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return None
    if not head:
        return None
    for offset, magic, name in _MAGIC:
        if head[offset:offset + len(magic)] == magic:
            if magic == b"RIFF":
                return "AVI video" if head[8:12] == b"AVI " else None
            return name
    try:
        head.decode("utf-8")
        if all(32 <= c < 127 or c in (9, 10, 13) for c in head):
            return "text, not audio"
    except UnicodeDecodeError:
        pass
    return None


def _reason(path: str, exc: Exception) -> str:
    p = Path(path)
    if p.is_symlink() and not p.exists():
        return "broken symbolic link"
    if p.is_dir():
        return "is a directory, not an audio file"
    if not p.exists():
        return "no such file"
    if not os.access(p, os.R_OK):
        return "permission denied"
    try:
        if p.stat().st_size == 0:
            return "empty file (0 bytes)"
    except OSError as e:
        return e.strerror or str(e)
    known = sniff_format(p)
    if known:
        return f"unsupported format: {known}"
    msg = " ".join(str(exc).split())
    # soundfile prefixes the path; keep only libsndfile's reason
    msg = msg.replace(f"Error opening {path!r}: ", "").replace(f"Error opening '{path}': ", "")
    return f"cannot decode audio: {msg}" if msg else "cannot decode audio"


def _open(path: str):
    import soundfile as sf
    try:
        return sf.SoundFile(path)
    except Exception as exc:  # libsndfile errors, OSError, symlink loops
        raise AudioError(f"{path}: {_reason(path, exc)}") from exc


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Header of `path` without decoding samples. Raises AudioError."""
    path = os.fspath(path)
    with _open(path) as f:
        return AudioInfo(path, int(f.samplerate), int(f.channels), int(f.frames), str(f.format))


def to_mono(x: np.ndarray) -> np.ndarray:
    """(n, channels) or (n,) -> (n,) float32, averaging channels; NaN/Inf become 0."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1, dtype=np.float32)
    if not np.isfinite(x).all():
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    return x


def resample(y: np.ndarray, *, orig_sr: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Resample (n,) float32 from orig_sr to target_sr with soxr (high quality, no numba)."""
    if orig_sr == target_sr or y.size == 0:
        return y.astype(np.float32, copy=False)
    import soxr
    return soxr.resample(y, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def load_audio(path: str | os.PathLike, *, sr: int = SAMPLE_RATE,
               max_seconds: float | None = None) -> tuple[np.ndarray, AudioInfo]:
    """Decode `path` to mono float32 at `sr`.

    Returns (y, info): y has shape (n,), info describes the file as stored. Reads at most
    `max_seconds` of audio when given. Raises AudioError naming the file and the reason.
    """
    path = os.fspath(path)
    with _open(path) as f:
        info = AudioInfo(path, int(f.samplerate), int(f.channels), int(f.frames), str(f.format))
        if info.sample_rate <= 0:
            raise AudioError(f"{path}: invalid sample rate {info.sample_rate}")
        n = -1 if max_seconds is None else int(max_seconds * info.sample_rate)
        try:
            x = f.read(n, dtype="float32", always_2d=True)
        except Exception as exc:
            raise AudioError(f"{path}: {_reason(path, exc)}") from exc
    return resample(to_mono(x), orig_sr=info.sample_rate, target_sr=sr), info


def iter_blocks(path: str | os.PathLike, *, block_seconds: float = 60.0,
                sr: int = SAMPLE_RATE) -> tuple[AudioInfo, Iterator[np.ndarray]]:
    """Stream `path` as consecutive mono float32 blocks at `sr`, each about block_seconds.

    The resampler keeps its state across blocks, so the concatenated blocks equal a
    whole-file resample up to filter edge effects. Memory stays O(block_seconds).
    """
    path = os.fspath(path)
    info = audio_info(path)

    def gen() -> Iterator[np.ndarray]:
        import soxr
        stream = None
        if info.sample_rate != sr:
            stream = soxr.ResampleStream(info.sample_rate, sr, 1, dtype="float32", quality="HQ")
        with _open(path) as f:
            block = max(1, int(block_seconds * info.sample_rate))
            while True:
                try:
                    x = f.read(block, dtype="float32", always_2d=True)
                except Exception as exc:
                    raise AudioError(f"{path}: {_reason(path, exc)}") from exc
                last = len(x) < block
                y = to_mono(x)
                if stream is not None:
                    y = stream.resample_chunk(y, last=last)
                if y.size:
                    yield y
                if last:
                    break

    return info, gen()
