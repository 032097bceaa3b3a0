#!/usr/bin/env python
"""Benchmark `sercli classify` and `sercli train` against the peer's way and against the floor.

    python -m bench.run [--clips DIR ...] [--quick] [--model cnn] [--out bench/results.md]

In one run, on real clips (by default the sample, ../shared/corpora/sample, plus when present a
fixed subset of the full corpora, ../corpora: up to --per-group clips from each corpus folder,
so 16, 24.4, 44.1 and 48 kHz are mixed), it measures, each as a subprocess (process start
included, page cache warm):

  1. `sercli classify` end to end, default --jobs, JSON Lines to /dev/null;
  2. the peer's way (bench/peer.py): a per-file loop of librosa.load at 22050 Hz, mean 128-band
     log-mel and 20 MFCCs, and the seed paper's dual-branch 1-D CNN, in one process;
  3. the floor (bench/floor.py): decoding and resampling the same files to 16 kHz in joblib
     with the same number of processes, and nothing else;

then the cold start of `sercli --help` and of `sercli classify one.wav` (median of --repeats
runs after one unmeasured warm-up), peak memory for --many synthetic clips of --many-s (and a tenth
as many, to show it is flat), for a --long-s recording and for --long-files recordings of 5 minutes
in one folder, and the training wall time read
from weights/cnn.card.json (or measured with --train). It prints a Markdown table, with the
machine, and writes it to --out. Targets (--targets fast, for cnn): classify >= 5x the peer's
way and >= 0.5x the floor; `sercli --help` < 0.3 s; one file from a cold start < 2.5 s; peak RSS
< 1 GB, flat in the number of files and bounded for long recordings; training < 30 min. With
--targets encoder (the Whisper models): >= 0.5x the peer's way, < 3 s, < 1.5 GB.

It also times each stage per clip on one thread (bench/cpu_per_clip.py), which gives the
ceilings of the two ratios whatever the load. The full run (about 700 clips, 22,000 short clips,
one hour of audio, five hours in 5-minute files) took 90 s on an idle 2-core machine (its last
run, bench/results.md), longer on a busy one; --quick takes under a minute. Run it on an
otherwise idle machine: on a busy one the peer's default torch/BLAS threads slow it down many
times over, which flatters sercli.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.synth import speechlike

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
SAMPLE = Path(os.environ.get("SERCLI_SAMPLE", REPO.parent / "shared" / "corpora" / "sample"))
CORPORA = Path(os.environ.get("SERCLI_CORPORA", REPO.parent / "corpora"))
GB = 1e9

try:
    import psutil
except ImportError:  # peak RSS then falls back to the largest single process (wait4)
    psutil = None


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def sercli_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("sercli")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "sercli"]


# ---------------------------------------------------------------- measuring a subprocess


class Measured:
    def __init__(self, wall: float, rc: int, peak_tree: int | None, peak_one: int, stdout: str, stderr: str):
        self.wall, self.rc, self.peak_tree, self.peak_one = wall, rc, peak_tree, peak_one
        self.stdout, self.stderr = stdout, stderr

    @property
    def peak(self) -> int:
        """Peak RSS of the process tree when psutil polled it, else the largest single process."""
        return self.peak_tree if self.peak_tree is not None else self.peak_one


def measure(
    cmd: list[str],
    *,
    stdin_path: str | None = None,
    poll: float | None = 0.1,
    timeout: float = 3600,
    ok=(0,),
    env: dict | None = None,
) -> Measured:
    """Run cmd; wall time (exact: a blocking wait4), peak RSS of its tree (psutil polling every
    `poll` s, sum of the RSS of the process and all its descendants), and the max RSS of the
    largest single process in the tree (wait4's rusage)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        stdin = open(stdin_path) if stdin_path else subprocess.DEVNULL
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdin=stdin, stdout=out, stderr=err, env=env)
        peak = [0]
        done = threading.Event()

        def poller():
            try:
                proc = psutil.Process(p.pid)
            except psutil.Error:
                return
            while not done.is_set():
                total = 0
                try:
                    procs = [proc] + proc.children(recursive=True)
                except psutil.Error:
                    break
                for q in procs:
                    try:
                        total += q.memory_info().rss
                    except psutil.Error:
                        pass
                peak[0] = max(peak[0], total)
                done.wait(poll)

        th = None
        if psutil is not None and poll:
            th = threading.Thread(target=poller, daemon=True)
            th.start()
        timer = threading.Timer(timeout, p.kill)
        timer.start()
        try:
            _, status, ru = os.wait4(p.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        done.set()
        if th:
            th.join()
        if stdin_path:
            stdin.close()
        out.seek(0), err.seek(0)
        m = Measured(wall, p.returncode, peak[0] if th else None, ru.ru_maxrss * 1024, out.read(), err.read())
    if m.rc not in ok:
        raise RuntimeError(f"{' '.join(cmd)} exited with {m.rc}:\n{m.stderr[-2000:]}")
    return m


# ---------------------------------------------------------------- inputs


def audio_files(root: Path) -> list[Path]:
    from sercli.constants import AUDIO_EXTENSIONS

    exts = {"." + e for e in AUDIO_EXTENSIONS}
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in exts and p.is_file())


