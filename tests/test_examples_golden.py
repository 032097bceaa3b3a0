"""`sercli classify examples/` gives the JSON Lines recorded in tests/data (cnn: written by the
release before the product/lab move; whisper-tiny: by the bf16 retrain of 0.3), so a refactor
that changes a prediction, a field or its order fails.

The default model runs its encoder in bfloat16 where the CPU has it natively and in float32
elsewhere (sercli.encoded.run_precision), so it has two recordings. ONEDNN_MAX_CPU_ISA=AVX2 hides
the CPU's native bf16 from torch: that run takes the float32 path of a CPU without it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"


def _records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def _close(got, want, path=""):
    # same keys in the same order, same strings; numbers within a rounding step of the 6 decimals
    if isinstance(want, dict):
        assert list(got) == list(want), path
        for k in want:
            _close(got[k], want[k], f"{path}.{k}")
    elif isinstance(want, list):
        assert len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want)):
            _close(g, w, f"{path}[{i}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, abs=2e-6), path
    else:
        assert got == want, path


def _native_bf16() -> bool:
    from sercli.encoded import native_bf16

    return native_bf16()


@pytest.mark.parametrize(
    "golden, args, env",
    [
        ("examples-whisper-tiny.jsonl", [], {}),
        ("examples-whisper-tiny-fp32.jsonl", [], {"ONEDNN_MAX_CPU_ISA": "AVX2"}),
        ("examples-cnn-top3-segments.jsonl", ["-m", "cnn", "--top-k", "3", "--segments"], {}),
    ],
)
def test_examples_jsonl_unchanged(golden, args, env):
    if golden == "examples-whisper-tiny.jsonl" and not _native_bf16():
        golden = "examples-whisper-tiny-fp32.jsonl"  # this CPU runs the encoder in float32
    out = subprocess.run(
        [sys.executable, "-m", "sercli", "classify", "examples/", "--format", "jsonl", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )
    assert out.returncode == 0, out.stderr
    want = (DATA / golden).read_text()
    if out.stdout == want:
        return
    got = _records(out.stdout)
    expected = _records(want)
    assert len(got) == len(expected)
    for g, w in zip(got, expected):
        _close(g, w, g.get("path", ""))
