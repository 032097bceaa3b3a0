"""sercli models (every bundled model, one line each) and sercli info (one model's card)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from .checks import check_model_arg
from .messages import die
from .options import debug_option, model_option, table_or_json_option

if TYPE_CHECKING:
    from ..models import Model


@click.command()
@table_or_json_option
def models(fmt: str) -> None:
    """List the bundled models: test UAR, speed and what each is for (read from their cards;
    nothing is loaded).

    \b
    Examples:
      sercli models
      sercli models --format json | jq -r '.[] | select(.group) | .name'
      sercli info --model cnn-spk-ens      # one model's full card
    """
    import json

    from ..models import bundled

    entries = bundled()
    if fmt == "json":
        click.echo(json.dumps([e.to_dict() for e in entries], indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title="bundled models")
    t.add_column("model", no_wrap=True)
    t.add_column("test UAR", justify="right")
    t.add_column("test set")
    t.add_column("clips/s", justify="right")
    t.add_column("use", overflow="fold")
    for e in entries:
        t.add_row(
            e.name,
            f"{e.test_uar:.3f}" if e.test_uar is not None else "-",
            e.test_set or "-",
            f"{e.clips_per_s:g}" if e.clips_per_s is not None else "-",
            e.use,
        )
    con = Console()
    con.print(t)
    machines = sorted({e.speed_machine for e in entries if e.speed_machine})
    con.print(
        "test UAR: unweighted average recall on the card's test set. clips/s: classify "
        "end to end (bench/run.py"
        + (f" on {' / '.join(machines)}" if machines else "")
        + "); -: not measured. Details: sercli info --model NAME.",
        highlight=False,
        markup=False,
    )


@click.command()
@model_option()
@table_or_json_option
@debug_option
def info(model: str, fmt: str, debug: bool) -> None:
    """Show a model's card: labels, training data, metrics and weights hash.

    \b
    Examples:
      sercli info                         # the default model
      sercli info --model cnn-spk-ens --format json
      sercli models                       # every bundled model, one line each
    """
    from ..errors import SercliError
    from ..models import card_path, load_model

    check_model_arg(model)
    try:
        m = load_model(model)
    except SercliError as exc:
        die(exc, debug)
    try:
        show_card(m, fmt)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a malformed card
        if debug:
            raise
        raise click.ClickException(
            f"{card_path(m.path)}: malformed model card ({type(exc).__name__}: {' '.join(str(exc).split())[:120]})"
        ) from exc


def show_card(m: Model, fmt: str) -> None:
    """A loaded model's card on stdout, as JSON or as rich text and tables."""
    import json

    card = dict(m.card)
    card.update(name=m.name, kind=m.kind, labels=list(m.labels), path=m.path, sha256=m.sha256)
    card.pop("history", None)
    if fmt == "json":
        click.echo(json.dumps(card, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    con = Console()
    con.print(f"[bold]{m.name}[/bold] ({m.kind}) {card.get('description', '')}")
    con.print(f"weights: {m.path}\nsha256: {m.sha256}\nlabels: {', '.join(m.labels)}")
    for e in card.get("members") or []:  # an ensemble
        alone = ", each clip alone" if e.get("per_clip") else ""
        con.print(f"member: {e['name']} ({e['file']}, weight {e['weight']:g}{alone}, sha256 {e['sha256'][:12]}…)")
    enc = card.get("encoder")
    if enc:
        con.print(
            f"encoder: {enc['name']} ({enc['source']}; {enc['file']}, sha256 {enc['sha256'][:12]}…; "
            f"from {enc['package']}); licence: {enc['licence']}"
        )
        precision = (card.get("features") or {}).get("precision", "fp32")
        if precision != "fp32":
            from ..encoded import run_precision

            here = run_precision(precision)
            trained = card.get("precision_trained", precision)
            how = "trained and run at it" if trained == precision else f"run at it, trained on {trained} outputs"
            con.print(
                f"encoder precision: {precision}, {how}"
                + ("" if here == precision else f"; {here} on this CPU, which has no native {precision}")
            )
    if card.get("temperature") is not None:
        cal = (card.get("metrics") or {}).get("test", {}).get("calibration")
        con.print(
            f"calibration: temperature {card['temperature']:.3f} fitted on val"
            + (f"; expected calibration error on test {cal['ece']:.3f}" if cal else "")
        )
    if card.get("protocol"):
        con.print(f"protocol: {card['protocol']}")
    data = card.get("data") or {}
    if data:
        t = Table(title="training data")
        for col in ("split", "clips", "speakers", "per corpus"):
            t.add_column(col)
        for k, v in data.items():
            t.add_row(k, str(v["clips"]), str(v["speakers"]), ", ".join(f"{c} {n}" for c, n in v["per_corpus"].items()))
        con.print(t)
    mets = card.get("metrics") or {}
    if mets:
        t = Table(title="metrics")
        for col in ("split", "n", "accuracy", "UAR", "macro-F1"):
            t.add_column(col, justify="right")
        for k, v in mets.items():
            t.add_row(k, str(v["n"]), f"{v['accuracy']:.3f}", f"{v['uar']:.3f}", f"{v['macro_f1']:.3f}")
        con.print(t)
    if card.get("licence"):
        con.print(f"licence: {card['licence']}")
