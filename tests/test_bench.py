"""python -m bench.run runs end to end on a tiny input and writes its table (no timing is asserted)."""

import subprocess
import sys

import numpy as np

from .conftest import REPO, speechlike


def test_benchmark_writes_its_table(tmp_path, write_wav, tiny_cnn):
    rng = np.random.default_rng(3)
    for i, sr in enumerate((16000, 48000, 16000, 48000)):
        write_wav(f"clips/c{i % 2}/{i}.wav", speechlike(rng, 1.5, sr=sr), sr)
    out = tmp_path / "results.md"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--quick",
            "--clips",
            str(tmp_path / "clips"),
            "--many",
            "6",
            "--many-s",
            "1",
            "--long-s",
            "5",
            "--long-files",
            "2",
            "--repeats",
            "1",
            "--model",
            str(tiny_cnn),
            "--card",
            str(tmp_path / "none.json"),
            "--tmp",
            str(tmp_path / "scratch"),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    table = out.read_text()
    assert r.stdout.strip() == table.strip()
    for needle in (
        "| CPU |",
        "| cores (os.cpu_count) |",
        "| RAM |",
        "| Python |",
        "| libraries |",
        "| measure | value | target | result |",
        "| clips | 4 (2 at 16 kHz, 2 at 48 kHz",
        "(1) `sercli classify` end to end",
        "(2) peer's way",
        "(3) floor",
        "classify ÷ peer's way",
        "classify ÷ floor",
        "cold start `sercli --help`",
        "cold start `sercli classify one.wav`",
        "peak RSS, 6 clips of 1 s",
        "peak RSS flat in number of files",
        "peak RSS, one 5-second recording",
        "peak RSS, 2 recordings of 1 min in one folder",
        "training (",
    ):
        assert needle in table, needle
    rows = [line for line in table.splitlines() if line.startswith("| ") and "target" not in line]
    assert all(line.count("|") >= 5 for line in rows if "PASS" in line or "FAIL" in line)
    assert "clips/s" in table and ("PASS" in table or "FAIL" in table)
