"""Training recipes: typed and frozen, every key with its default in one place.

A recipe is a TOML file: a bundled one by name (sercli/recipes/NAME.toml: the recipes of the
bundled models and of the seed paper's reproduction) or any .toml file by path (a checkout's lab
keeps its experiments in train/recipes/). `extends = "other"` starts from recipe `other` (a file
beside this one, a bundled name or a path) and overrides its keys with this file's; overrides
given as `sercli train --set KEY=VALUE` come last. The model kind (`model = ...`) picks the
recipe type, and so which keys a recipe may hold: a key of another kind, a misspelt key or a
value of the wrong kind is a one-line RecipeError before any data is read.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

from ..errors import RecipeError
from ..normalize import GROUP_PRIOR

# ---------------------------------------------------------------- what a key's value must be


@dataclass(frozen=True)
class Rule:
    """A key's constraint: `phrase` completes "KEY must be ..." in the error; `convert` gives
    the typed value (a TOML list becomes a tuple, so that a recipe is immutable)."""

    phrase: str
    ok: Callable[[Any], bool]
    convert: Callable[[Any], Any] = lambda v: v


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def whole(low: int | None = None) -> Rule:
    return Rule(
        "a whole number" + ("" if low is None else f" >= {low}"), lambda v: _is_int(v) and (low is None or v >= low)
    )


def number(low: float = 0, *, strict: bool = False, note: str = "") -> Rule:
    return Rule(
        f"a number {'>' if strict else '>='} {low:g}{note}",
        lambda v: _is_number(v) and (v > low if strict else v >= low),
        float,
    )


def fraction(*, below_one: bool = False) -> Rule:
    return Rule(
        f"a number from 0 to {'below 1' if below_one else '1'}",
        lambda v: _is_number(v) and 0 <= v and (v < 1 if below_one else v <= 1),
        float,
    )


def choice(*options: str) -> Rule:
    phrase = " or ".join(f'"{o}"' for o in options) if len(options) == 2 else "one of " + ", ".join(options)
    return Rule(phrase, lambda v: isinstance(v, str) and v in options)


def span(*, positive_low: bool) -> Rule:
    """[low, high], two numbers with low <= high (and 0 < low where asked)."""

    def ok(v: Any) -> bool:
        return (
            isinstance(v, list)
            and len(v) == 2
            and all(_is_number(x) for x in v)
            and v[0] <= v[1]
            and (v[0] > 0 or not positive_low)
        )

    return Rule(
        f"[low, high]{' with 0 < low' if positive_low else ''} and low <= high",
        ok,
        lambda v: (float(v[0]), float(v[1])),
    )


BOOL = Rule("true or false", lambda v: isinstance(v, bool))
TEXT = Rule("a string", lambda v: isinstance(v, str))
NAME = Rule("a non-empty string", lambda v: isinstance(v, str) and v != "")
NAMES = Rule(
    "two or more distinct names",
    lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v) and len(set(v)) == len(v) >= 2,
    tuple,
)
WHOLES = Rule(
    "a list of whole numbers >= 1",
    lambda v: isinstance(v, list) and v != [] and all(_is_int(x) and x >= 1 for x in v),
    tuple,
)
PROTOCOL = Rule(
    '"speaker", "paper" or "loco:<corpus>"',
    lambda v: isinstance(v, str) and (v in ("speaker", "paper") or (v.startswith("loco:") and len(v) > len("loco:"))),
)
GAMMA = Rule('"scale", "auto" or a number > 0', lambda v: v in ("scale", "auto") or (_is_number(v) and v > 0))


def key(default: Any, rule: Rule | None, doc: str = "") -> Any:
    """A recipe key: its default, its rule (None: the recipe type checks it itself) and what it does."""
    return field(default=default, metadata={"key": True, "rule": rule, "doc": doc})


# ---------------------------------------------------------------- the recipe types


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """The keys every recipe has. A subclass per model kind adds that kind's keys."""

    kind: ClassVar[str] = ""
    name: str = key("", NAME, "the recipe's name: the weights are NAME.pt or NAME.npz")
    description: str = key("", TEXT, "prose for the model card")
    model: str = key("", TEXT, "the model kind, which picks the recipe type")
    protocol: str = key(
        "speaker",
        PROTOCOL,
        "speaker (canonical speakers.csv split), paper (the seed "
        "paper's random 70/15/15) or loco:<corpus> (leave that corpus out)",
    )
    labels: tuple[str, ...] = key((), NAMES, "the classes, in output order")
    epochs: int = key(1, whole(1), "training epochs (sercli train --epochs overrides)")
    seed: int = key(0, whole(), "random seed (sercli train --seed overrides)")
    #: the keys as the files and overrides gave them, name included (the model card's "recipe")
    source: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def keys(cls) -> dict[str, Any]:
        """Key name -> dataclass field, for the keys this recipe type takes."""
        return {f.name: f for f in fields(cls) if f.metadata.get("key")}

    def as_dict(self) -> dict[str, Any]:
        """The keys as given (extends resolved, name included): what the model card records."""
        return copy.deepcopy(dict(self.source))

    def with_overrides(self, **values: Any) -> Recipe:
        """This recipe with some keys set (checked as a file's would be)."""
        return build_recipe({**self.source, **values})


