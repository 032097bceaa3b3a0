"""Reliability, round two (issue 17): inputs and events that lost data, hung, crashed or
clobbered a file. One test (or more) per item of the issue; each failed before its fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from sercli.cli import cli
from sercli.corpora import Clip

from .conftest import as_from_a_terminal, speechlike, write_many_clips

REPO = Path(__file__).resolve().parents[1]


def run(args, **kw):
    return CliRunner().invoke(cli, args, catch_exceptions=False, **kw)


def jsonl(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def one_line_error(r, *words):
    """A one-line message on stderr holding `words`, no traceback."""
    assert "Traceback" not in r.output, r.output
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


def zero_length_flac(path: Path, y: np.ndarray, sr: int = 16000) -> Path:
    """A valid FLAC whose STREAMINFO gives its length as 0 ("unknown", as a pipe writer leaves it)."""
    sf.write(path, y, sr, format="FLAC")
    b = bytearray(path.read_bytes())
    assert b[:4] == b"fLaC" and b[4] & 0x7F == 0  # STREAMINFO first
    b[21] &= 0xF0  # 36 bits of total samples, from bit 4 of byte 21
    b[22:26] = b"\0\0\0\0"
    path.write_bytes(bytes(b))
    return path


# --------------------------------------------------------------------------------------------
# 1. a header that does not know the length


def test_1_flac_of_unknown_length_is_read_to_its_real_end(tmp_path, rng):
    from sercli.audio import audio_info, load_audio

    p = zero_length_flac(tmp_path / "pipe.flac", speechlike(rng, 2.0))
    assert sf.info(str(p)).frames > 2**62  # what libsndfile makes of it
    assert audio_info(p).frames == 32000
    y, info = load_audio(p)
    assert len(y) == 32000 and info.frames == 32000


def test_1_flac_of_unknown_length_is_classified_in_bounded_memory(tmp_path, rng):
    """In a child capped at 1.5 GB of address space: it used to plan 3e14 windows and run out."""
    p = zero_length_flac(tmp_path / "pipe.flac", speechlike(rng, 9.0))
    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (1536 << 20, 1536 << 20)); "
        "from sercli.cli import main; sys.argv = ['sercli'] + sys.argv[1:]; main()"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, "classify", str(p), "-m", "svm", "-j", "1", "--segments"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert r.returncode == 0, r.stderr
    row = jsonl(r.stdout)[0]
    assert row["error"] is None and row["duration_s"] == 9.0
    assert [s["end_s"] for s in row["segments"]][-1] == 9.0 and len(row["segments"]) == 4


# --------------------------------------------------------------------------------------------
# 5. WAV codecs libsndfile decodes only as a stream


@pytest.mark.parametrize("subtype", ["GSM610", "G721_32", "NMS_ADPCM_16"])
def test_5_stream_only_wav_codecs_are_classified_and_plotted(tmp_path, rng, tiny_cnn, subtype):
    p = tmp_path / f"{subtype}.wav"
    sf.write(p, speechlike(rng, 1.5, sr=8000), 8000, subtype=subtype)
    r = run(["classify", str(p), "-m", str(tiny_cnn), "-j", "1"])
    assert r.exit_code == 0, r.output
    row = jsonl(r.stdout)[0]
    assert row["error"] is None and abs(row["duration_s"] - 1.5) < 0.05
    png = tmp_path / "x.png"
    r = run(["plot", str(p), "-o", str(png)])
    assert r.exit_code == 0, r.output
    assert png.read_bytes()[:4] == b"\x89PNG"


# --------------------------------------------------------------------------------------------
# Also: say why, not just "silent"; permission denied is not "no such file"


def test_also_all_inf_and_phase_inverted_stereo_say_why(tmp_path, rng, tiny_cnn):
    inf = tmp_path / "inf.wav"
    sf.write(inf, np.full(16000, np.inf, np.float32), 16000, subtype="FLOAT")
    y = speechlike(rng, 1.0)
    inv = tmp_path / "inverted.wav"
    sf.write(inv, np.stack([y, -y], axis=1), 16000, subtype="FLOAT")
    quiet = tmp_path / "quiet.wav"
    sf.write(quiet, np.zeros((16000, 2), np.float32), 16000)
    r = run(["classify", str(inf), str(inv), str(quiet), "-m", str(tiny_cnn), "-j", "1"])
    rows = jsonl(r.stdout)
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert rows[0]["error"] == f"{inf}: no finite samples: every sample is NaN or infinite"
    assert rows[1]["error"].startswith(f"{inv}: silent once its 2 channels are mixed to mono: they cancel")
    from sercli.silence import REASON as SILENT_REASON

    assert rows[2]["error"] == f"{quiet}: silent: {SILENT_REASON}"


def test_also_permission_denied_is_not_no_such_file(tmp_path, rng, tiny_cnn, monkeypatch):
    """Root reads anything, so the refusal is simulated where sercli looks the path up."""
    p = tmp_path / "locked" / "x.wav"
    p.parent.mkdir()
    sf.write(p, speechlike(rng, 1.0), 16000)
    real_lstat, real_stat = os.lstat, os.stat

    def refuse(real):
        def look(path, *a, **kw):
            if os.fspath(path) == str(p):
                raise PermissionError(13, "Permission denied", str(p))
            return real(path, *a, **kw)

        return look

    monkeypatch.setattr(os, "lstat", refuse(real_lstat))
    monkeypatch.setattr(os, "stat", refuse(real_stat))
    r = run(["classify", str(p), "-m", str(tiny_cnn), "-j", "1"])
    assert r.exit_code == 1 and "no such file" not in r.output, r.output
    assert jsonl(r.stdout)[0]["error"] == f"{p}: permission denied"


@pytest.fixture
def clips(tmp_path, rng):
    d = tmp_path / "clips"
    d.mkdir()
    for i in range(4):
        sf.write(d / f"c{i}.wav", speechlike(rng, 1.0, f0=120 + 30 * i), 16000)
    return d


def no_temp_files(folder: Path) -> bool:
    return not [n for n in os.listdir(folder) if n.endswith(".tmp")]


# --------------------------------------------------------------------------------------------
# 3. -o onto something that is not a regular file: written in place, never replaced


def _read_fifo_in_background(fifo: Path):
    import threading

    got = {}

    def reader():
        with open(fifo, "rb") as f:
            got["data"] = f.read()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    return t, got


def test_3_output_onto_a_fifo_or_a_link_to_one_is_written_in_place(clips, tiny_cnn, tmp_path):
    import stat

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "link.jsonl"
    link.symlink_to(fifo)
    for target, extra in ((fifo, ["--format", "jsonl"]), (link, [])):
        t, got = _read_fifo_in_background(fifo)
        r = run(["classify", str(clips), "-m", str(tiny_cnn), "-j", "1", "-o", str(target), *extra])
        t.join(30)
        assert r.exit_code == 0, r.output
        assert len(jsonl(got["data"].decode())) == 4
        assert stat.S_ISFIFO(os.stat(fifo).st_mode) and link.is_symlink()
    assert no_temp_files(tmp_path)


def test_3_output_through_a_link_to_a_report_replaces_the_report_and_keeps_the_link(clips, tiny_cnn, tmp_path):
    real = tmp_path / "real.csv"
    real.write_text("old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    r = run(["classify", str(clips), "-m", str(tiny_cnn), "-j", "1", "-o", str(link)])
    assert r.exit_code == 0, r.output
    assert link.is_symlink() and real.read_text().startswith("path,label,")


def test_3_plot_onto_a_fifo_writes_the_png_through_it(clips, tmp_path):
    fifo = tmp_path / "png"
    os.mkfifo(fifo)
    t, got = _read_fifo_in_background(fifo)
    r = run(["plot", str(clips / "c0.wav"), "-o", str(fifo)])
    t.join(30)
    assert r.exit_code == 0, r.output
    assert got["data"][:4] == b"\x89PNG" and fifo.is_fifo()


# --------------------------------------------------------------------------------------------
# 4. a report that cannot be written: one line, exit 1, no temporary file


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_4_stdout_on_a_full_disk_is_one_line(clips, tiny_cnn):
    with open("/dev/full", "w") as full:
        r = subprocess.run(
            [sys.executable, "-m", "sercli", "classify", str(clips), "-m", str(tiny_cnn), "-j", "1"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            cwd=REPO,
        )
    assert r.returncode == 1
    assert r.stderr == "Error: stdout: cannot write the report: no space left on device\n", r.stderr


def test_4_report_over_the_file_size_limit_is_one_line_and_leaves_no_temp_file(clips, tiny_cnn, tmp_path):
    import resource

    out = tmp_path / "out" / "r.jsonl"
    out.parent.mkdir()

    def cap():
        resource.setrlimit(resource.RLIMIT_FSIZE, (600, 600))

    r = subprocess.run(
        [sys.executable, "-m", "sercli", "classify", str(clips), "-m", str(tiny_cnn), "-j", "1", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        preexec_fn=cap,
    )
    assert r.returncode == 1
    assert r.stderr == f"Error: {out}: cannot write the report: file too large\n", r.stderr
    assert os.listdir(out.parent) == []


# --------------------------------------------------------------------------------------------
# 6. paths on stdin that are not UTF-8


def test_6_stdin_names_that_are_not_utf8_are_read_as_find_gives_them(tmp_path, rng, tiny_cnn):
    if not sys.platform.startswith("linux"):
        pytest.skip("needs a file system that takes any bytes in names")
    name = os.fsencode(str(tmp_path)) + b"/caf\xe9.wav"
    sf.write(name, speechlike(rng, 1.0), 16000)
    good = tmp_path / "good.wav"
    sf.write(good, speechlike(rng, 1.0), 16000)
    r = run(["classify", "-", "-m", str(tiny_cnn), "-j", "1"], input=name + b"\n" + os.fsencode(str(good)) + b"\r\n")
    assert r.exit_code == 0, r.output
    assert [x["path"] for x in jsonl(r.stdout)] == [os.fsdecode(name), str(good)]


# --------------------------------------------------------------------------------------------
# 7, 8. CSV: a carriage return in a name, formulas in cells


def _csv_rows(tmp_path, tiny_cnn, monkeypatch, names, broken=()):
    import csv

    for n in names:
        sf.write(tmp_path / n, speechlike(np.random.default_rng(0), 1.0), 16000)
    for n in broken:
        (tmp_path / n).write_bytes(b"not audio at all")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "r.csv"
    r = run(["classify", "-m", str(tiny_cnn), "-j", "1", "-o", str(out), "--", *names, *broken])
    assert r.exit_code == (1 if broken else 0), r.output
    with open(out, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_7_csv_quotes_a_carriage_return_in_a_name(tmp_path, tiny_cnn, monkeypatch):
    rows = _csv_rows(tmp_path, tiny_cnn, monkeypatch, ["a\rb.wav", "plain.wav"])
    assert [x["path"] for x in rows] == ["a\rb.wav", "plain.wav"]  # two files, two rows


def test_8_csv_neutralises_cells_a_spreadsheet_would_evaluate(tmp_path, tiny_cnn, monkeypatch):
    names = ["=1+1.wav", "@cmd.wav", "-2+3.wav", "+x.wav", "\tt.wav", "plain.wav"]
    rows = _csv_rows(tmp_path, tiny_cnn, monkeypatch, names, broken=["=HYPERLINK(1).wav"])
    assert [x["path"] for x in rows] == [
        "'=1+1.wav",
        "'@cmd.wav",
        "'-2+3.wav",
        "'+x.wav",
        "'\tt.wav",
        "plain.wav",
        "'=HYPERLINK(1).wav",
    ]
    assert rows[-1]["error"].startswith("'=HYPERLINK(1).wav: ")
    assert all(not v.startswith(("=", "+", "-", "@", "\t", "\r")) for x in rows for v in x.values())


# --------------------------------------------------------------------------------------------
# 14. -o that is an input


def test_14_output_that_is_an_input_is_refused(clips, tiny_cnn, tmp_path):
    wav = clips / "c0.wav"
    before = wav.read_bytes()
    manifest = tmp_path / "list.csv"
    manifest.write_text(f"path\n{clips / 'c1.wav'}\n")
    listing = manifest.read_text()
    for args in (
        [str(wav), "-o", str(wav), "--format", "jsonl"],
        [str(clips), "-o", str(tmp_path / "clips" / ".." / "clips" / "c0.wav"), "--format", "csv"],
        [str(manifest), "-o", str(manifest)],
    ):
        r = run(["classify", *args, "-m", str(tiny_cnn), "-j", "1"])
        assert r.exit_code == 2, r.output
        one_line_error(r, "is also an input", "refusing to overwrite it")
    r = run(["plot", str(wav), "-o", str(wav)])
    assert r.exit_code == 2 and "is also an input" in r.stderr
    assert wav.read_bytes() == before and manifest.read_text() == listing


# --------------------------------------------------------------------------------------------
# 16. a manifest cell over the csv module's field limit


def test_16_huge_manifest_cell_is_one_line(tmp_path, tiny_cnn):
    manifest = tmp_path / "list.csv"
    manifest.write_text("path,speaker\n" + "x" * (200 << 10) + ",s1\n")
    r = run(["classify", str(manifest), "-m", str(tiny_cnn), "-j", "1"])
    assert r.exit_code == 1
    one_line_error(r, str(manifest), "cannot read the manifest", "field larger than field limit")
    from sercli.corpora import CorpusError, read_manifest

    manifest.write_text("path,label\n" + "x" * (200 << 10) + ",angry\n")
    with pytest.raises(CorpusError, match="field larger than field limit"):
        read_manifest(manifest)


# --------------------------------------------------------------------------------------------
# 12. malformed model files that hold no pickle: refused when they load, one line


def _svm_parts(n_labels=6, dim=176, n_sv=12, seed=0):
    r = np.random.default_rng(seed)
    n_support = np.full(n_labels, n_sv // n_labels, np.int64)
    arrays = dict(
        mean=r.standard_normal(dim),
        scale=np.ones(dim),
        support_vectors=r.standard_normal((n_sv, dim)),
        dual_coef=r.standard_normal((n_labels - 1, n_sv)),
        intercept=r.standard_normal(n_labels * (n_labels - 1) // 2),
        n_support=n_support,
    )
    cfg = {
        "kind": "svm",
        "labels": ["angry", "disgust", "fear", "happy", "neutral", "sad"][:n_labels],
        "gamma": 0.01,
        "temperature": 1.0,
        "kernel": "rbf",
        "features": "summary",
    }
    return cfg, arrays


def _write_npz(path, cfg, arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays, config=np.frombuffer(json.dumps(cfg).encode(), dtype=np.uint8))
    return path


def _deep(n=100_000):
    return "[" * n + "]" * n


SVM_FAULTS = {
    "kind-ensemble": (lambda c, a: c.update(kind="ensemble"), "config kind 'ensemble'"),
    "3-labels": (lambda c, a: c.update(labels=c["labels"][:3]), "shape"),
    "7-labels": (lambda c, a: c.update(labels=c["labels"] + ["calm"]), "shape"),
    "no-labels": (lambda c, a: c.pop("labels"), "labels must be"),
    "no-gamma": (lambda c, a: c.pop("gamma"), "gamma is missing"),
    "gamma-string": (lambda c, a: c.update(gamma="0.1"), "gamma must be a number"),
    "gamma-list": (lambda c, a: c.update(gamma=[0.1]), "gamma must be a number"),
    "sv-shape": (lambda c, a: a.update(support_vectors=a["support_vectors"][:, :100]), "support_vectors has shape"),
    "intercept-shape": (lambda c, a: a.update(intercept=a["intercept"][:3]), "intercept has shape"),
    "nan": (lambda c, a: a["mean"].__setitem__(0, np.nan), "finite numbers"),
}


@pytest.mark.parametrize("fault", list(SVM_FAULTS))
def test_12_malformed_svm_file_is_refused_when_it_loads(tmp_path, clips, fault):
    edit, words = SVM_FAULTS[fault]
    cfg, arrays = _svm_parts()
    edit(cfg, arrays)
    p = _write_npz(tmp_path / "bad.npz", cfg, arrays)
    r = run(["classify", str(clips), "-m", str(p), "-j", "1"])
    assert r.exit_code == 1 and r.stdout == ""
    one_line_error(r, f"Error: {p}: not a valid sercli SVM file", words)


def test_12_a_valid_svm_file_of_the_same_making_loads(tmp_path, clips):
    """The control: the faults above are the only difference."""
    p = _write_npz(tmp_path / "ok.npz", *_svm_parts())
    r = run(["classify", str(clips), "-m", str(p), "-j", "1"])
    assert r.exit_code == 0, r.output
    assert all(abs(sum(x["scores"].values()) - 1) < 1e-5 for x in jsonl(r.stdout))


@pytest.mark.parametrize("fault", ["kind-svm", "kind-ensemble", "5-labels", "7-labels", "no-labels"])
def test_12_malformed_torch_file_is_refused_when_it_loads(tmp_path, clips, tiny_cnn, fault):
    import torch

    blob = torch.load(tiny_cnn, weights_only=True)
    cfg = blob["config"]
    {
        "kind-svm": lambda: cfg.update(kind="svm"),
        "kind-ensemble": lambda: cfg.update(kind="ensemble"),
        "5-labels": lambda: cfg.update(labels=cfg["labels"][:5]),
        "7-labels": lambda: cfg.update(labels=cfg["labels"] + ["calm"]),
        "no-labels": lambda: cfg.pop("labels"),
    }[fault]()
    p = tmp_path / "bad.pt"
    torch.save(blob, p)
    r = run(["classify", str(clips), "-m", str(p), "-j", "1"])
    assert r.exit_code == 1 and r.stdout == ""
    one_line_error(r, f"Error: {p}: not a valid sercli model file", "config kind" if "kind" in fault else "labels")


def _ensemble(path: Path, members: list[Path], **extra):
    from sercli.models import sha256_file

    spec = {
        "format": "sercli-ensemble",
        "members": [
            {"file": os.path.relpath(m, path.parent), "sha256": sha256_file(m), "weight": 1 / len(members)}
            for m in members
        ],
        **extra,
    }
    path.write_text(json.dumps(spec))
    return path


def test_12_deeply_nested_ensemble_or_card_is_one_line(tmp_path, clips, tiny_cnn):
    ens = tmp_path / "deep.json"
    ens.write_text('{"format": "sercli-ensemble", "members": ' + _deep() + "}")
    r = run(["classify", str(clips), "-m", str(ens), "-j", "1"])
    assert r.exit_code == 1
    one_line_error(r, f"{ens}: not a valid sercli ensemble file", "nested too deeply")
    r = run(["info", "-m", str(ens)])
    assert r.exit_code == 1
    one_line_error(r, f"{ens}: not a valid sercli ensemble file")
    # a card that cannot be read is no card: the model still loads, info still shows it
    model = tmp_path / "m.pt"
    model.write_bytes(tiny_cnn.read_bytes())
    (tmp_path / "m.card.json").write_text('{"data": ' + _deep() + "}")
    for fmt in ("json", "table"):
        r = run(["info", "-m", str(model), "--format", fmt])
        assert r.exit_code == 0 and "Traceback" not in r.output, r.output
    (tmp_path / "m.card.json").write_text('{"data": {"train": {"clips": 3}}}')  # fields missing
    r = run(["info", "-m", str(model)])
    assert r.exit_code == 1
    one_line_error(r, "m.card.json: malformed model card")


# --------------------------------------------------------------------------------------------
# 13. size limits on model files


def _npz_bomb(path: Path, n_bytes: int) -> Path:
    """An .npz whose `mean` entry inflates to n_bytes of zeros (a deflate bomb of ~n/1000 bytes)."""
    import zipfile

    cfg, arrays = _svm_parts()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for k, a in arrays.items():
            if k != "mean":
                with z.open(f"{k}.npy", "w") as f:
                    np.lib.format.write_array(f, a)
        with z.open("config.npy", "w") as f:
            np.lib.format.write_array(f, np.frombuffer(json.dumps(cfg).encode(), dtype=np.uint8))
        with z.open("mean.npy", "w", force_zip64=True) as f:
            n = n_bytes // 8
            np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (n,)})
            zeros = bytes(8 << 20)
            for _ in range(n * 8 // len(zeros)):
                f.write(zeros)
    return path


def test_13_npz_deflate_bomb_is_refused_before_it_is_inflated(tmp_path):
    """1 GiB of zeros in a ~1 MB file: refused from the zip directory, in a child whose memory
    is capped at 1 GB (it used to inflate the lot: 2.1 GB)."""
    p = _npz_bomb(tmp_path / "bomb.npz", 1 << 30)
    assert p.stat().st_size < 8 << 20
    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30)); "
        "from sercli.models import load_file; from sercli.errors import ModelError\n"
        "try:\n    load_file(sys.argv[1])\nexcept ModelError as e:\n    print(e)\n"
    )
    r = subprocess.run([sys.executable, "-c", code, str(p)], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"{p}: too large once decompressed (1024 MiB, at most 256 MiB)"), r.stdout


def test_13_npy_header_cannot_declare_more_than_its_entry_holds(tmp_path):
    import zipfile

    from sercli.errors import ModelError
    from sercli.models import load_file

    p = _write_npz(tmp_path / "ok.npz", *_svm_parts())
    q = tmp_path / "lying.npz"
    with zipfile.ZipFile(p) as src, zipfile.ZipFile(q, "w") as dst:
        for i in src.infolist():
            data = src.read(i)
            if i.filename == "mean.npy":
                import io

                b = io.BytesIO()
                np.lib.format.write_array_header_1_0(b, {"descr": "<f8", "fortran_order": False, "shape": (1 << 40,)})
                data = b.getvalue() + data[len(b.getvalue()) :]
            dst.writestr(i, data)
    with pytest.raises(ModelError, match="mean.npy declares 8796093022208 bytes"):
        load_file(q)


def test_13_ensemble_member_count_is_bounded_and_a_repeated_member_loads_once(tmp_path, tiny_cnn, monkeypatch, clips):
    from sercli import models

    member = tmp_path / "m.pt"
    member.write_bytes(tiny_cnn.read_bytes())
    r = run(["classify", str(clips), "-j", "1", "-m", str(_ensemble(tmp_path / "many.json", [member] * 400))])
    assert r.exit_code == 1
    one_line_error(r, "many.json: not a valid sercli ensemble file", "400 members, at most 16")
    calls = []
    real = models.load_file

    def spy(path, **kw):
        calls.append(os.path.basename(path))
        return real(path, **kw)

    monkeypatch.setattr(models.loading, "load_file", spy)
    m = models.load_ensemble(_ensemble(tmp_path / "three.json", [member] * 3), "x", None)
    assert calls == ["m.pt"] and len(m.impl.members) == 3


# --------------------------------------------------------------------------------------------
# 17. an unknown model or a missing model file is a usage error


@pytest.mark.parametrize("cmd", [["classify", "x.wav"], ["info"], ["plot", "x.wav"]])
@pytest.mark.parametrize("model", ["nosuchmodel", "missing/model.pt"])
def test_17_unknown_model_is_a_usage_error(cmd, model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sf.write(tmp_path / "x.wav", np.zeros(16000, np.float32), 16000)
    r = run([*cmd, "-m", model])
    assert r.exit_code == 2
    one_line_error(r, f"--model {model}: ", "unknown model" if "/" not in model else "no such model file")


# --------------------------------------------------------------------------------------------
# 11. --resume validates what it resumes


@pytest.mark.parametrize("bad", ["path-list", "deep", "foreign", "fifo", "mid-line-junk", "twice"])
def test_11_resume_refuses_a_damaged_or_foreign_report(clips, tiny_cnn, tmp_path, bad):
    out = tmp_path / "r.jsonl"
    good = run(["classify", str(clips / "c0.wav"), "-m", str(tiny_cnn), "-j", "1", "-o", str(out)])
    assert good.exit_code == 0
    row = out.read_text()
    if bad == "fifo":
        out.unlink()
        os.mkfifo(out)
    else:
        out.write_text(
            {
                "path-list": row + '{"path": ["a"], "label": null, "error": "x"}\n',
                "deep": row + _deep(50_000) + "\n",
                "foreign": row + row.replace(str(clips), "/elsewhere"),
                "mid-line-junk": "{oops\n" + row,
                "twice": row + row,
            }[bad]
        )
    before = None if bad == "fifo" else out.read_text()
    args = ["classify", str(clips), "-m", str(tiny_cnn), "-j", "1", "-o", str(out), "--resume"]
    if bad == "fifo":  # in a child, so that a hang is a failure, not a hung test run
        p = subprocess.run(
            [sys.executable, "-m", "sercli", *args], capture_output=True, text=True, timeout=60, cwd=REPO
        )
        r = type("R", (), dict(exit_code=p.returncode, stderr=p.stderr, output=p.stdout + p.stderr))
    else:
        r = run(args)
    assert r.exit_code == 1
    one_line_error(
        r,
        f"Error: {out}: cannot resume from it: ",
        {
            "path-list": "line 2 is not a sercli report row",
            "deep": "line 2 is nested too deeply",
            "foreign": "1 of its rows are for files that are not inputs of this run (first: /elsewhere/c0.wav)",
            "fifo": "not a regular file",
            "mid-line-junk": "line 1 is not JSON",
            "twice": "line 2 is a second row for",
        }[bad],
    )
    if before is not None:
        assert out.read_text() == before


# --------------------------------------------------------------------------------------------
# 15. train on data it cannot learn from: one line


def test_15_train_with_one_label_is_one_line(tiny_corpus, tmp_path):
    recipe = tmp_path / "one.toml"
    recipe.write_text('extends = "svm"\nlabels = ["angry"]\n')
    r = run(["train", "--data", str(tiny_corpus), "--recipe", str(recipe), "--out", str(tmp_path / "w")])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert r.stderr.splitlines()[-1] == ("Error: recipe one: labels must be two or more distinct names, got ['angry']")


@pytest.mark.parametrize("recipe", ["svm", "cnn"])
def test_15_train_on_undecodable_files_is_one_line(tiny_corpus, tmp_path, recipe):
    import shutil

    d = tmp_path / "data"
    shutil.copytree(tiny_corpus, d)
    n = 0
    for p in d.rglob("*.wav"):  # the same corpus, every file broken
        p.write_bytes(b"RIFF" + bytes(200))
        n += 1
    r = run(
        [
            "train",
            "--data",
            str(d),
            "--recipe",
            recipe,
            "--out",
            str(tmp_path / "w"),
            "--cache",
            str(tmp_path / "cache"),
            "-j",
            "1",
            "--epochs",
            "1",
        ]
    )
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    last = r.stderr.splitlines()[-1]
    assert last.startswith(
        f"Error: {d}: no training clip of angry, disgust, fear, happy, neutral, sad could be decoded ({n} files failed"
    ), last
    assert not (tmp_path / "w").exists()


# --------------------------------------------------------------------------------------------
# 2, 9, 10. dead workers, SIGHUP, signals while the model loads: the CLI in a child process

import signal  # noqa: E402
import time  # noqa: E402

SITE_HOOKS = """
import os, signal, time
if os.environ.get("SERCLI_TEST_CRASH"):       # a worker that analyses a "crash" file dies
    import sercli.runtime.workers as _p
    _real = _p._analyse_in_worker
    def _analyse_in_worker(path, settings, cwd, caller_pid, *a, **kw):
        if os.environ["SERCLI_TEST_CRASH"] in os.path.basename(path) and os.getpid() != caller_pid:
            os.kill(os.getpid(), signal.SIGKILL)
        return _real(path, settings, cwd, caller_pid, *a, **kw)
    _p._analyse_in_worker = _analyse_in_worker
