"""Argument checks shared by the commands: each failure is a one-line usage error (exit 2)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

from .messages import say, usage_line

if TYPE_CHECKING:
    from ..models import Model


def missing(path: str) -> bool:
    """`path` does not exist (a broken link exists; a path that cannot be looked up for another
    reason is left to the file's own error row)."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except (OSError, ValueError):
        return False
    return False


def check_model_arg(model: str) -> None:
    """--model names a bundled model or an existing file, else a usage error (exit 2)."""
    from ..errors import display_path
    from ..models import REGISTRY

    if model in REGISTRY or not missing(model):
        return
    if os.sep in model or os.path.splitext(model)[1]:
        usage_line(f"--model {display_path(model)}: no such model file")
    usage_line(
        f"--model {display_path(model)}: unknown model; use one of {', '.join(REGISTRY)} "
        "(sercli models lists them) or a model file (.pt, .npz, .json)"
    )


def check_group_support(m: Model) -> None:
    """--normalize-by with a model that cannot use group statistics is a usage error."""
    from ..errors import SercliError
    from ..runtime.grouping import check_group_support as check

    try:
        check(m)
    except SercliError as exc:
        usage_line(exc)


def group_default(model: str, normalize_by: str | None, quiet: bool) -> str:
    """--normalize-by without --model: the bundled model for it with the best val UAR (the
    default model is trained on single clips), said on stderr."""
    from click.core import ParameterSource

    if normalize_by in (None, "none"):
        return model
    if click.get_current_context().get_parameter_source("model") != ParameterSource.DEFAULT:
        return model
    from ..models import group_models

    best = (group_models() or [model])[0]
    say(
        f"--normalize-by {normalize_by}: using model {best}, the bundled model for it with the "
        "best val UAR (--model chooses another)",
        quiet,
    )
    return best


def refuse_output_among_inputs(output: str, inputs: list[str], opt: str = "--output") -> None:
    """A usage error when the report would overwrite one of the inputs (a recording or a
    manifest), whatever the spelling of the two paths."""
    try:
        out = os.stat(output)
    except (OSError, ValueError):
        return
    for p in inputs:
        try:
            if os.path.samestat(out, os.stat(p)):
                usage_line(f"{opt} {output} is also an input ({p}): refusing to overwrite it")
        except (OSError, ValueError):
            continue
