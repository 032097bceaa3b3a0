"""`--backend dask`: the same feature extraction on a dask.distributed cluster, same results."""

import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import sercli
from sercli.cli import cli
from sercli.runtime import workers

from .conftest import speechlike


@pytest.fixture
def clips(tmp_path, write_wav):
    rng = np.random.default_rng(5)
    for i, sr in enumerate((16000, 48000, 44100, 16000, 8000)):
        write_wav(f"rec/{i:02d}.wav", speechlike(rng, 1.0 + 0.7 * i, sr=sr, f0=110 + 30 * i), sr)
    write_wav("rec/05_long.wav", speechlike(rng, 9.0, f0=180), 16000)  # several windows
    write_wav("rec/06_silent.wav", np.zeros(16000, np.float32), 16000)  # an error row
    return tmp_path / "rec"


@pytest.fixture
def cluster():
    distributed = pytest.importorskip("distributed")
    # worker processes started by a nanny (one BLAS thread, as dask sets it), two threads in
    # all: with a single thread joblib would run the work in this process instead
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=True, host="127.0.0.1", dashboard_address=None
    ) as c:
        yield c


def test_dask_backend_gives_the_local_results(clips, cluster, tiny_cnn, monkeypatch):
    # in chunks of 3 files, so that both backends run two joblib calls at once, as on big inputs
    monkeypatch.setattr(workers, "CHUNK_FILES", 3)
    paths = sorted(str(p) for p in clips.iterdir()) + [str(clips / "missing.wav")]
    local = [r.to_dict(with_segments=True) for r in sercli.classify(paths, model=str(tiny_cnn), jobs=2, segments=True)]
    remote = [
        r.to_dict(with_segments=True)
        for r in sercli.classify(
            paths, model=str(tiny_cnn), segments=True, backend="dask", scheduler=cluster.scheduler_address
        )
    ]
    assert cluster.scheduler.transition_counter > 0  # the work ran on the cluster
    assert remote == local
    assert [r["error"] is None for r in remote] == [True] * 6 + [False, False]


def test_cli_dask_backend_output_is_identical(clips, cluster, tiny_cnn):
    args = ["classify", str(clips), "-m", str(tiny_cnn), "-q", "--format", "jsonl"]
    local = CliRunner().invoke(cli, args)
    remote = CliRunner().invoke(cli, args + ["--backend", "dask", "--scheduler", cluster.scheduler_address])
    assert remote.exit_code == local.exit_code == 1, remote.output  # the silent clip
    assert remote.stdout == local.stdout
    assert len([json.loads(x) for x in remote.stdout.splitlines()]) == 7


def test_unreachable_scheduler_is_a_one_line_error(clips, tiny_cnn, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr(workers, "DASK_CONNECT_TIMEOUT_S", 1)
    r = CliRunner().invoke(
        cli, ["classify", str(clips), "-m", str(tiny_cnn), "--backend", "dask", "--scheduler", "tcp://127.0.0.1:9"]
    )
    assert r.exit_code == 1
    assert r.stdout == ""
    err = r.stderr.strip().splitlines()
    assert err == [err[0]] and err[0].startswith("Error: cannot reach the dask scheduler at tcp://127.0.0.1:9"), (
        r.stderr
    )


def test_missing_dask_and_missing_address_are_one_line_errors(clips, tiny_cnn, monkeypatch):
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    r = CliRunner().invoke(cli, ["classify", str(clips), "-m", str(tiny_cnn), "--backend", "dask"])
    assert r.exit_code == 1 and "needs a scheduler address" in r.stderr
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    r = CliRunner().invoke(
        cli, ["classify", str(clips), "-m", str(tiny_cnn), "--backend", "dask", "--scheduler", "tcp://127.0.0.1:8786"]
    )
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr.strip() == (
        "Error: the dask backend needs dask.distributed, which is not installed: pip install 'sercli[dask]'"
    )
    r = CliRunner().invoke(cli, ["classify", str(clips), "--scheduler", "tcp://127.0.0.1:8786"])
    assert r.exit_code == 2 and "--scheduler goes with --backend dask" in r.stderr