if os.environ.get("SERCLI_TEST_SLOW_LOAD"):   # loading the model takes a while; a marker says when
    import sercli.models as _m
    _load = _m.load_model
    def load_model(*a, **kw):
        open(os.environ["SERCLI_TEST_SLOW_LOAD"], "w").close()
        time.sleep(30)
        return _load(*a, **kw)
    _m.load_model = load_model
"""


@pytest.fixture
def hooks(tmp_path):
    d = tmp_path / "site"
    d.mkdir()
    (d / "sitecustomize.py").write_text(SITE_HOOKS)
    return d


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    return write_many_clips(tmp_path_factory.mktemp("many") / "clips", 120)


def _start(args, hooks=None, **env):
    e = dict(os.environ, **env)
    if hooks is not None:
        e["PYTHONPATH"] = os.pathsep.join([str(hooks), str(REPO)])
    return subprocess.Popen(
        [sys.executable, "-m", "sercli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        cwd=REPO,
        env=e,
        preexec_fn=as_from_a_terminal,
    )


def _finish(p, timeout=120):
    """Wait for the run; then no process of its session (its workers) may be left."""
    try:
        out, err = p.communicate(timeout=timeout)
    except BaseException:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise
    for _ in range(50):
        try:
            os.killpg(p.pid, 0)
        except ProcessLookupError:
            return p.returncode, out, err
        time.sleep(0.1)
    os.killpg(p.pid, signal.SIGKILL)
    pytest.fail(f"worker processes outlived sercli (exit {p.returncode}): {err}")


def _workers_of(pid: int) -> list[int]:
    """The loky worker processes started by `pid`."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = open(f"/proc/{d}/stat").read()
            cmd = open(f"/proc/{d}/cmdline", "rb").read()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"popen_loky" in cmd:
            out.append(int(d))
    return out