@dataclass(frozen=True, kw_only=True)
class SVMRecipe(Recipe):
    """An SVM on utterance summary vectors (or the seed paper's inputs); numpy at inference."""

    kind: ClassVar[str] = "svm"
    features: str = key("summary", choice("summary", "paper"), "summary vectors or the paper's mean log-mel + MFCC")
    kernel: str = key("rbf", choice("rbf", "linear"))
    C: float = key(10.0, number(0, strict=True))
    gamma: str | float = key("scale", GAMMA)
    balanced: bool = key(True, BOOL, "class weights inversely proportional to the class counts")
    normalize: str = key("none", choice("none", "group"), "group: inputs z-scored per speaker")
    group_prior: float = key(GROUP_PRIOR, number(0), "pseudo-clips of the training statistics in each group")


@dataclass(frozen=True, kw_only=True)
class TorchRecipe(Recipe):
    """Keys of every net trained by sercli.training.torch_loop."""

    batch_size: int = key(64, whole(1))
    lr: float = key(2e-3, number(0, strict=True), "peak learning rate of the one-cycle schedule")
    weight_decay: float = key(1e-4, number(0))
    balanced: bool = key(True, BOOL, "class-weighted loss")
    label_smoothing: float = key(0.0, fraction(below_one=True))


@dataclass(frozen=True, kw_only=True)
class SeedCNNRecipe(TorchRecipe):
    """The seed paper's dual-branch 1-D CNN on its time-averaged inputs."""

    kind: ClassVar[str] = "seed-cnn"


@dataclass(frozen=True, kw_only=True)
class SeedRNNRecipe(TorchRecipe):
    """The seed paper's dual RNN."""

    kind: ClassVar[str] = "seed-rnn"
    hidden: int = key(64, whole(1))
    layers: int = key(2, whole(1))
    cell: str = key("rnn", choice("rnn", "gru", "lstm"))
    fc: int = key(64, whole(1))


@dataclass(frozen=True, kw_only=True)
class Augmentation:
    """Feature-domain augmentation of a CNN's training log-mels (sercli.training.augment)."""

    speed_perturb: float = key(0.0, fraction(below_one=True), "time stretch by up to +-this share")
    pitch_shift_bins: int = key(0, whole(0), "shift by up to +-this many mel bands")
    specaugment: bool = key(False, BOOL, "two band and two time masks")
    reverb_rt60_s: tuple[float, float] | None = key(None, span(positive_low=True), "reverberation time range")
    reverb_prob: float = key(0.3, fraction(), "share of clips reverberated")
    noise_snr_db: tuple[float, float] | None = key(None, span(positive_low=False), "additive noise SNR range")
    noise_prob: float = key(0.5, fraction(), "share of clips with noise")


@dataclass(frozen=True, kw_only=True)
class CNNRecipe(Augmentation, TorchRecipe):
    """sercli's 2-D CNN on log-mel frames (sercli.nets.EmotionCNN)."""

    kind: ClassVar[str] = "cnn"
    channels: tuple[int, ...] = key((32, 64, 128, 128), WHOLES, "channels of each convolution block")
    convs_per_block: int = key(1, whole(1))
    hidden: int = key(128, whole(1))
    dropout: float = key(0.3, fraction(below_one=True))
    fuse_summary: bool = key(False, BOOL, "also read the utterance summary vector")
    time_pool: int = key(1, whole(1), "average this many frames before the convolutions")
    band_norm: bool = key(False, BOOL, "subtract each band's mean over the clip")
    pooling: str = key("stats", choice("stats", "attention"))
    normalize: str = key("none", choice("none", "group"), "group: inputs normalised per speaker")
    group_prior: float = key(GROUP_PRIOR, number(0))
    single_clip_prob: float = key(0.0, fraction(), "share of clips normalised alone under normalize = group")
    crop_frames: int = key(300, whole(1), "random crop of each training clip, in frames")
    mixup: float = key(0.0, number(0, note=" (the Beta alpha)"), "0: no mixup")
    corpus_adversary: float = key(
        0.0,
        number(0, note=" (the weight of the corpus adversary's loss)"),
        "0: none; else a gradient-reversed corpus classifier",
    )


