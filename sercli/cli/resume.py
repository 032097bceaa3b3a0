"""--resume: the rows an earlier, interrupted run wrote to the JSON Lines report."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field

import click

from .messages import os_reason, say


@dataclass
class Resumed:
    """The report's rows so far (written again first, as they were), and how many of them failed."""

    lines: list[str] = field(default_factory=list)
    paths: set[str] = field(default_factory=set)
    failed: int = 0


def read_resumed(output: str, files: list[str], quiet: bool) -> Resumed:
    """The rows already in `output`, which must be a JSON Lines report of some of `files`."""
    from ..errors import display_path
    from ..report import read_jsonl_paths

    try:
        if not stat.S_ISREG(os.stat(output).st_mode):  # a FIFO would block for ever
            raise ValueError("not a regular file")
        done_lines, done_paths = read_jsonl_paths(output)
        inputs_now = set(files)
        foreign = [p for p in done_paths if p not in inputs_now]
        if foreign:
            raise ValueError(
                f"{len(foreign)} of its rows are for files that are not inputs of "
                f"this run (first: {display_path(foreign[0])})"
            )
    except (OSError, ValueError) as exc:
        why = os_reason(exc) if isinstance(exc, OSError) else " ".join(str(exc).split())
        raise click.ClickException(f"{display_path(output)}: cannot resume from it: {why}") from exc
    failed = sum(1 for line in done_lines if json.loads(line).get("error") is not None)
    resumed = Resumed(done_lines, set(done_paths), failed)
    say(f"resuming: {len(resumed.paths)} files already in {display_path(output)}", quiet)
    return resumed


def files_to_run(files: list[str], resumed: Resumed, normalize_by: str) -> tuple[list[str], set[str]]:
    """The files to analyse, and those of them to analyse but not write again: without groups
    the files already done are skipped; a group's statistics need all its files, so with
    --normalize-by they are analysed again, not written."""
    if normalize_by == "none":
        return [f for f in files if f not in resumed.paths], set()
    return files, resumed.paths.intersection(files)