def _rows_in_temp(out: Path) -> int:
    import glob

    tmps = glob.glob(str(out.parent / f".{out.name}.*.tmp"))
    try:
        return Path(tmps[0]).read_text().count("\n") if tmps else 0
    except OSError:
        return 0


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the workers in /proc")
def test_2_a_worker_killed_mid_run_loses_nothing(many, tiny_cnn, tmp_path):
    out = tmp_path / "r.jsonl"
    p = _start(["classify", str(many), "-m", str(tiny_cnn), "-j", "2", "-o", str(out)])
    deadline, killed = time.time() + 60, None
    while time.time() < deadline and p.poll() is None and killed is None:
        workers = _workers_of(p.pid)
        if workers and _rows_in_temp(out) >= 1:
            os.kill(workers[0], signal.SIGKILL)  # as the OOM killer would
            killed = workers[0]
        time.sleep(0.02)
    assert killed, "the run ended before a worker could be killed"
    rc, _, err = _finish(p)
    assert rc == 0, err
    assert "Traceback" not in err and "TerminatedWorkerError" not in err, err
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["path"] for r in rows] == sorted(str(x) for x in many.iterdir())
    assert all(r["error"] is None for r in rows)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SIGKILL and sitecustomize hooks")
def test_2_a_file_that_kills_its_worker_every_time_gets_an_error_row(tmp_path, rng, tiny_cnn, hooks):
    d = tmp_path / "in"
    d.mkdir()
    for name in ("a.wav", "b crash.wav", "c.wav", "d.wav", "e.wav"):
        sf.write(d / name, speechlike(rng, 1.0), 16000)
    out = tmp_path / "r.jsonl"
    p = _start(["classify", str(d), "-m", str(tiny_cnn), "-j", "2", "-o", str(out)], hooks, SERCLI_TEST_CRASH="crash")
    rc, _, err = _finish(p)
    assert rc == 1 and "Traceback" not in err, err
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [os.path.basename(r["path"]) for r in rows] == ["a.wav", "b crash.wav", "c.wav", "d.wav", "e.wav"]
    assert [r["error"] is None for r in rows] == [True, False, True, True, True]
    assert rows[1]["error"].startswith(f"{d / 'b crash.wav'}: the worker process analysing it died")
    assert f"error: {rows[1]['error']}" in err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_9_10_a_signal_while_the_model_loads_ends_the_run_cleanly(many, tmp_path, hooks, sig):
    """Workers start before the model loads: none may outlive the run, and the exit status is
    128 + the signal (Ctrl-C gave 1 and "Aborted!", SIGTERM orphaned the workers)."""
    marker = tmp_path / "loading"
    out = tmp_path / "r.jsonl"
    out.write_text("")
    p = _start(
        ["classify", str(many), "-m", "svm", "-j", "2", "-o", str(out)], hooks, SERCLI_TEST_SLOW_LOAD=str(marker)
    )
    deadline = time.time() + 60
    while time.time() < deadline and not (marker.exists() and _workers_of(p.pid)):
        time.sleep(0.02)
    assert marker.exists() and p.poll() is None
    os.kill(p.pid, sig)
    rc, stdout, err = _finish(p, timeout=60)
    assert rc == 128 + sig, err
    assert f"interrupted ({signal.Signals(sig).name}) while loading the model: 0 of 120 files done" in err
    assert "Traceback" not in err and "Aborted" not in err, err
    assert out.read_text() == "" and not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_9_sighup_mid_run_keeps_the_report_and_leaves_no_worker(many, tiny_cnn, tmp_path):
    out = tmp_path / "r.jsonl"
    p = _start(["classify", str(many), "-m", str(tiny_cnn), "-j", "2", "-o", str(out)])
    deadline = time.time() + 60
    while time.time() < deadline and p.poll() is None and _rows_in_temp(out) < 1:
        time.sleep(0.02)
    assert p.poll() is None, "the run ended before it could be interrupted"
    os.kill(p.pid, signal.SIGHUP)
    rc, _, err = _finish(p, timeout=60)
    assert rc == 129, err
    assert "interrupted (SIGHUP)" in err and "Traceback" not in err, err
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert 0 < len(rows) < 120
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_10_ctrl_c_in_any_command_exits_130(tmp_path, hooks):
    marker = tmp_path / "loading"
    p = _start(["info", "-m", "svm"], hooks, SERCLI_TEST_SLOW_LOAD=str(marker))
    deadline = time.time() + 60
    while time.time() < deadline and not marker.exists():
        time.sleep(0.02)
    assert marker.exists() and p.poll() is None
    os.kill(p.pid, signal.SIGINT)
    rc, _, err = _finish(p, timeout=60)
    assert rc == 130 and err == "interrupted (SIGINT)\n", err


