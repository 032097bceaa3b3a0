"""Report writers: JSON Lines, JSON, CSV and a rich table; atomic file output.

Records are plain dicts (ClipResult.to_dict); scores are flattened to one CSV column per label.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import stat
import tempfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from .errors import display_path

FORMATS = ("table", "jsonl", "json", "csv")
BASE_COLUMNS = ["path", "label", "confidence", "duration_s", "sample_rate", "channels", "model", "error"]


def format_for(path: str | os.PathLike) -> str | None:
    """Report format implied by a file extension (None if it implies none)."""
    ext = Path(path).suffix.lower()
    return {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv"}.get(ext)


def dumps(record: dict) -> str:
    """One JSON line. A path that is not valid UTF-8 (its bytes held as surrogates, as Python
    decodes file names) is written with \\udcXX escapes, which json.loads turns back into the
    same path; everything else stays readable UTF-8."""
    s = json.dumps(record, ensure_ascii=False, allow_nan=False)
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        s = json.dumps(record, ensure_ascii=True, allow_nan=False)
    return s


def text(s):
    """`s` encodable as UTF-8: undecodable file-name bytes shown as \\xNN (CSV and table)."""
    if not isinstance(s, str):
        return s
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        try:
            return s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:
            return s.encode("utf-8", "backslashreplace").decode("utf-8")


#: first characters that make a spreadsheet read a cell as a formula (CSV injection)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(v):
    """A text cell for CSV: `text(v)`, with a `'` put before a cell that begins with a formula
    character (= + - @ tab CR), so that a spreadsheet shows it instead of evaluating it (a file
    named `=HYPERLINK(...).wav`). Numbers and None are unchanged."""
    v = text(v)
    if isinstance(v, str) and v.startswith(FORMULA_START):
        return "'" + v
    return v


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class AtomicFile:
    """A text file written under a temporary name and renamed into place on commit().

    Never leaves a half-written report at `path`: abort() (or an exception inside `with`)
    removes the temp file, even when closing it fails too (a full disk, the file-size limit).
    The file gets the mode a plain open() would give it (or keeps the mode of the report it
    replaces), not mkstemp's owner-only 0600. A symbolic link is kept: the regular file it
    points to is replaced. Only regular files (and new paths) are replaced: a device, FIFO or
    socket (`/dev/null`, `/dev/stdout`, a pipe) is written in place, never turned into a
    regular file. commit() and abort() are idempotent. Raises OSError when the folder cannot
    be written. `binary=True` gives a bytes file.
    """

    def __init__(self, path: str | os.PathLike, *, binary: bool = False):
        self.path = Path(path)
        self.done = False
        self.tmp = None
        mode, kw = ("wb", {}) if binary else ("w", dict(encoding="utf-8", newline=""))
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", str(self.path))
        if st is not None and not stat.S_ISREG(st.st_mode):
            self.f = open(self.path, mode, **kw)  # in place: never replace a special file
            return
        if self.path.is_symlink():  # replace what the link points to
            self.path = Path(os.path.realpath(self.path))
        d = self.path.parent if str(self.path.parent) else Path(".")
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=d)
        try:
            fmode = stat.S_IMODE(st.st_mode) if st is not None else 0o666 & ~_umask()
            if hasattr(os, "fchmod"):
                os.fchmod(fd, fmode)
            self.f = os.fdopen(fd, mode, **kw)
        except BaseException:
            os.close(fd)
            os.unlink(self.tmp)
            raise

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    def commit(self) -> None:
        """Flush, sync and rename into place; on an OSError the temp file is removed and the
        error raised."""
        if self.done:
            return
        try:
            self.f.flush()
            if self.tmp is not None:
                os.fsync(self.f.fileno())
            self.f.close()
            if self.tmp is not None:
                os.replace(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise
        self.done = True

    def abort(self) -> None:
        if self.done:
            return
        self.done = True
        try:
            self.f.close()  # flushes what is buffered, which can fail again
        except OSError:
            pass
        if self.tmp is not None:
            try:
                os.unlink(self.tmp)
            except FileNotFoundError:
                pass


class Writer:
    """Streams records to a text stream in one format. `close()` finishes JSON/CSV/table output."""

    def __init__(
        self,
        out: IO[str],
        fmt: str,
        labels: Iterable[str],
        *,
        segments: bool = False,
        top_k: bool = False,
        console=None,
    ):
        self.out, self.fmt, self.labels = out, fmt, list(labels)
        self.segments, self.top_k = segments, top_k
        self.rows: list[dict] = []
        self.n = 0
        self.console = console
        if fmt == "csv":
            cols = BASE_COLUMNS + [f"score_{lab}" for lab in self.labels]
            if top_k:  # top_k: K (a bool from older callers: K from each record)
                k = top_k if type(top_k) is int else len(self.labels)
                cols += [c for i in range(1, k + 1) for c in (f"top{i}_label", f"top{i}_score")]
            if segments:  # long form: one row per window, the file's own label beside it
                cols = (
                    ["path", "start_s", "end_s", "label", "confidence", "silent"]
                    + [f"score_{lab}" for lab in self.labels]
                    + ["file_label", "file_confidence", "duration_s", "sample_rate", "channels", "model", "error"]
                    + [c for c in cols if c.startswith("top")]
                )
            self.csv = csv.DictWriter(out, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
            # the csv module quotes a cell holding "\n" but not one holding a lone "\r", which
            # readers take for a line end: rows with one are written with every cell quoted
            self.csv_quoted = csv.DictWriter(
                out, fieldnames=cols, extrasaction="ignore", lineterminator="\n", quoting=csv.QUOTE_ALL
            )
            self.csv.writeheader()
        elif fmt == "json":
            out.write("[")

    def write(self, record: dict) -> None:
        if self.fmt == "jsonl":
            self.out.write(dumps(record) + "\n")
            self.out.flush()
        elif self.fmt == "json":
            self.out.write(("\n" if self.n == 0 else ",\n") + dumps(record))
        elif self.fmt == "csv":
            row = {k: csv_cell(record.get(k)) for k in BASE_COLUMNS}
            for lab in self.labels:
                row[f"score_{lab}"] = (record.get("scores") or {}).get(lab)
            for i, d in enumerate(record.get("top_k") or [], 1):
                row[f"top{i}_label"], row[f"top{i}_score"] = d["label"], d["score"]
            if not self.segments:
                self._csv_row(row)
            else:
                row["file_label"], row["file_confidence"] = row.pop("label"), row.pop("confidence")
                for seg in record.get("segments") or [None]:  # a file without windows: one row
                    r = dict(row)
                    if seg is not None:
                        r.update(
                            start_s=seg["start_s"],
                            end_s=seg["end_s"],
                            label=seg["label"],
                            confidence=seg["confidence"],
                            silent=int(bool(seg["silent"])),
                        )
                        for lab in self.labels:
                            r[f"score_{lab}"] = (seg.get("scores") or {}).get(lab)
                    self._csv_row(r)
        else:
            self.rows.append(record)
        self.n += 1

    def _csv_row(self, row: dict) -> None:
        cr = any(isinstance(v, str) and "\r" in v for v in row.values())
        (self.csv_quoted if cr else self.csv).writerow(row)

    def close(self) -> None:
        """Finish the output; a second call does nothing."""
        if getattr(self, "closed", False):
            return
        self.closed = True
        if self.fmt == "json":
            self.out.write("\n]\n" if self.n else "]\n")
        elif self.fmt == "table":
            render_table(self.rows, self.out, top_k=self.top_k, console=self.console, segments=self.segments)
        self.out.flush()


def render_table(rows: list[dict], out: IO[str], *, top_k: bool = False, console=None, segments: bool = False) -> None:
    """The report as a rich table; with `segments`, each window on a line of its own under its
    file (its time span, label, confidence and runner-up; silent windows say so)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    con = console or Console(file=out)
    t = Table(show_lines=False)
    t.add_column("file", overflow="fold")
    t.add_column("emotion")
    t.add_column("conf.", justify="right")
    t.add_column("top scores" if top_k else "runner-up")
    t.add_column("dur. s", justify="right")
    t.add_column("note", overflow="fold")
    for r in rows:
        scores = r.get("scores") or {}
        ranked = sorted(scores.items(), key=lambda kv: -kv[1])
        if top_k and r.get("top_k"):
            extra = ", ".join(f"{d['label']} {d['score']:.2f}" for d in r["top_k"])
        else:
            extra = ", ".join(f"{k} {v:.2f}" for k, v in ranked[1:2])
        # Text, not markup: a file name like "take[/1].wav" must not be parsed as rich markup
        t.add_row(
            Text(display_path(r["path"])),
            r.get("label") or "-",
            f"{r['confidence']:.2f}" if r.get("confidence") is not None else "-",
            extra,
            f"{r['duration_s']:.1f}" if r.get("duration_s") is not None else "-",
            "" if r.get("error") is None else Text(text(_reason_only(r)), style="red"),
            end_section=segments and not r.get("segments"),
        )
        segs = r.get("segments") or [] if segments else []
        for i, sg in enumerate(segs):
            ranked = sorted((sg.get("scores") or {}).items(), key=lambda kv: -kv[1])
            t.add_row(
                Text(f"  {sg['start_s']:.1f}–{sg['end_s']:.1f} s", style="dim", no_wrap=True),
                sg.get("label") or "-",
                f"{sg['confidence']:.2f}" if sg.get("confidence") is not None else "-",
                ", ".join(f"{k} {v:.2f}" for k, v in ranked[1:2]),
                "",
                "silent" if sg.get("silent") else "",
                end_section=i == len(segs) - 1,
            )
    con.print(t)


