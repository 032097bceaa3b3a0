"""classify's inputs: paths on the command line, on stdin (-) or in CSV manifests, to audio files."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable

import click

from .checks import missing
from .messages import os_reason, usage_line


def stdin_bytes() -> Iterable[bytes]:
    """stdin as lines of bytes (a test runner's stdin may be text only)."""
    buf = getattr(sys.stdin, "buffer", None)
    if buf is not None:
        return buf
    return (line.encode("utf-8", "surrogateescape") for line in sys.stdin)


def expand_stdin(paths: Iterable[str]) -> list[str]:
    """The paths given, with `-` replaced by the paths read from stdin, one a line."""
    inputs = []
    for p in paths:
        if p == "-":  # bytes, as find prints them: a name need not be UTF-8
            inputs += [os.fsdecode(line.rstrip(b"\r\n")) for line in stdin_bytes() if line.strip()]
        else:
            inputs.append(p)
    return inputs


def check_paths_exist(paths: Iterable[str]) -> None:
    """A path on the command line that is not there is a usage error."""
    from ..errors import display_path

    for p in paths:
        if p != "-" and missing(p):
            usage_line(f"{display_path(p)}: no such file or folder")


def read_manifests(inputs: list[str], debug: bool) -> tuple[list[str], dict[str, str]]:
    """Inputs with each .csv file replaced by its manifest's paths, and those paths' speakers."""
    from ..discovery import read_path_manifest
    from ..errors import SercliError, display_path

    out, speakers = [], {}
    for p in inputs:
        if not (p.lower().endswith(".csv") and os.path.isfile(p)):
            out.append(p)
            continue
        try:
            rows = read_path_manifest(p)
        except SercliError as exc:
            usage_line(exc)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            if debug:
                raise
            raise click.ClickException(f"{display_path(p)}: cannot read the manifest: {os_reason(exc)}") from exc
        out += [q for q, _ in rows]
        speakers.update({q: s for q, s in rows if s})
    return out, speakers


def find_files(
    inputs: list[str], *, recursive: bool, extensions: list[str] | None, debug: bool, warn: Callable[[str], None]
) -> tuple[list[str], dict[str, str]]:
    """The audio files the inputs name (folders walked, manifests read), and the speakers the
    manifests give them."""
    from ..discovery import collect_paths

    inputs, speakers = read_manifests(inputs, debug)
    return collect_paths(inputs, recursive=recursive, extensions=extensions, warn=warn), speakers