def pick_clips(dirs: list[Path], per_group: int, seed: int = 0) -> list[Path]:
    """Up to per_group clips from each first-level folder of each dir (a fixed random subset)."""
    out, seen = [], set()
    for d in dirs:
        groups: dict[str, list[Path]] = {}
        for p in audio_files(d):
            rel = p.relative_to(d).parts
            groups.setdefault(rel[0] if len(rel) > 1 else "", []).append(p)
        for g in sorted(groups):
            files = groups[g]
            chosen = sorted(random.Random(seed).sample(files, min(per_group, len(files))))
            for p in chosen:
                key = p.resolve()
                if key not in seen:
                    seen.add(key)
                    out.append(p)
    return out


def read_clips(clips: list[Path]) -> tuple[dict[int, int], float]:
    """(clips per sample rate, total seconds); reads every file once, so that the page cache is
    warm for every method measured after."""
    rates: dict[int, int] = {}
    dur = 0.0
    for p in clips:
        i = sf.info(str(p))
        rates[i.samplerate] = rates.get(i.samplerate, 0) + 1
        dur += i.duration
        p.read_bytes()
    return rates, dur


def recorded_command(module: str, argv: list[str] | None) -> str:
    """The command line as results record it: the home folder as ~, so that committed results
    name no machine's own paths."""
    return f"python -m {module} " + " ".join(sys.argv[1:] if argv is None else argv).replace(str(Path.home()), "~")


def make_many(root: Path, n: int, seconds: float, unique: int = 100) -> Path:
    """n clips of `seconds` (half 16 kHz, half 48 kHz) as hard links to `unique` distinct files."""
    rng = np.random.default_rng(0)
    src = root / "unique"
    src.mkdir(parents=True, exist_ok=True)
    uniq = []
    for i in range(min(unique, n)):
        sr = 16000 if i % 2 == 0 else 48000
        p = src / f"u{i:03d}.wav"
        if not p.exists():
            sf.write(p, speechlike(rng, sr=sr, f0=rng.uniform(100, 260), n=int(seconds * sr)), sr, subtype="PCM_16")
        uniq.append(p)
    d = root / f"many{n}-{seconds:g}s"
    if d.exists():
        shutil.rmtree(d)
    for i in range(n):
        sub = d / f"d{i // 1000:03d}"
        if i % 1000 == 0:
            sub.mkdir(parents=True)
        dst = sub / f"clip{i:05d}.wav"
        try:
            os.link(uniq[i % len(uniq)], dst)
        except OSError:
            shutil.copyfile(uniq[i % len(uniq)], dst)
    return d


def make_long(path: Path, seconds: float, sr: int = 16000) -> Path:
    """A long speech-like recording with pauses, written block by block (16-bit WAV)."""
    rng = np.random.default_rng(1)
    left = int(seconds * sr)
    with sf.SoundFile(path, "w", samplerate=sr, channels=1, subtype="PCM_16") as f:
        while left > 0:
            n = min(left, 60 * sr)
            y = speechlike(rng, sr=sr, f0=rng.uniform(100, 260), n=n)
            y[: int(min(n, rng.uniform(0.2, 1.5) * sr))] *= 0.001  # a pause
            f.write(y)
            left -= n
    return path


# ---------------------------------------------------------------- machine


def machine() -> list[tuple[str, str]]:
    cpu = platform.processor() or "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "?"
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 2**20:.1f} GiB"
                break
    except OSError:
        pass
    versions = []
    import importlib.metadata as md

    for pkg in (
        "sercli",
        "numpy",
        "torch",
        "librosa",
        "soundfile",
        "soxr",
        "joblib",
        "scikit-learn",
        "dask",
        "distributed",
    ):
        try:
            versions.append(f"{pkg} {md.version(pkg)}")
        except md.PackageNotFoundError:
            pass
    try:
        versions.append(f"libsndfile {sf.__libsndfile_version__}")
    except AttributeError:
        pass
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return [
        ("CPU", cpu),
        ("cores (os.cpu_count)", str(os.cpu_count())),
        ("RAM", ram),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", platform.python_version()),
        ("libraries", ", ".join(versions)),
        ("load average at start (1/5/15 min)", load),
    ]


