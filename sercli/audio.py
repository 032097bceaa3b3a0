"""Reading any audio libsndfile can decode as 16 kHz mono float32.

Short clips are read whole; long recordings are streamed in blocks so that memory stays
bounded whatever the length (`iter_blocks`).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .constants import SAMPLE_RATE
from .errors import AudioError, display_path

#: Lower sample rates are not speech audio (a corrupt or mislabelled header); such files are
#: refused instead of being upsampled by a huge factor.
MIN_SAMPLE_RATE = 4000

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
        if head[offset : offset + len(magic)] == magic:
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


def _file_problem(path: str) -> str | None:
    """Why `path` is not a readable regular file (None if it is one)."""
    try:
        st = os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "symbolic link loop"
        if os.path.islink(path) and e.errno == errno.ENOENT:
            return "broken symbolic link"
        if e.errno == errno.ENOENT:
            return "no such file"
        if e.errno in (errno.EACCES, errno.EPERM):
            return "permission denied"
        return (e.strerror or str(e)).lower()
    except ValueError as e:  # embedded NUL
        return f"invalid path ({e})"
    if stat.S_ISDIR(st.st_mode):
        return "is a directory, not an audio file"
    if not stat.S_ISREG(st.st_mode):
        kind = (
            "named pipe (FIFO)"
            if stat.S_ISFIFO(st.st_mode)
            else "socket"
            if stat.S_ISSOCK(st.st_mode)
            else "device"
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
            else "special file"
        )
        return f"not a regular file: {kind}"
    if not os.access(path, os.R_OK):
        return "permission denied"
    if st.st_size == 0:
        return "empty file (0 bytes)"
    return None


def _reason(path: str, exc: Exception) -> str:
    problem = _file_problem(path)
    if problem:
        return problem
    known = sniff_format(path)
    if known:
        return f"unsupported format: {known}"
    msg = " ".join(str(exc).split())
    # soundfile prefixes the path (str or bytes); keep only libsndfile's reason
    for name in (path, os.fsencode(path)):
        msg = msg.replace(f"Error opening {name!r}: ", "")
    if "is not a regular file" in msg:  # libsndfile's words for data it cannot parse (e.g. MP3)
        msg = "unrecognised or corrupt data"
    return f"cannot decode audio: {msg}" if msg else "cannot decode audio"


def _fail(path: str, reason: str) -> AudioError:
    return AudioError(f"{display_path(path)}: {reason}")


def _open(path: str):
    import soundfile as sf

    # A FIFO or device would block or never end: refuse anything but a regular file up front.
    problem = _file_problem(path)
    if problem:
        raise _fail(path, problem)
    try:
        # bytes on POSIX, so names that are not valid UTF-8 open too (soundfile encodes str strictly)
        f = sf.SoundFile(path if os.name == "nt" else os.fsencode(path))
    except Exception as exc:  # libsndfile errors, OSError
        raise _fail(path, _reason(path, exc)) from exc
    if f.samplerate < MIN_SAMPLE_RATE:
        f.close()
        raise _fail(path, f"sample rate {f.samplerate} Hz is too low for speech audio (minimum {MIN_SAMPLE_RATE} Hz)")
    if f.channels < 1:
        f.close()
        raise _fail(path, f"invalid channel count {f.channels}")
    if not 0 <= f.frames < UNKNOWN_FRAMES and f.seekable():
        # an unknown length: soundfile would seek to "where the read ended" after each read,
        # which libsndfile refuses at the real end; read it as a stream instead
        f._info.seekable = 0
    return f


#: libsndfile's frame count for a length it does not know (SF_COUNT_MAX, e.g. a FLAC whose
#: header says 0 samples, as encoders writing to a pipe leave it); any count this large is
#: not believed.
UNKNOWN_FRAMES = 2**62
#: frames per read when a file is decoded to its real end
READ_BLOCK = 1 << 20


def _length_known(f) -> bool:
    """Whether the header's frame count can be believed and the file read in one call: not for
    an unknown length, nor for files libsndfile cannot seek (GSM 6.10, G.721, NMS ADPCM WAVs),
    which it decodes only block by block."""
    return f.seekable() and 0 <= f.frames < UNKNOWN_FRAMES


def _read_blocks(f, path: str, limit: int | None = None) -> Iterator[np.ndarray]:
    """(n, channels) float32 blocks to the real end of the data (or `limit` frames)."""
    left = limit
    while left is None or left > 0:
        n = READ_BLOCK if left is None else min(READ_BLOCK, left)
        try:
            x = f.read(n, dtype="float32", always_2d=True)
        except Exception as exc:
            raise _fail(path, _reason(path, exc)) from exc
        if len(x):
            yield x
        if left is not None:
            left -= len(x)
        if len(x) < n:
            return


def _frames(f, path: str) -> int:
    """The number of frames, counted by decoding when the header cannot be believed."""
    if _length_known(f):
        return int(f.frames)
    return sum(len(x) for x in _read_blocks(f, path))


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Header facts of `path`. The frame count is the header's, or, when the header does not
    know it (or the file cannot be seeked), counted by decoding to the real end. Raises
    AudioError."""
    path = os.fspath(path)
    with _open(path) as f:
        return AudioInfo(path, int(f.samplerate), int(f.channels), _frames(f, path), str(f.format))