def _reason_only(r: dict) -> str:
    err = r["error"]
    for shown in (display_path(r["path"]), r["path"]):
        if err.startswith(f"{shown}: "):
            return err[len(shown) + 2 :]
    return err


def summary_lines(records: list[dict] | Counter, failed: int, elapsed: float, n: int) -> list[str]:
    counts = records if isinstance(records, Counter) else Counter(r["label"] for r in records if r.get("label"))
    lines = [
        f"classified {n - failed} of {n} files in {elapsed:.1f} s ({n / elapsed if elapsed > 0 else 0:.1f} files/s)"
    ]
    if counts:
        lines.append(
            "  " + ", ".join(f"{lab} {c}" for lab, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        )
    if failed:
        lines.append(f"  {failed} failed (rows with an error are in the report)")
    return lines


def read_jsonl_paths(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Lines and paths of an existing JSON Lines report (for --resume); a torn last line is
    dropped. ValueError naming the line when a line is not a report row (not JSON, nested too
    deeply, not an object with a string path and a label or error), or a path comes twice."""
    lines, paths, seen = [], [], set()
    with open(path, encoding="utf-8") as f:
        for no, line in enumerate(f, 1):
            if not line.endswith("\n"):
                break
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except RecursionError:
                raise ValueError(f"line {no} is nested too deeply") from None
            except ValueError:
                raise ValueError(f"line {no} is not JSON") from None
            if not (
                isinstance(rec, dict)
                and isinstance(rec.get("path"), str)
                and isinstance(rec.get("label"), (str, type(None)))
                and isinstance(rec.get("error"), (str, type(None)))
                and "label" in rec
                and "error" in rec
            ):
                raise ValueError(f"line {no} is not a sercli report row")
            if rec["path"] in seen:
                raise ValueError(f"line {no} is a second row for {display_path(rec['path'])}")
            seen.add(rec["path"])
            lines.append(line)
            paths.append(rec["path"])
    return lines, paths