def _leak_limit_in_worker(path, settings, cwd, caller_pid):
    from joblib.externals.loky import process_executor

    from sercli.runtime import workers

    workers._analyse_in_worker(path, settings, cwd, caller_pid)
    return process_executor._MAX_MEMORY_LEAK_SIZE


def test_workers_allow_the_encoder_to_load_without_being_replaced_as_leaking(tmp_path):
    """loky replaces a worker (with a raw UserWarning on stderr) once it has grown 300 MB past its
    size after the first task; torch and a Whisper encoder loading on a later task did that
    (`sercli classify` of bench/models.py's 699 clips with whisper-tiny, every run). A worker
    running sercli's task allows WORKER_GROWTH_LIMIT."""
    from joblib import Parallel, delayed

    from sercli.parallel import WORKER_GROWTH_LIMIT
    from sercli.runtime.settings import Settings

    d = write_many_clips(tmp_path / "clips", 2)
    settings = Settings(needs=("summary",))
    got = Parallel(n_jobs=2, backend="loky")(
        delayed(_leak_limit_in_worker)(str(p), settings, str(tmp_path), os.getpid()) for p in sorted(d.iterdir())
    )
    assert got == [WORKER_GROWTH_LIMIT] * 2


def _leak_limit_after_encoding(path):
    from joblib.externals.loky import process_executor

    from sercli.encoded import _one
    from sercli.models import encoder_path

    process_executor._MAX_MEMORY_LEAK_SIZE = int(3e8)  # loky's default: as in a fresh worker
    h = _one(path, str(encoder_path("whisper-tiny.en")), "-", (1,), None)
    assert not isinstance(h, str), h
    return process_executor._MAX_MEMORY_LEAK_SIZE


