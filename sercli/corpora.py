"""Finding labelled clips: corpus file-name conventions, generic layouts and splits.

Every clip becomes a `Clip` (path, corpus, speaker, label, sex). Labels are harmonised to one
vocabulary; corpus-specific emotions keep their own names. Files that match no convention
are returned separately, never dropped silently. Folders are walked and manifests read by
sercli.discovery (the walker and reader that `sercli classify` uses too).
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from .constants import AUDIO_EXTENSIONS
from .discovery import ManifestColumnsError, ManifestSyntaxError, read_manifest_rows, walk_audio
from .errors import CorpusError

#: The harmonised vocabulary shared by all corpora (corpus-specific labels are kept too).
CORE_LABELS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise", "calm")
#: The default model's classes.
SIX_CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad")
#: The seed paper's classes.
PAPER_CLASSES = ("angry", "disgust", "fear", "happy", "sad")

ALIASES = {
    "anger": "angry",
    "ang": "angry",
    "angry": "angry",
    "mad": "angry",
    "disgust": "disgust",
    "dis": "disgust",
    "disgusted": "disgust",
    "fear": "fear",
    "fea": "fear",
    "fearful": "fear",
    "afraid": "fear",
    "scared": "fear",
    "happy": "happy",
    "hap": "happy",
    "happiness": "happy",
    "joy": "happy",
    "neutral": "neutral",
    "neu": "neutral",
    "sad": "sad",
    "sadness": "sad",
    "surprise": "surprise",
    "surprised": "surprise",
    "sur": "surprise",
    "ps": "surprise",
    "pleasant_surprise": "surprise",
    "pleasant_surprised": "surprise",
    "calm": "calm",
    "boredom": "boredom",
    "bored": "boredom",
    "excited": "excited",
    "anxious": "anxious",
    "apologetic": "apologetic",
    "assertive": "assertive",
    "concerned": "concerned",
    "encouraging": "encouraging",
    "contempt": "contempt",
    "frustrated": "frustrated",
    "frustration": "frustrated",
}


def harmonise(label: str) -> str:
    """Map a corpus or user label to the shared vocabulary; unknown labels kept, lower-cased."""
    key = label.strip().lower().replace(" ", "_").replace("-", "_")
    return ALIASES.get(key, key)


@dataclass(frozen=True)
class Clip:
    path: str
    corpus: str
    speaker: str | None
    label: str
    sex: str | None = None

    @property
    def speaker_key(self) -> str:
        """Speaker id unique across corpora (corpus:speaker)."""
        return f"{self.corpus}:{self.speaker}" if self.speaker is not None else f"{self.corpus}:?"


_RAVDESS = re.compile(r"^(\d\d)-(0[12])-(0[1-8])-(0[12])-(0[12])-(0[12])-(\d\d)$")
_RAVDESS_EMO = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fear",
    "07": "disgust",
    "08": "surprise",
}
_TESS = re.compile(r"^(OAF|YAF)_([^_]+)_(angry|disgust|fear|happy|neutral|ps|sad|pleasant_surprised?)$", re.I)
_SAVEE = re.compile(r"^(DC|JE|JK|KL)_(a|d|f|h|n|sa|su)(\d\d)$")
_SAVEE_BARE = re.compile(r"^(a|d|f|h|n|sa|su)(\d\d)$")
_SAVEE_EMO = {"a": "angry", "d": "disgust", "f": "fear", "h": "happy", "n": "neutral", "sa": "sad", "su": "surprise"}
_CREMAD = re.compile(r"^(1\d\d\d)_([A-Z]{3})_(ANG|DIS|FEA|HAP|NEU|SAD)_(LO|MD|HI|XX|X)$")
_EMODB = re.compile(r"^(03|08|09|10|11|12|13|14|15|16)([ab]\d\d)([WLEAFTN])([a-z])$")
_EMODB_EMO = {"W": "angry", "L": "boredom", "E": "disgust", "A": "fear", "F": "happy", "T": "sad", "N": "neutral"}
_EMODB_MALE = {"03", "10", "11", "12", "15"}
_JL = re.compile(r"^(male|female)(\d+)_([a-z]+)_(\d+[a-z]?)_(\d+)$", re.I)


def parse_name(path: str | os.PathLike) -> Clip | None:
    """Recognise one file by its corpus naming convention; None if none matches."""
    p = Path(path)
    stem = p.stem
    if m := _RAVDESS.match(stem):
        actor = m.group(7)
        return Clip(str(p), "ravdess", actor, _RAVDESS_EMO[m.group(3)], "male" if int(actor) % 2 else "female")
    if m := _CREMAD.match(stem):
        return Clip(str(p), "cremad", m.group(1), harmonise(m.group(3)))
    if m := _TESS.match(stem):
        return Clip(str(p), "tess", m.group(1).upper(), harmonise(m.group(3)), "female")
    if m := _SAVEE.match(stem):
        return Clip(str(p), "savee", m.group(1), _SAVEE_EMO[m.group(2)], "male")
    if (m := _SAVEE_BARE.match(stem)) and p.parent.name in {"DC", "JE", "JK", "KL"}:
        return Clip(str(p), "savee", p.parent.name, _SAVEE_EMO[m.group(1)], "male")
    if m := _EMODB.match(stem):
        spk = m.group(1)
        return Clip(str(p), "emodb", spk, _EMODB_EMO[m.group(3)], "male" if spk in _EMODB_MALE else "female")
    if m := _JL.match(stem):
        sex = m.group(1).lower()
        return Clip(str(p), "jl", f"{sex}{m.group(2)}", harmonise(m.group(3)), sex)
    if harmonise(p.parent.name) in ALIASES.values():
        # generic layout: one folder per label
        return Clip(str(p), "folder", None, harmonise(p.parent.name))
    return None


def read_manifest(csv_path: str | os.PathLike) -> list[Clip]:
    """A CSV manifest with columns path,label[,speaker][,corpus][,sex]; paths relative to it."""
    csv_path = Path(csv_path)
    try:
        rows = read_manifest_rows(csv_path, ("path", "label"))
    except ManifestColumnsError:
        raise CorpusError(f"{csv_path}: a manifest needs the columns path and label") from None
    except ManifestSyntaxError as exc:
        raise CorpusError(f"{csv_path}: {exc}") from None
    base = csv_path.parent
    return [
        Clip(
            str(Path(row["path"]) if row["path"] else base),
            row.get("corpus") or "manifest",
            row.get("speaker") or None,
            harmonise(row["label"]),
            row.get("sex") or None,
        )
        for row in rows
    ]


@dataclass
class Scan:
    clips: list[Clip]
    unmatched: list[str]

    def counts(self) -> Counter:
        return Counter((c.corpus, c.label) for c in self.clips)


def scan(data: str | os.PathLike, *, extensions: Iterable[str] = AUDIO_EXTENSIONS) -> Scan:
    """All labelled clips under `data` (a folder, or a CSV manifest), plus unmatched files."""
    data = Path(data)
    if not data.exists():
        raise CorpusError(f"{data}: no such file or folder")
    if data.is_file():
        if data.suffix.lower() == ".csv":
            return Scan(read_manifest(data), [])
        raise CorpusError(f"{data}: expected a folder of corpora or a CSV manifest")
    clips, unmatched = [], []
    for path in walk_audio(data, extensions=extensions):
        clip = parse_name(path)
        (clips.append(clip) if clip else unmatched.append(path))
    listed = []
    for manifest in sorted(data.glob("*.csv")):
        try:
            listed.extend(read_manifest(manifest))
        except CorpusError:
            continue  # a CSV that is not a manifest (e.g. a report) is not an error here
    if listed:
        # a file a manifest lists is that manifest's clip (it may give the speaker), never
        # also a clip of its own name or folder, nor unmatched: each file counts once
        seen, unique = set(), []
        for c in listed:
            real = os.path.realpath(c.path)
            if real not in seen:
                seen.add(real)
                unique.append(c)
        listed = unique
        clips = [c for c in clips if os.path.realpath(c.path) not in seen]
        unmatched = [p for p in unmatched if os.path.realpath(p) not in seen]
        clips.extend(listed)
    sex = speaker_sex()
    clips = [
        c
        if c.sex or (c.corpus, c.speaker) not in sex
        else Clip(c.path, c.corpus, c.speaker, c.label, sex[(c.corpus, c.speaker)])
        for c in clips
    ]
    return Scan(clips, unmatched)


def _speakers_rows() -> list[dict]:
    text = resources.files("sercli").joinpath("data/speakers.csv").read_text()
    return list(csv.DictReader(text.splitlines()))


def speaker_split() -> dict[tuple[str, str], str]:
    """The canonical speaker-independent split: (corpus, speaker) -> train|val|test."""
    return {(r["corpus"], r["speaker"]): r["split"] for r in _speakers_rows()}


def speaker_sex() -> dict[tuple[str, str], str]:
    return {(r["corpus"], r["speaker"]): r["sex"] for r in _speakers_rows()}


def split_of(clip: Clip, table: dict | None = None) -> str | None:
    """The canonical split of a clip's speaker, None if the speaker is not in it."""
    table = speaker_split() if table is None else table
    return table.get((clip.corpus, clip.speaker))


