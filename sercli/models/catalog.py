"""The bundled models as their cards describe them, read without loading any model (no torch):
what `sercli models` lists and what hints suggest.

Driven by registry.REGISTRY: a model added there with a card (weights/NAME.card.json beside its
file, or the ensemble file itself) is listed with no change here. Speeds come from
weights/speed.json (bench/speeds.py copies them from the benchmark's results); a model the
benchmark has not measured has none.
"""

from __future__ import annotations

import json
import re
import textwrap
from dataclasses import asdict, dataclass
from pathlib import Path

from .base import Model, model_class
from .ensemble import EnsembleModel
from .files import card_path
from .registry import DEFAULT_MODEL, FALLBACK_MODEL, REGISTRY, weights_dir


@dataclass
class Entry:
    name: str
    kind: str | None
    labels: list[str]
    test_uar: float | None
    val_uar: float | None
    test_set: str | None  # what "test" means for this model: new speakers, ...
    group: bool  # takes --normalize-by speaker|folder
    clips_per_s: float | None
    speed_source: str | None  # the benchmark's results file
    speed_machine: str | None
    use: str
    description: str
    file: str

    def to_dict(self) -> dict:
        return asdict(self)


def _read_json(p: Path) -> dict:
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
        return d if isinstance(d, dict) else {}
    except (OSError, ValueError):
        return {}


def speeds() -> dict:
    return _read_json(weights_dir() / "speed.json").get("models") or {}


def _test_set(protocol) -> str | None:
    p = str(protocol or "").lower()
    if p.startswith("speaker"):
        return "new speakers"
    if p.startswith("loco") or "leave-one-corpus-out" in p:
        return "new corpus"
    if "paper" in p:
        return "paper split"
    return None


#: what a bundled model is for, where its card's description does not say it shortly
USES = {
    "cnn": "the fast model; one clip at a time, no pretrained encoder",
    "whisper-base": "larger encoder (about twice whisper-tiny's time); one clip at a time",
}


def _use(name: str, card: dict, group: bool, test_set: str | None, description: str) -> str:
    if card.get("use"):
        return str(card["use"])
    parts = []
    if name == DEFAULT_MODEL:
        parts.append("default; one clip at a time")
    elif name in USES:
        parts.append(USES[name])
    if group:
        parts.append("--normalize-by speaker|folder")
    if name == FALLBACK_MODEL:
        parts.append("fallback without torch")
    if test_set == "paper split":
        parts.append("the seed paper's protocol")
    if not parts:  # the description's first phrase, without a role it may be out of date on
        first = re.split(r"[.;,(]\s|\s\(", description, maxsplit=1)[0]
        first = re.sub(r"^(default|fallback|experimental)( model)?:\s*", "", first, flags=re.I)
        first = re.split(r":\s", first, maxsplit=1)[0]
        parts.append(textwrap.shorten(first, 44, placeholder=" …"))
    return "; ".join(parts)


def entry(name: str) -> Entry:
    fname = REGISTRY[name][0]
    path = weights_dir() / fname
    if path.suffix == ".json":  # an ensemble file is its own card
        card = _read_json(path)
        kind = EnsembleModel.KINDS[0]
    else:
        card = _read_json(card_path(path))
        kind = card.get("kind")
    group = (model_class(kind) or Model).group_from_card(card)
    test = (card.get("metrics") or {}).get("test") or {}
    uar = test.get("uar")
    val = ((card.get("metrics") or {}).get("val") or {}).get("uar")
    test_set = _test_set(card.get("protocol"))
    description = " ".join(str(card.get("description") or "").split())
    sp = speeds().get(name) or {}
    return Entry(
        name=name,
        kind=kind,
        labels=list(card.get("labels") or []),
        test_uar=round(float(uar), 3) if isinstance(uar, (int, float)) else None,
        val_uar=round(float(val), 3) if isinstance(val, (int, float)) else None,
        test_set=test_set,
        group=bool(group),
        clips_per_s=sp.get("clips_per_s"),
        speed_source=sp.get("results"),
        speed_machine=sp.get("machine"),
        use=_use(name, card, bool(group), test_set, description),
        description=description,
        file=fname,
    )


def bundled() -> list[Entry]:
    """Every bundled model, in REGISTRY order."""
    return [entry(n) for n in REGISTRY]


def group_models() -> list[str]:
    """Bundled models that take --normalize-by, the best val UAR on unseen speakers first (val,
    not test: choosing by the test speakers would be tuning on them)."""
    es = [e for e in bundled() if e.group]
    return [e.name for e in sorted(es, key=lambda e: -(e.val_uar or 0) if e.test_set == "new speakers" else 1)]