def test_encoder_pass_workers_are_not_replaced_as_leaking(tmp_path):
    """The encoder pass of `sercli train` and `evaluate` (sercli.encoded) loads torch and the
    encoder in its workers as classify's do: each task allows WORKER_GROWTH_LIMIT too (a
    whisper recipe's training printed loky's raw UserWarning before)."""
    from joblib import Parallel, delayed

    from sercli.parallel import WORKER_GROWTH_LIMIT

    d = write_many_clips(tmp_path / "clips", 2)
    got = Parallel(n_jobs=2, backend="loky")(delayed(_leak_limit_after_encoding)(str(p)) for p in sorted(d.iterdir()))
    assert got == [WORKER_GROWTH_LIMIT] * 2


def _onednn_cache_after_loading(precision):
    from sercli.encoded import _encoder, run_precision
    from sercli.models import encoder_path

    _encoder(str(encoder_path("whisper-tiny.en")), run_precision(precision))
    return (os.environ.get("ONEDNN_PRIMITIVE_CACHE_CAPACITY"),)


@pytest.mark.parametrize("precision, preset", [("bf16", None), ("bf16", "64"), ("fp32", None)])
def test_bf16_encoder_workers_keep_a_small_onednn_cache(precision, preset, monkeypatch):
    """bf16 encoders make oneDNN primitives for every clip length; with its default cache of 1024
    a whisper-tiny run peaked 240 MB higher (bench/results-models.md). A worker that loads a bf16
    encoder sets a cache of 8 before oneDNN's first use; a value in the user's environment is
    kept; a float32 encoder (or bf16 on a CPU without it, which runs float32) keeps oneDNN's default."""
    from joblib import delayed
    from joblib.externals.loky import get_reusable_executor

    from sercli.encoded import ONEDNN_PRIMITIVE_CACHE, native_bf16
    from sercli.parallel import per_clip

    if preset is None:
        monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", preset)
    want = preset or (ONEDNN_PRIMITIVE_CACHE if precision == "bf16" and native_bf16() else None)
    get_reusable_executor().shutdown(wait=True)  # fresh workers, with this environment
    clips = [Clip(f"c{i}.wav", "x", "s", "happy") for i in range(2)]
    _, got, failed = per_clip(
        (delayed(_onednn_cache_after_loading)(precision) for _ in clips),
        clips,
        jobs=2,
        batch_size=1,
        desc="",
        progress=False,
    )
    assert not failed and got == [(want,)] * 2
    assert os.environ.get("ONEDNN_PRIMITIVE_CACHE_CAPACITY") == preset  # this process is left as it was