#: shares of train / val / test for speakers outside speakers.csv (a lab's own corpus)
OWN_SPLIT = (("train", 0.70), ("val", 0.15), ("test", 0.15))
_OWN_CUTS = [(s, sum(f for _, f in OWN_SPLIT[: i + 1])) for i, (s, _) in enumerate(OWN_SPLIT)]


def _hash01(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16) / 16**12


def splits_of(clips: list[Clip], table: dict | None = None) -> list[str]:
    """The split of each clip: its speaker's canonical split (speakers.csv); for a speaker not
    in it, a split drawn from a hash of corpus:speaker with the shares of OWN_SPLIT, so that a
    lab's own corpus trains and evaluates speaker-independently too. The hash depends on the
    speaker alone, so a speaker keeps its split in any subset of the data and on any machine.
    A clip without a speaker (one folder per label) cannot be split by speaker: it goes by a
    hash of its file name (`unsplittable` counts those clips)."""
    table = speaker_split() if table is None else table
    out = []
    for c in clips:
        split = table.get((c.corpus, c.speaker))
        if split is None:
            u = _hash01(f"{c.corpus}:{c.speaker}" if c.speaker else os.path.basename(c.path))
            split = next((s for s, upto in _OWN_CUTS if u < upto), "test")
        out.append(split)
    return out


