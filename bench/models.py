"""Every bundled model's speed in one run: `sercli classify` end to end on the same real clips,
beside the peer's way, so that the models table can give test UAR and clips/s side by side.

    python -m bench.models --clips ../shared/corpora/sample ~/corpora
    python -m bench.speeds      # copies the clips/s into weights/speed.json (`sercli models`)

The clips are bench/run.py's (up to --per-group from each first-level folder of each --clips
folder, a fixed random subset; 16 to 96 kHz mixed). Each model runs as a subprocess (process start
and model load included, page cache warm, default --jobs, JSON Lines to /dev/null); a model
trained for --normalize-by runs with `--normalize-by speaker`, as it is meant to be used (the SVM
each clip alone, its role as the fallback). Each model runs --repeats times, interleaved with
the others and the peer, and the median wall time is given. The targets and the other measures
(cold start, memory, the floor) are bench/run.py's, per model. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from bench.run import (
    BENCH,
    CORPORA,
    SAMPLE,
    fmt_s,
    log,
    machine,
    mb,
    measure,
    pick_clips,
    read_clips,
    recorded_command,
    sercli_cmd,
)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", nargs="+", type=Path, default=None, help="Folders of real clips (as bench/run.py).")
    ap.add_argument("--per-group", type=int, default=150, help="Clips from each first-level folder (default 150).")
    ap.add_argument("--models", default=None, help="Comma-separated models (default: every bundled model).")
    ap.add_argument("--repeats", type=int, default=3, help="Runs of each model, interleaved (median; default 3).")
    ap.add_argument("--no-peer", action="store_true", help="Skip the peer's way.")
    ap.add_argument("--out", type=Path, default=BENCH / "results-models.md")
    a = ap.parse_args(argv)
    from sercli.models.catalog import FALLBACK_MODEL, bundled

    entries = bundled()
    if a.models:
        wanted = a.models.split(",")
        entries = [e for e in entries if e.name in wanted]
    dirs = a.clips if a.clips is not None else [d for d in (SAMPLE, CORPORA) if d.is_dir()]
    clips = pick_clips(dirs, a.per_group)
    if not clips:
        ap.error(f"no audio files in {', '.join(map(str, dirs))}")
    _, dur = read_clips(clips)
    n = len(clips)
    t_start = time.perf_counter()
    info = machine()
    list_file = a.out.with_suffix(".clips.tmp")
    list_file.write_text("".join(f"{p}\n" for p in clips))
    walls: dict[str, list[float]] = {}
    peaks: dict[str, int] = {}

    def run(key: str, cmd: list[str], stdin: str | None = None) -> None:
        m = measure(cmd, stdin_path=stdin, ok=(0, 1))
        walls.setdefault(key, []).append(m.wall)
        peaks[key] = max(peaks.get(key, 0), m.peak)

    # group models per speaker; the SVM also takes --normalize-by but is timed in its fallback role
    modes = {e.name: ["--normalize-by", "speaker"] if e.group and e.name != FALLBACK_MODEL else [] for e in entries}
    try:
        for r in range(a.repeats):  # interleaved, so that a drift in the machine's speed hits every model alike
            if not a.no_peer:
                log(f"[{r + 1}/{a.repeats}] peer's way (librosa loop) ...")
                run("peer", [sys.executable, str(BENCH / "peer.py"), str(list_file)])
            for e in entries:
                log(f"[{r + 1}/{a.repeats}] sercli classify --model {e.name} {' '.join(modes[e.name])} ...")
                cmd = ["classify", "-", "--model", e.name, *modes[e.name], "--format", "jsonl", "-q"]
                run(e.name, sercli_cmd() + cmd, str(list_file))
    finally:
        list_file.unlink(missing_ok=True)
    cmd = recorded_command("bench.models", argv)
    out = ["# sercli benchmark: every bundled model", "", "| machine | |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in info]
    out += [
        f"| benchmark wall time | {fmt_s(time.perf_counter() - t_start)} |",
        f"| command | {cmd} |",
        f"| clips | {n} ({dur / 60:.1f} min of audio) |",
        f"| repeats | {a.repeats} (interleaved; the median wall time is given) |",
        "",
        "| model | mode | test UAR (card) | clips/s | wall (median) | peak RSS | ÷ peer's way |",
        "|---|---|---|---|---|---|---|",
    ]
    tp_peer = n / statistics.median(walls["peer"]) if "peer" in walls else None
    for e in entries:
        wall = statistics.median(walls[e.name])
        ratio = f"{n / wall / tp_peer:.1f}x" if tp_peer else "n/a"
        uar = f"{e.test_uar:.3f}" if e.test_uar is not None else "n/a"
        mode = " ".join(modes[e.name]) or "each clip alone"
        out.append(
            f"| `{e.name}` | {mode} | {uar} | **{n / wall:.1f}** | {fmt_s(wall)} | {mb(peaks[e.name])} | {ratio} |"
        )
    if tp_peer:
        out.append(
            f"| peer's way (bench/peer.py: librosa.load, log-mel + MFCC, seed 1-D CNN, one process) | | | "
            f"**{tp_peer:.1f}** | {fmt_s(statistics.median(walls['peer']))} | {mb(peaks['peer'])} | 1.0x |"
        )
    text = "\n".join(out) + "\n"
    a.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
