"""sercli plot: one recording as a model sees it."""

from __future__ import annotations

import os

import click

from .checks import check_model_arg, missing, refuse_output_among_inputs
from .messages import die, os_reason, say, usage_line
from .options import debug_option, model_option, output_option


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@output_option("PNG to write. Default: FILE's name with .png, in the current folder.")
@model_option("cnn")
@debug_option
def plot(file: str, out: str | None, model: str, debug: bool) -> None:
    """Plot FILE as --model sees it (16 kHz mono): waveform, the model's log-mel bands (64 for
    the CNNs) and, for models that use them, MFCCs 1-19.

    Recordings over 5 s also get a timeline of each 4 s window's scores (50% overlap).

    \b
    Examples:
      sercli plot clip.wav                  # clip.png in the current folder
      sercli plot interview.wav -o interview.png --model cnn-spk-ens
    """
    from ..errors import SercliError, display_path
    from ..plots import plot_clip

    check_model_arg(model)
    if missing(file):
        usage_line(f"{display_path(file)}: no such file")
    out = out or os.path.splitext(os.path.basename(file))[0] + ".png"
    refuse_output_among_inputs(out, [file])
    try:
        info = plot_clip(file, out, model=model, warn=say)
    except SercliError as exc:
        die(exc, debug)
    except OSError as exc:  # writing the PNG (a full disk, a device): name the file
        if debug:
            raise
        where = exc.filename if exc.filename is not None else out
        raise click.ClickException(f"{display_path(where)}: {os_reason(exc)}") from exc
    except Exception as exc:  # e.g. a decoder quirk: still one line unless --debug
        if debug:
            raise
        raise click.ClickException(f"{file}: {type(exc).__name__}: {' '.join(str(exc).split())}") from exc
    say(f"wrote {out} ({info['width']}x{info['height']} px)")