def to_mono(x: np.ndarray) -> np.ndarray:
    """(n, channels) or (n,) -> (n,) float32, averaging channels; NaN/Inf become 0.

    Non-finite samples are zeroed before the channels are averaged, so one NaN channel does
    not silence the others; samples beyond ±MAX_ABS (120 dB above full scale, only found in
    corrupt float files) are clipped, so that neither the mean, the resampler nor the
    features can overflow.
    """
    from .features import MAX_ABS

    x = np.asarray(x, dtype=np.float32)
    if x.size and not (np.isfinite(x).all() and float(np.abs(x).max()) <= MAX_ABS):
        x = np.clip(np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0), -MAX_ABS, MAX_ABS)
    if x.ndim == 2:
        x = np.ascontiguousarray(x[:, 0]) if x.shape[1] == 1 else x.mean(axis=1, dtype=np.float32)
    return x


def resample(y: np.ndarray, *, orig_sr: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Resample (n,) float32 from orig_sr to target_sr with soxr (high quality, no numba)."""
    if orig_sr == target_sr or y.size == 0:
        return y.astype(np.float32, copy=False)
    import soxr

    return soxr.resample(y, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def load_audio(
    path: str | os.PathLike, *, sr: int = SAMPLE_RATE, max_seconds: float | None = None
) -> tuple[np.ndarray, AudioInfo]:
    """Decode `path` to mono float32 at `sr`.

    Returns (y, info): y has shape (n,), info describes the file as stored. Reads at most
    `max_seconds` of audio when given. Raises AudioError naming the file and the reason.
    """
    path = os.fspath(path)
    with _open(path) as f:
        n = -1 if max_seconds is None else int(max_seconds * f.samplerate)
        if _length_known(f):
            info = AudioInfo(path, int(f.samplerate), int(f.channels), int(f.frames), str(f.format))
            try:
                x = f.read(n, dtype="float32", always_2d=True)
            except Exception as exc:
                raise _fail(path, _reason(path, exc)) from exc
        else:  # never trust the length: decode to the real end, block by block
            blocks = list(_read_blocks(f, path, None if n < 0 else n))
            x = np.concatenate(blocks) if blocks else np.zeros((0, f.channels), np.float32)
            frames = len(x) + (0 if n < 0 else sum(len(b) for b in _read_blocks(f, path)))
            info = AudioInfo(path, int(f.samplerate), int(f.channels), frames, str(f.format))
    return resample(to_mono(x), orig_sr=info.sample_rate, target_sr=sr), info


def iter_blocks(
    path: str | os.PathLike, *, block_seconds: float = 60.0, sr: int = SAMPLE_RATE
) -> tuple[AudioInfo, Iterator[np.ndarray]]:
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
                    raise _fail(path, _reason(path, exc)) from exc
                last = len(x) < block
                y = to_mono(x)
                if stream is not None:
                    y = stream.resample_chunk(y, last=last)
                if y.size:
                    yield y
                if last:
                    break

    return info, gen()


def why_silent(path: str | os.PathLike) -> str | None:
    """Why a file whose mono mix has no window above the silence level is not plain silence:
    it holds no finite sample at all (NaN or infinite only, which decoding zeroes), or its
    channels are loud but cancel when mixed to mono (phase-inverted stereo). None when it is
    silence, or when the file cannot be read again. Streams the file: memory stays bounded."""
    from .constants import SILENCE_DBFS

    path = os.fspath(path)
    try:
        with _open(path) as f:
            ch = f.channels
            n = finite = 0
            s1 = np.zeros(ch)  # per channel: sum and sum of squares
            s2 = np.zeros(ch)
            m1 = m2 = 0.0  # the mono mix
            for x in _read_blocks(f, path):
                x = x.astype(np.float64)
                ok = np.isfinite(x)
                finite += int(ok.sum())
                x[~ok] = 0.0
                n += len(x)
                s1 += x.sum(0)
                s2 += np.square(x).sum(0)
                mono = x.mean(1)
                m1 += float(mono.sum())
                m2 += float(np.square(mono).sum())
    except (AudioError, OSError, MemoryError):
        return None
    if n and not finite:
        return "no finite samples: every sample is NaN or infinite"
    if ch < 2 or not n:
        return None
    level = lambda a, b: 10 * np.log10(max(b / n - (a / n) ** 2, 1e-300))  # noqa: E731 (dB of the variance)
    loudest = max(level(a, b) for a, b in zip(s1, s2))
    if loudest >= SILENCE_DBFS and level(m1, m2) < SILENCE_DBFS:
        return (
            f"silent once its {ch} channels are mixed to mono: they cancel out (one is "
            f"phase-inverted?), although a channel alone is at {loudest:.0f} dBFS"
        )
    return None
