"""How the commands talk: one-line errors, usage errors and stderr notes (data goes to stdout)."""

from __future__ import annotations

import sys
from typing import NoReturn

import click


def say(msg: str, quiet: bool = False) -> None:
    """A note, a warning or a summary line on stderr (nothing with --quiet)."""
    if not quiet:
        try:
            click.echo(msg, err=True)
        except OSError:  # stderr gone (a closed terminal after SIGHUP): nothing to tell
            pass


def die(exc: BaseException, debug: bool) -> NoReturn:
    """A library error as click's one-line 'Error: ...' and exit 1; the traceback with --debug."""
    if debug:
        raise exc
    raise click.ClickException(" ".join(str(exc).split()))


def usage_line(msg: object) -> NoReturn:
    """A usage error as one line on stderr, exit status 2."""
    click.echo(f"Error: {' '.join(str(msg).split())}", err=True)
    sys.exit(2)


def os_reason(exc: BaseException) -> str:
    """An OSError's reason without the path ('no space left on device')."""
    return " ".join((getattr(exc, "strerror", None) or str(exc)).split()).lower()
