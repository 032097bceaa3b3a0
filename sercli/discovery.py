"""Finding the audio files to work on: one folder walker and one CSV manifest reader.

`sercli classify` expands its inputs with collect_paths and reads `path[,speaker]` manifests
with read_path_manifest; training and evaluation (corpora.scan) walk a data folder with
walk_audio and read `path,label,...` manifests through read_manifest_rows too.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from .constants import AUDIO_EXTENSIONS
from .errors import SercliError, display_path


def is_audio_name(path: str | os.PathLike, extensions: Iterable[str] = AUDIO_EXTENSIONS) -> bool:
    return Path(path).suffix.lower().lstrip(".") in set(extensions)


def walk_audio(
    root: str | os.PathLike,
    *,
    extensions: Iterable[str] = AUDIO_EXTENSIONS,
    recursive: bool = True,
    folders: bool = False,
    warn: Callable[[str], None] | None = None,
) -> list[str]:
    """Entries under `root` named like audio (by extension), sorted.

    Symlinked folders inside `root` are not followed, so loops cannot hang (`root` itself is
    walked even when it is a symlink). `folders=True` keeps folders and folder links named like
    audio too, so that a caller can give them an error row. A sub-folder that cannot be read is
    skipped, with a warning through `warn` when given.
    """
    exts = {e.lower().lstrip(".") for e in extensions}

    def wanted(name: str) -> bool:
        return os.path.splitext(name)[1].lower().lstrip(".") in exts

    def unreadable(exc: OSError) -> None:
        if warn:
            where = exc.filename if exc.filename is not None else "?"
            warn(
                f"warning: {display_path(where)}: cannot read folder "
                f"({(exc.strerror or str(exc)).lower()}); its files are skipped"
            )

    root = os.fspath(root)
    found: list[str] = []
    if recursive:
        for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
            dirnames.sort()
            found += [os.path.join(dirpath, n) for n in filenames if wanted(n)]
            if folders:
                found += [os.path.join(dirpath, n) for n in dirnames if wanted(n)]
    else:
        try:
            with os.scandir(root) as it:
                found += [e.path for e in it if wanted(e.name) and (folders or not _is_dir(e))]
        except OSError as exc:
            unreadable(exc)
    return sorted(found)


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def collect_paths(
    inputs: Iterable[str],
    *,
    recursive: bool = True,
    extensions: Iterable[str] | None = None,
    warn: Callable[[str], None] | None = None,
) -> list[str]:
    """Expand files and folders into a deterministic list of paths, each once.

    Folders are walked (walk_audio: sorted, symlinked folders inside them not followed, a folder
    given explicitly walked even when it is a symlink); inside them, entries whose extension is
    an audio extension are kept, including folders or broken links named like audio, which then
    get an error row. Paths given explicitly are kept whatever their extension. A sub-folder
    that cannot be read is reported through `warn`.
    """
    exts = tuple(extensions or AUDIO_EXTENSIONS)
    out: list[str] = []
    seen: set[str] = set()
    for item in inputs:
        item = os.fspath(item)
        found = (
            walk_audio(item, extensions=exts, recursive=recursive, folders=True, warn=warn)
            if os.path.isdir(item)
            else [item]
        )
        for p in found:
            if p not in seen:
                seen.add(p)
                out.append(p)
    return out


class ManifestColumnsError(SercliError):
    """A manifest lacks a column its reader needs (`missing`, lower-case names)."""

    def __init__(self, csv_path: str, missing: list[str]):
        super().__init__(f"{display_path(csv_path)}: a manifest needs the columns " + ", ".join(missing))
        self.missing = missing


class ManifestSyntaxError(ValueError):
    """A line the csv module cannot read (e.g. a cell over its 128 KiB field limit)."""


def read_manifest_rows(csv_path: str | os.PathLike, required: tuple[str, ...] = ("path",)) -> list[dict[str, str]]:
    """The rows of a CSV manifest, each as {column: cell}: column names stripped and lower-cased,
    cells stripped ("" when absent). A row's non-empty `path` is made relative to the manifest's
    folder unless absolute. Raises ManifestColumnsError when a `required` column is missing and
    ManifestSyntaxError ("line N: ...") for a line the csv module cannot read.
    """
    csv_path = os.fspath(csv_path)
    base = os.path.dirname(csv_path)
    rows = []
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        try:
            cols = {(c or "").strip().lower() for c in reader.fieldnames or []}
            missing = [c for c in required if c not in cols]
            if missing:
                raise ManifestColumnsError(csv_path, missing)
            for row in reader:
                row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
                p = row.get("path", "")
                if p and not os.path.isabs(p):
                    row["path"] = os.path.join(base, p)
                rows.append(row)
        except csv.Error as exc:
            raise ManifestSyntaxError(f"line {reader.line_num}: {exc}") from None
    return rows


def read_path_manifest(csv_path: str | os.PathLike) -> list[tuple[str, str | None]]:
    """(path, speaker) of each row of a CSV manifest with a `path` column (relative paths are
    read from the manifest's folder); speaker is None when the column is absent or empty.
    Other columns (label, corpus, ...) are ignored; rows without a path are skipped.
    Raises SercliError for a missing `path` column, ValueError for an unreadable line."""
    try:
        rows = read_manifest_rows(csv_path, ("path",))
    except ManifestColumnsError:
        raise SercliError(
            f"{display_path(os.fspath(csv_path))}: a manifest needs a 'path' column (and optionally 'speaker')"
        ) from None
    return [(r["path"], r.get("speaker") or None) for r in rows if r["path"]]
