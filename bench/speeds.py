"""Copy each bundled model's measured speed from the benchmark's results into weights/speed.json.

    python -m bench.speeds            # after bench/models.py (or bench/run.py) wrote bench/results*.md

`sercli models` shows these numbers (the installed package has no bench/ folder). Every model in
bench/results-models.md (bench/models.py: all bundled models in one run on the same clips) takes
its clips/s from there, so that the numbers compare; a model not in it takes the "(1) `sercli
classify` end to end, model `NAME`" line of bench/results-NAME.md, else of bench/results.md when
that file measured NAME; results of other names (results-cnn-v1.md: an earlier version of cnn's
weights) are not a bundled model's. A model without such a line has no speed.
tests/test_newuser.py checks that weights/speed.json is what this script writes.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "weights" / "speed.json"
MODELS_ROW = re.compile(r"^\| `([^`]+)` \|[^|]*\|[^|]*\| \*\*([0-9.]+)\*\* \|", re.M)
LINE = re.compile(r"\(1\) `sercli classify` end to end, model `([^`]+)`[^|]*\|\s*\*\*([0-9.]+) clips/s\*\*")


def _row(text: str, key: str) -> str | None:
    m = re.search(r"^\|\s*" + re.escape(key) + r"\s*\|\s*([^|]*?)\s*\|", text, re.M)
    return m.group(1) if m else None


def _machine(text: str) -> str:
    cpu, cores = _row(text, "CPU"), _row(text, "cores (os.cpu_count)")
    return ", ".join(x for x in (cpu, f"{cores} cores" if cores else None) if x)


def measured(bench: Path = REPO / "bench") -> dict:
    """{model: {clips_per_s, results, machine}} from bench/results*.md (see the module)."""
    out: dict[str, dict] = {}
    every = bench / "results-models.md"
    if every.exists():
        text = every.read_text(encoding="utf-8")
        for model, speed in MODELS_ROW.findall(text):
            out[model] = {"clips_per_s": float(speed), "results": f"bench/{every.name}", "machine": _machine(text)}
    from_every = set(out)
    for f in sorted(bench.glob("results*.md")):
        text = f.read_text(encoding="utf-8")
        m = LINE.search(text)
        if not m or m.group(1) in from_every:
            continue
        model, speed = m.group(1), float(m.group(2))
        suffix = f.stem[len("results-") :] if f.stem.startswith("results-") else None
        if suffix is not None and suffix != model:
            continue  # e.g. results-cnn-v1.md: earlier weights of the same name
        if suffix is None and model in out:
            continue  # results-NAME.md wins over results.md
        out[model] = {"clips_per_s": speed, "results": f"bench/{f.name}", "machine": _machine(text)}
    return dict(sorted(out.items()))


def document() -> dict:
    return {
        "what": "sercli classify end to end, clips per second (bench/models.py, else bench/run.py); copied by "
        "bench/speeds.py from the results files named",
        "models": measured(),
    }


def main() -> int:
    OUT.write_text(json.dumps(document(), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT.relative_to(REPO)}: {', '.join(document()['models']) or 'no model measured'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
