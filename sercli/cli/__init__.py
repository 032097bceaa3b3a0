"""The command line: thin click commands over the library (sercli/cli/ is the only place that
imports click). One module per command; the options they share are declared once in options.py.

Heavy imports (torch, numpy, joblib) happen inside commands, so `sercli --help` stays fast.
"""

from __future__ import annotations

import signal

import click

from .. import __version__
from . import classify, evaluate, info, plot, train
from .runguard import exit_on_sigint, quiet_resource_tracker


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sercli")
def cli() -> None:
    """Speech emotion recognition for folders of recordings.

    Data goes to stdout; progress, summaries and warnings go to stderr.

    \b
    Start with:
      sercli models                   # the bundled models, their accuracy and speed
      sercli classify recordings/     # label every recording in a folder
      sercli COMMAND --help           # options and examples
    """
    quiet_resource_tracker()


cli.add_command(classify.classify)
cli.add_command(info.models)
cli.add_command(info.info)
cli.add_command(train.train)
cli.add_command(evaluate.evaluate)
cli.add_command(plot.plot)


def main() -> None:
    """The console entry point (`sercli`, `python -m sercli`)."""
    # Ctrl-C wherever classify's own handling (which keeps the report whole) is not installed
    # exits 130, as documented, instead of click's "Aborted!" and 1; an ignored SIGINT stays so
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, exit_on_sigint)
    cli(prog_name="sercli")