def unsplittable(clips: list[Clip]) -> int:
    """Clips without a speaker (speakers.csv lists none such): split by file, not by speaker."""
    return sum(1 for c in clips if not c.speaker)


def paper_split(clips: list[Clip], *, seed: int = 0, labels: tuple[str, ...] = PAPER_CLASSES) -> dict[str, list[Clip]]:
    """The seed paper's protocol: its 5 classes, balanced by downsampling each class to the
    rarest one, then a random stratified 70/15/15 split with a fixed seed."""
    import numpy as np

    rng = np.random.default_rng(seed)
    by_label = {lab: sorted((c for c in clips if c.label == lab), key=lambda c: c.path) for lab in labels}
    n = min(len(v) for v in by_label.values())
    if n == 0:
        raise CorpusError("paper protocol: some of its 5 classes have no clips")
    out: dict[str, list[Clip]] = {"train": [], "val": [], "test": []}
    for lab in labels:
        chosen = [by_label[lab][i] for i in rng.permutation(len(by_label[lab]))[:n]]
        a, b = round(0.70 * n), round(0.85 * n)
        out["train"] += chosen[:a]
        out["val"] += chosen[a:b]
        out["test"] += chosen[b:]
    return out


def write_manifest(clips: list[Clip], path: str | os.PathLike) -> None:
    """Write clips (with their split, see splits_of) as a CSV manifest via pandas."""
    import pandas as pd

    rows = [{**asdict(c), "split": s} for c, s in zip(clips, splits_of(clips))]
    pd.DataFrame(rows, columns=["path", "corpus", "speaker", "label", "sex", "split"]).to_csv(path, index=False)