def test_a_reader_that_stops_early_gets_one_line_and_no_traceback(many, tiny_cnn):
    """`sercli classify ... | head -1`: the broken pipe is one line, exit 1. The loky callback
    thread, still dispatching as the pool shut down, used to print an "exception calling
    callback" traceback after it (4 runs of 4 before the fix). The bundled encoder model, as
    users run it: its clips take long enough that batches are still pending when the pipe breaks
    (with the fast test CNN the run had ended, and the test passed without the fix)."""
    p = _start(["classify", str(many), "-m", "whisper-tiny", "-j", "2", "--format", "jsonl", "-q"])
    json.loads(p.stdout.readline())  # one row, as `head -1` reads it
    p.stdout.close()
    try:
        err = p.stderr.read()
        p.wait(timeout=120)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == 1, err
    assert err == "Error: stdout: cannot write the report: broken pipe\n", err


def test_the_resource_tracker_keeps_its_leak_warnings_to_itself():
    """After an interrupt loky's resource tracker unlinks the dropped pool's semaphores when
    sercli exits, and warned about each on sercli's stderr after the run's last line (a CI run
    of the interrupt tests). A process that ran the CLI leaves a semaphore registered, as a
    killed pool does, and exits: nothing from the tracker may follow."""
    script = (
        "from click.testing import CliRunner\n"
        "from sercli.cli import cli\n"
        "CliRunner().invoke(cli, ['info', '-m', 'svm'])\n"
        "from joblib.externals.loky.backend import resource_tracker as rt\n"
        "rt.ensure_running()\n"
        "rt.register(f'/loky-sercli-test-{__import__(\"os\").getpid()}', 'semlock')\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "resource_tracker" not in out.stderr, out.stderr