@dataclass(frozen=True, kw_only=True)
class HeadRecipe(Recipe):
    """An MLP head over cached Whisper encoder blocks (sercli.training.head)."""

    kind: ClassVar[str] = "whisper-head"
    encoder: str = key("whisper-base", None, "a bundled encoder (sercli.models.ENCODERS)")
    layers: tuple[int, ...] = key((3, 4, 5, 6), None, "the encoder blocks read, 1-based")
    hidden: int = key(256, whole(0))
    dropout: float = key(0.3, fraction(below_one=True))
    lr: float = key(1e-3, number(0, strict=True))
    weight_decay: float = key(1e-2, number(0))
    batch_size: int = key(128, whole(1))
    label_smoothing: float = key(0.1, fraction(below_one=True))
    normalize: str = key("none", choice("none", "group"), "group: vectors z-scored per speaker")
    alone_fraction: float = key(0.25, fraction(below_one=True), "share of clips normalised alone under group")
    group_prior: float = key(1.0, number(0))
    input_noise: float = key(0.0, fraction(below_one=True), "Gaussian noise, in feature standard deviations")
    precision: str = key(
        "fp32", choice("fp32", "bf16", "int8"), "the encoder's arithmetic, in training and at classify time"
    )
    classify_precision: str = key(
        "same",
        choice("same", "fp32", "bf16", "int8"),
        "the encoder's arithmetic at classify time if not `precision`; val and test are encoded at it",
    )

    @property
    def run_precision(self) -> str:
        """The precision the head runs its encoder at (and its val and test speakers are scored at)."""
        return self.precision if self.classify_precision == "same" else self.classify_precision

    @classmethod
    def check_raw(cls, name: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        from ..models import ENCODERS

        encoder = raw.get("encoder", cls.__dataclass_fields__["encoder"].default)
        if encoder not in ENCODERS:
            raise RecipeError(f"recipe {name}: encoder must be one of {', '.join(ENCODERS)}, got {encoder!r}")
        n_layer = ENCODERS[encoder][2]
        layers = raw.get("layers", list(cls.__dataclass_fields__["layers"].default))
        if (
            not isinstance(layers, list)
            or not layers
            or len(set(layers)) != len(layers)
            or not all(_is_int(x) and 1 <= x <= n_layer for x in layers)
        ):
            raise RecipeError(
                f"recipe {name}: layers must be a list of distinct encoder blocks from 1 to {n_layer}, got {layers!r}"
            )
        return {"encoder": encoder, "layers": tuple(layers)}


#: model kind (the recipe's `model`) -> its recipe type
RECIPE_TYPES: dict[str, type[Recipe]] = {
    t.kind: t for t in (CNNRecipe, SVMRecipe, SeedCNNRecipe, SeedRNNRecipe, HeadRecipe)
}


def build_recipe(raw: Mapping[str, Any]) -> Recipe:
    """The typed recipe of `raw` (keys as a TOML file gives them, extends resolved); a one-line
    RecipeError for a missing, unknown or ill-typed key."""
    name = raw.get("name", "?")
    model = raw.get("model")
    if model is None:
        raise RecipeError(f"recipe {name}: no model (model = {' or '.join(repr(k) for k in RECIPE_TYPES)})")
    cls = RECIPE_TYPES.get(model)
    if cls is None:
        raise RecipeError(f"recipe {name}: model must be one of {', '.join(RECIPE_TYPES)}, got {model!r}")
    known = cls.keys()
    for k in raw:
        if k not in known:
            owners = [kind for kind, t in RECIPE_TYPES.items() if k in t.keys()]
            if owners:
                raise RecipeError(f"recipe {name}: {k} needs model {' or '.join(owners)}, not {model}")
            raise RecipeError(f"recipe {name}: unknown key {k!r} (model {model} takes {', '.join(sorted(known))})")
    if "labels" not in raw:
        raise RecipeError(f"recipe {name}: no labels (labels = [...], the classes in output order)")
    values: dict[str, Any] = {}
    for k, f in known.items():
        rule = f.metadata["rule"]
        if k not in raw or rule is None:
            continue
        v = raw[k]
        if not rule.ok(v):
            raise RecipeError(f"recipe {name}: {k} must be {rule.phrase}, got {v!r}")
        values[k] = rule.convert(v)
    if hasattr(cls, "check_raw"):
        values.update(cls.check_raw(name, raw))
    return cls(**values, source=MappingProxyType(copy.deepcopy(dict(raw))))


# ---------------------------------------------------------------- files, extends, overrides


def bundled_folder():
    """The installed package's recipe folder (an importlib.resources Traversable)."""
    return resources.files("sercli") / "recipes"


def bundled_names() -> list[str]:
    """Names of the bundled (supported) recipes."""
    return sorted(p.name[: -len(".toml")] for p in bundled_folder().iterdir() if p.name.endswith(".toml"))


def _locate(name_or_path: str, near: Path | None) -> tuple[str, str, bytes, Path | None] | None:
    """(identity for loop checks, stem, TOML bytes, folder for its own extends) of a recipe: a
    file path as given, a file NAME.toml beside the recipe that extends it, or a bundled name."""
    p = Path(name_or_path)
    if p.is_file():
        return str(p.resolve()), p.stem, p.read_bytes(), p.resolve().parent
    if near is not None and (near / f"{name_or_path}.toml").is_file():
        q = (near / f"{name_or_path}.toml").resolve()
        return str(q), q.stem, q.read_bytes(), q.parent
    if "/" not in name_or_path and not name_or_path.endswith(".toml"):
        bundled = bundled_folder() / f"{name_or_path}.toml"
        if bundled.is_file():
            return f"bundled:{name_or_path}", name_or_path, bundled.read_bytes(), None
    return None


def is_recipe(name_or_path: str, folder: Path | None = None) -> bool:
    """Whether `name_or_path` is a file, a recipe NAME.toml in `folder` or a bundled recipe's name."""
    return _locate(name_or_path, folder) is not None


def _read(name_or_path: str, near: Path | None = None, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    found = _locate(name_or_path, near)
    if found is None:
        raise RecipeError(f"{name_or_path}: no such recipe (bundled: {', '.join(bundled_names())}; or a .toml file)")
    ident, stem, text, folder = found
    if ident in seen:
        raise RecipeError(f"{name_or_path}: recipes extend each other in a loop")
    try:
        raw = tomllib.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RecipeError(f"{name_or_path}: not a TOML recipe ({exc})") from None
    base = raw.pop("extends", None)
    if base is not None:
        if not isinstance(base, str):
            raise RecipeError(f"recipe {stem}: extends must be a recipe name or path, got {base!r}")
        raw = {**_read(base, folder, seen + (ident,)), "name": stem, **raw}
    raw.setdefault("name", stem)
    return raw


def load_recipe(name_or_path: str, overrides: Mapping[str, Any] | None = None, *, folder: Path | None = None) -> Recipe:
    """A recipe by .toml path or name (a NAME.toml in `folder`, such as a checkout's lab
    train/recipes, or else a bundled one), `extends` resolved, then `overrides` set (as
    `sercli train --set`); checked."""
    raw = _read(name_or_path, folder)
    return build_recipe({**raw, **(overrides or {})})


def parse_override(text: str) -> tuple[str, Any]:
    """`KEY=VALUE` -> (key, value): VALUE is read as a TOML literal (3, 0.5, true, [2, 3],
    "text"); anything else (loco:cremad) is taken as a string."""
    k, sep, value = text.partition("=")
    k = k.strip()
    if not sep or not k:
        raise RecipeError(f"--set {text}: expected KEY=VALUE, e.g. --set protocol=loco:cremad")
    try:
        parsed = tomllib.loads(f"v = {value}")
        v = parsed["v"] if list(parsed) == ["v"] else value
    except tomllib.TOMLDecodeError:
        v = value
    return k, v


def parse_overrides(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Repeated --set KEY=VALUE, later ones winning."""
    return dict(parse_override(t) for t in items)


#: keys added to a model kind's recipes after cards were written, with the value those cards trained at
ADDED_KEYS: dict[str, dict[str, Any]] = {"whisper-head": {"precision": "fp32", "classify_precision": "same"}}


def training_keys(recipe: Mapping[str, Any]) -> dict[str, Any]:
    """What decides a recipe's training, from a recipe as a card records it (Recipe.as_dict):
    every key but its name and description, which are prose (a rerun under another name, or a
    recipe inheriting a description, trains the same). A card older than a key (ADDED_KEYS)
    trained at the value it has now by default."""
    added = ADDED_KEYS.get(str(recipe.get("model")), {})
    return {**added, **{k: v for k, v in recipe.items() if k not in ("name", "description")}}
