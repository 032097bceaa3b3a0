"""Shared fixtures: seeded rng, synthetic speech-like audio under corpus-style names, tiny models."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.synth import speechlike  # noqa: F401  (re-exported for the tests)

REPO = Path(__file__).resolve().parents[1]
SAMPLE = Path(os.environ.get("SERCLI_SAMPLE", REPO.parent / "shared" / "corpora" / "sample"))

# one emotion per corpus-style name, for parser and smoke-train tests
CORPUS_NAMES = {
    "ravdess/Actor_01/03-01-05-01-01-01-01.wav": ("ravdess", "01", "angry"),
    "ravdess/Actor_02/03-01-04-02-02-01-02.wav": ("ravdess", "02", "sad"),
    "tess/OAF_back_disgust.wav": ("tess", "OAF", "disgust"),
    "tess/YAF_dog_ps.wav": ("tess", "YAF", "surprise"),
    "savee/JE_h05.wav": ("savee", "JE", "happy"),
    "savee/KL_sa12.wav": ("savee", "KL", "sad"),
    "cremad/1001_DFA_ANG_XX.wav": ("cremad", "1001", "angry"),
    "cremad/1004_IEO_FEA_HI.wav": ("cremad", "1004", "fear"),
    "emodb/03a01Wa.wav": ("emodb", "03", "angry"),
    "emodb/08b02Lb.wav": ("emodb", "08", "boredom"),
    "jl/female1_excited_1a_1.wav": ("jl", "female1", "excited"),
    "jl/male2_neutral_5b_2.wav": ("jl", "male2", "neutral"),
    "mine/happy/clip 01.wav": ("folder", None, "happy"),
}


def pytest_configure(config):
    """hypothesis keeps its example database and a cache of constants in .hypothesis/ of the
    current folder, from collection on: a temporary folder instead, removed at the end."""
    import tempfile

    try:
        from hypothesis.configuration import set_hypothesis_home_dir
    except ImportError:
        return
    config._sercli_hypothesis_home = tempfile.mkdtemp(prefix="sercli-tests-hypothesis-")
    set_hypothesis_home_dir(config._sercli_hypothesis_home)


def pytest_unconfigure(config):
    import shutil

    home = getattr(config, "_sercli_hypothesis_home", None)
    if home:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Everything that caches (sercli's feature cache, and whatever honours XDG_CACHE_HOME)
    writes under the session's temporary folder, never to ~/.cache (issue 18, item 9).
    Subprocesses inherit the variables."""
    cache = tmp_path_factory.mktemp("xdg-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_CACHE_HOME", str(cache))
    mp.setenv("SERCLI_CACHE", str(cache / "sercli"))
    yield cache
    mp.undo()


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def write_wav(tmp_path):
    def _write(rel: str, y: np.ndarray, sr: int = 16000, subtype: str | None = None, fmt: str | None = None):
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(p, y, sr, subtype=subtype, format=fmt)
        return p

    return _write


def make_corpus(root: Path, rng: np.random.Generator, per_label: int = 3) -> Path:
    """A tiny mixed corpus in the four training corpora's naming, train/val/test speakers."""
    emos = {
        "angry": ("05", "ANG", "angry", "a", 260),
        "disgust": ("07", "DIS", "disgust", "d", 120),
        "fear": ("06", "FEA", "fear", "f", 220),
        "happy": ("03", "HAP", "happy", "h", 200),
        "neutral": ("01", "NEU", "neutral", "n", 140),
        "sad": ("04", "SAD", "sad", "sa", 100),
    }
    for emo, (rv, cr, te, sv, f0) in emos.items():
        for i in range(per_label):
            for rel in (
                f"cremad/{[1001, 1003, 1004][i % 3]}_{['DFA', 'IEO', 'TIE'][i % 3]}_{cr}_XX.wav",
                f"ravdess/Actor_{[1, 3, 5][i % 3]:02d}/"
                f"03-01-{rv}-01-0{1 + i % 2}-0{1 + i // 2 % 2}-{[1, 3, 5][i % 3]:02d}.wav",
                f"tess/{['OAF', 'OAF', 'YAF'][i % 3]}_w{i}_{te}.wav",
                f"savee/{['DC', 'JK', 'KL'][i % 3]}_{sv}{i + 1:02d}.wav",
            ):
                p = root / rel
                p.parent.mkdir(parents=True, exist_ok=True)
                y = speechlike(
                    rng,
                    seconds=rng.uniform(1.0, 2.0),
                    f0=f0 * rng.uniform(0.9, 1.1),
                    level=0.5 if emo == "angry" else 0.2,
                )
                sf.write(p, y, 16000)
    return root


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"), np.random.default_rng(7))


@pytest.fixture(scope="session")
def tiny_cnn(tmp_path_factory):
    """A randomly initialised small CNN saved as a sercli model file (fast CLI tests)."""
    import torch

    from sercli.corpora import SIX_CLASSES
    from sercli.models import nets, save_torch

    torch.manual_seed(0)
    net = nets.EmotionCNN(nets.CNNDims(n_mels=64, n_labels=6, channels=[4, 8], hidden=8))
    p = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_torch(p, net, {"kind": "cnn", "labels": list(SIX_CLASSES), "recipe": "test"})
    return p


@pytest.fixture
def sample_dir():
    if not SAMPLE.is_dir():
        pytest.skip(f"real sample not found at {SAMPLE}")
    return SAMPLE


def write_many_clips(d: Path, n: int) -> Path:
    """`n` distinct 3 s speech-like clips named "clip NNN.wav" in folder d (created)."""
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    base = [speechlike(rng, 3.0, f0=f0) for f0 in (110, 150, 190, 230)]
    for i in range(n):
        sf.write(d / f"clip {i:03d}.wav", np.roll(base[i % 4], 97 * i) * (0.5 + i / 320), 16000)
    return d


def as_from_a_terminal():
    """subprocess preexec_fn: SIGINT and SIGTERM at their defaults and unblocked in the child, as
    a shell gives a foreground command, whatever the test process inherited (a test runner
    started in the background ignores SIGINT; a signal blocked here would stay blocked)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