# ---------------------------------------------------------------- the benchmark


def fmt_s(s: float) -> str:
    return f"{s:.2f} s" if s < 100 else f"{s:.0f} s ({s / 60:.1f} min)"


def mb(b: int | None) -> str:
    return "n/a" if b is None else f"{b / 1e6:.0f} MB"


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--clips",
        nargs="+",
        type=Path,
        default=None,
        help="Folders of real clips (default: the sample and, when present, the corpora).",
    )
    ap.add_argument(
        "--per-group",
        type=int,
        default=None,
        help="Clips taken from each first-level folder of each --clips folder (default 150; 4 with --quick).",
    )
    ap.add_argument("--quick", action="store_true", help="Small counts, for a check in under a minute.")
    ap.add_argument("--model", default="cnn", help="Model for sercli classify (default: cnn).")
    ap.add_argument(
        "--targets",
        choices=["fast", "encoder"],
        default="fast",
        help="fast (cnn): >= 5x the peer, cold start < 2.5 s, RSS < 1 GB; encoder (the "
        "Whisper models): >= 0.5x the peer, < 3 s, < 1.5 GB.",
    )
    ap.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="--jobs for sercli and n_jobs for the floor (default: sercli's default, all cores).",
    )
    ap.add_argument(
        "--many",
        type=int,
        default=None,
        help="Synthetic clips for the memory check (default 20000; 200 with --quick); a tenth as many is measured too.",
    )
    ap.add_argument(
        "--many-s",
        type=float,
        default=3.0,
        help="Length of those clips in seconds (default 3, as the corpora's clips: "
        "each then holds as many features as a real clip).",
    )
    ap.add_argument(
        "--long-s",
        type=float,
        default=None,
        help="Length of the long recording in seconds (default 3600; 120 with --quick).",
    )
    ap.add_argument(
        "--long-files",
        type=int,
        default=None,
        help="How many recordings of 5 minutes (1 minute with --quick) to put in one folder "
        "for the memory check (default 60; 4 with --quick; 0 skips it).",
    )
    ap.add_argument("--repeats", type=int, default=None, help="Cold-start runs (median; default 5, 3 with --quick).")
    ap.add_argument(
        "--card",
        type=Path,
        default=REPO / "weights" / "cnn.card.json",
        help="Model card whose `seconds` field gives the training time.",
    )
    ap.add_argument(
        "--train",
        action="store_true",
        help="Also run `sercli train` twice (fresh feature cache, then cached) and time it.",
    )
    ap.add_argument("--train-data", type=Path, default=CORPORA, help="Corpora for --train.")
    ap.add_argument("--train-recipe", default="cnn", help="Recipe for --train (default cnn).")
    ap.add_argument("--train-epochs", type=int, default=None, help="Override the recipe's epochs for --train.")
    ap.add_argument("--no-peer", action="store_true", help="Skip the peer's way (it is the slowest part).")
    ap.add_argument("--tmp", type=Path, default=None, help="Scratch folder (default: a temporary one).")
    ap.add_argument("--out", type=Path, default=BENCH / "results.md", help="Markdown output file.")
    a = ap.parse_args(argv)
    peer_target, cold_target, rss_target = (5.0, 2.5, GB) if a.targets == "fast" else (0.5, 3.0, 1.5 * GB)

    per_group = a.per_group or (4 if a.quick else 150)
    many = a.many if a.many is not None else (200 if a.quick else 20000)
    long_s = a.long_s if a.long_s is not None else (120.0 if a.quick else 3600.0)
    repeats = a.repeats or (3 if a.quick else 5)
    n_longs = a.long_files if a.long_files is not None else (4 if a.quick else 60)
    longs_s = 60.0 if a.quick else 300.0
    jobs = a.jobs or os.cpu_count() or 1
    dirs = a.clips if a.clips is not None else [d for d in (SAMPLE, CORPORA) if d.is_dir()]
    if not dirs:
        dirs = [REPO / "examples"]
    for d in dirs:
        if not d.is_dir():
            ap.error(f"{d}: not a folder")
    sercli = sercli_cmd()
    jobs_args = ["--jobs", str(a.jobs)] if a.jobs else []
    t_start = time.perf_counter()
    info = machine()

    tmp_ctx = tempfile.TemporaryDirectory(prefix="sercli-bench-") if a.tmp is None else None
    tmp = Path(tmp_ctx.name) if tmp_ctx else a.tmp
    tmp.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str, str, str]] = []  # measure, value, target, result
    notes: list[str] = []
    try:
        # ------------------------------------------------ which model sercli will really use
        from sercli.runtime.classify import resolve_model

        warned: list[str] = []
        m = resolve_model(a.model, warn=warned.append)
        model_desc = f"`{m.name}` ({m.kind})"
        if warned:
            model_desc += f" — asked for `{a.model}`: {warned[0]}"
        del m

        # ------------------------------------------------ real clips
        clips = pick_clips(dirs, per_group)
        if not clips:
            ap.error(f"no audio files in {', '.join(map(str, dirs))}")
        rates, dur = read_clips(clips)
        n = len(clips)
        mix = ", ".join(f"{c} at {r / 1000:g} kHz" for r, c in sorted(rates.items()))
        list_file = tmp / "clips.txt"
        list_file.write_text("".join(f"{p}\n" for p in clips))
        log(f"{n} clips ({mix}; {dur / 60:.1f} min of audio) from {', '.join(map(str, dirs))}")

        log("sercli classify ...")
        sc = measure(
            sercli + ["classify", "-", "--model", a.model, "--format", "jsonl", "-q"] + jobs_args,
            stdin_path=str(list_file),
            ok=(0, 1),
        )
        if a.no_peer:
            pe = None
        else:
            log("peer's way (librosa loop) ...")
            pe = measure([sys.executable, str(BENCH / "peer.py"), str(list_file)])
        log("floor (decode + resample) ...")
        fl = measure([sys.executable, str(BENCH / "floor.py"), str(list_file), str(jobs)])
        fl_in = json.loads(fl.stdout.strip().splitlines()[-1])
        tp_s, tp_f = n / sc.wall, n / fl.wall
        rows.append(("clips", f"{n} ({mix}; {dur / 60:.1f} min of audio)", "", ""))
        rows.append(
            (
                f"(1) `sercli classify` end to end, model {model_desc}, --jobs "
                f"{a.jobs or 'default'} ({min(jobs, n)} processes)",
                f"**{tp_s:.1f} clips/s** ({fmt_s(sc.wall)}, peak RSS {mb(sc.peak)})",
                "",
                "",
            )
        )
        if pe is not None:
            pe_in = json.loads(pe.stdout.strip().splitlines()[-1])
            tp_p = n / pe.wall
            rows.append(
                (
                    "(2) peer's way: librosa.load at 22050 Hz, mean 128 log-mel + 20 MFCC, "
                    "seed paper's 1-D CNN, one process",
                    f"**{tp_p:.1f} clips/s** ({fmt_s(pe.wall)}; loop alone "
                    f"{pe_in['n'] / pe_in['seconds']:.1f} clips/s)",
                    "",
                    "",
                )
            )
        rows.append(
            (
                f"(3) floor: decode + resample to 16 kHz, joblib n_jobs={min(jobs, n)}, nothing else",
                f"**{tp_f:.1f} clips/s** ({fmt_s(fl.wall)}; loop alone {fl_in['n'] / fl_in['seconds']:.1f} clips/s)",
                "",
                "",
            )
        )
        if pe is not None:
            r = tp_s / tp_p
            rows.append(("classify ÷ peer's way", f"{r:.1f}x", f">= {peer_target:g}x", verdict(r >= peer_target)))
        r = tp_s / tp_f
        rows.append(("classify ÷ floor", f"{r:.2f}x", ">= 0.5x", verdict(r >= 0.5)))

        # ------------------------------------------------ where the CPU goes, per clip
        log("CPU per clip, one thread ...")
        one_thread = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        cp = json.loads(
            measure(
                [sys.executable, str(BENCH / "cpu_per_clip.py"), str(list_file), a.model, str(10 if a.quick else 100)],
                env=one_thread,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        ours = cp["sercli_features"] + cp["sercli_model"]
        rows.append(
            (
                f"CPU per clip, one thread, warm ({cp['n']} of the clips, stages interleaved; bench/cpu_per_clip.py)",
                f"floor (decode + resample) {cp['decode_resample']:.1f} ms; sercli decode + features "
                f"{cp['sercli_features']:.1f} + model {cp['sercli_model']:.1f} = {ours:.1f} ms; "
                f"peer's loop body {cp['peer_loop_body']:.1f} ms",
                "",
                "",
            )
        )
        k = min(jobs, n)
        rows.append(
            (
                f"ceilings those imply with {k} busy cores (no start-up costs)",
                f"classify ÷ peer ≤ {k * cp['peer_loop_body'] / ours:.1f}x; "
                f"classify ÷ floor ≤ {cp['decode_resample'] / ours:.2f}x",
                "",
                "",
            )
        )

        # ------------------------------------------------ cold starts
        log("cold starts ...")

        def median_wall(cmd):
            measure(cmd, poll=None)  # warm-up, not counted
            return statistics.median(measure(cmd, poll=None).wall for _ in range(repeats))

        t_help = median_wall(sercli + ["--help"])
        rows.append(
            (f"cold start `sercli --help` (median of {repeats})", fmt_s(t_help), "< 0.3 s", verdict(t_help < 0.3))
        )
        one = str(clips[0])
        t_one = median_wall(sercli + ["classify", one, "--model", a.model, "-q", "--format", "jsonl"])
        rows.append(
            (
                f"cold start `sercli classify one.wav` ({Path(one).name}, median of {repeats})",
                fmt_s(t_one),
                f"< {cold_target:g} s",
                verdict(t_one < cold_target),
            )
        )

        # ------------------------------------------------ memory: many files, one long file
        small = max(1, many // 10)
        peaks = {}
        for count in (small, many):
            log(f"memory: {count} synthetic {a.many_s:g} s clips ...")
            d = make_many(tmp / "many", count, a.many_s)
            r_ = measure(
                sercli + ["classify", str(d), "--model", a.model, "--format", "jsonl", "-q"] + jobs_args, ok=(0, 1)
            )
            peaks[count] = r_.peak
            shutil.rmtree(d)
            rows.append(
                (
                    f"peak RSS, {count:,} clips of {a.many_s:g} s (16/48 kHz)",
                    f"{mb(r_.peak)} (largest process {mb(r_.peak_one)}; {count / r_.wall:.0f} clips/s)",
                    f"< {rss_target / GB:g} GB",
                    verdict(r_.peak < rss_target),
                )
            )
        flat = peaks[many] <= 1.2 * peaks[small] + 50e6
        rows.append(
            (
                f"peak RSS flat in number of files ({many:,} vs {small:,})",
                f"{peaks[many] / max(1, peaks[small]):.2f}x",
                "<= 1.2x + 50 MB",
                verdict(flat),
            )
        )
        long_name = f"{long_s / 60:g}-minute" if long_s >= 60 else f"{long_s:g}-second"
        log(f"memory: one {long_name} recording ...")
        lp = make_long(tmp / "long.wav", long_s)
        r_ = measure(sercli + ["classify", str(lp), "--model", a.model, "--format", "jsonl", "-q"], ok=(0, 1))
        lp.unlink()
        rows.append(
            (
                f"peak RSS, one {long_name} recording (16 kHz)",
                f"{mb(r_.peak)} ({fmt_s(r_.wall)}, {long_s / r_.wall:.0f}x real time)",
                f"< {rss_target / GB:g} GB",
                verdict(r_.peak < rss_target),
            )
        )
        # many long files: each worker answer holds a whole file's window features, so this
        # checks that the features waiting for the model stay bounded (runtime.workers.CHUNK_BYTES)
        if n_longs > 0:
            log(f"memory: {n_longs} recordings of {longs_s / 60:g} min ...")
            d = tmp / "longs"
            shutil.rmtree(d, ignore_errors=True)  # left by an interrupted run in --tmp
            d.mkdir()
            src = make_long(d / "f0000.wav", longs_s)
            for i in range(1, n_longs):
                os.link(src, d / f"f{i:04d}.wav")
            r_ = measure(
                sercli + ["classify", str(d), "--model", a.model, "--format", "jsonl", "-q"] + jobs_args, ok=(0, 1)
            )
            shutil.rmtree(d)
            rows.append(
                (
                    f"peak RSS, {n_longs} recordings of {longs_s / 60:g} min in one folder (16 kHz)",
                    f"{mb(r_.peak)} (largest process {mb(r_.peak_one)}; {fmt_s(r_.wall)}, "
                    f"{n_longs * longs_s / r_.wall:.0f}x real time)",
                    f"< {rss_target / GB:g} GB",
                    verdict(r_.peak < rss_target),
                )
            )

        # ------------------------------------------------ training
        secs = json.loads(a.card.read_text()).get("seconds") if a.card.is_file() else None
        total = secs.get("total") if isinstance(secs, dict) else secs
        feat = secs.get("features") if isinstance(secs, dict) else None
        if isinstance(total, (int, float)):
            card = json.loads(a.card.read_text())
            what = f"`{card.get('command') or 'sercli train'}`, {card.get('epochs', '?')} epochs"
            rows.append(
                (
                    f"training, as recorded in {a.card.name} by `sercli train` ({what}; not run by the benchmark)",
                    f"{total / 60:.1f} min"
                    + (f", of which feature extraction {feat / 60:.1f} min" if isinstance(feat, (int, float)) else ""),
                    "< 30 min",
                    verdict(total < 1800),
                )
            )
            if isinstance(feat, (int, float)):
                rows.append(
                    (
                        f"training with cached features, estimated from {a.card.name} (total − feature extraction)",
                        f"{(total - feat) / 60:.1f} min",
                        "< 30 min",
                        verdict(total - feat < 1800),
                    )
                )
                notes.append(
                    "The model card does not record whether its run found the feature cache "
                    "warm: the recorded total is the uncached time only if its feature "
                    "extraction (above) was a real one. `--train` measures both."
                )
        else:
            why = "has no `seconds`" if a.card.is_file() else "not found"
            rows.append((f"training ({a.card} {why}; use --train to measure)", "n/a", "< 30 min", "n/a"))
        if a.train:
            cache = tmp / "train-cache"
            for label in ("uncached (fresh feature cache)", "cached features"):
                log(f"training, {label} ...")
                cmd = sercli + [
                    "train",
                    "--data",
                    str(a.train_data),
                    "--recipe",
                    a.train_recipe,
                    "--out",
                    str(tmp / "train-out"),
                    "--cache",
                    str(cache),
                ]
                if a.train_epochs:
                    cmd += ["--epochs", str(a.train_epochs)]
                r_ = measure(cmd, poll=1.0, timeout=4 * 3600)
                ep = f", {a.train_epochs} epochs" if a.train_epochs else ""
                rows.append(
                    (
                        f"training measured (--train), recipe {a.train_recipe}{ep}, {label}",
                        f"{fmt_s(r_.wall)} (peak RSS {mb(r_.peak)})",
                        "< 30 min",
                        verdict(r_.wall < 1800),
                    )
                )
    finally:
        if tmp_ctx:
            tmp_ctx.cleanup()

    info.append(("benchmark wall time", fmt_s(time.perf_counter() - t_start)))
    info.append(("command", recorded_command("bench.run", argv)))
    lines = ["# sercli benchmark", "", "| machine | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in info]
    lines += ["", "| measure | value | target | result |", "|---|---|---|---|"]
    lines += [f"| {a_} | {b} | {c} | {d} |" for a_, b, c, d in rows]
    mem = (
        "sum of the RSS of the process and all its descendants (joblib workers included), polled "
        "with psutil every 0.1 s (pages shared between processes count in each)"
        if psutil
        else "psutil is not installed: the max RSS of the largest single process (wait4 rusage)"
    )
    lines += [
        "",
        "Notes:",
        "",
        "- Throughput: wall time of each command as a subprocess, process start and imports "
        "included, after the clips were read once (warm page cache); clips/s = clips ÷ wall time. "
        "sercli's report goes to /dev/null.",
        "- Peer's way (bench/peer.py): per file `librosa.load(path)` (22050 Hz, mono, soxr_hq), "
        "128-band mel → power_to_db → time mean, 20 MFCCs from that log-mel → time mean, then the "
        "seed paper's dual-branch 1-D CNN (sercli.models.nets.SeedCNN, random weights) on a batch of one.",
        "- Floor (bench/floor.py): soundfile decode, channel mean, soxr HQ to 16 kHz, in joblib "
        "(loky) with the same number of processes as sercli; only the sample count is returned.",
        f"- Peak RSS: {mem}. Cold starts: median wall time of separate processes after one "
        "unmeasured warm-up run (warm page cache).",
        f"- Synthetic clips are hard links to 100 distinct speech-like {a.many_s:g} s files; the long "
        "recording is a speech-like 16 kHz 16-bit WAV.",
    ]
    lines += [f"- {x}" for x in notes]
    text = "\n".join(lines) + "\n"
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
