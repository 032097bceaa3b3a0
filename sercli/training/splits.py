"""Which clips train, select and test a model: the protocols of a recipe.

speaker: the canonical speakers.csv split (speakers it lacks split whole by a hash); paper: the
seed paper's random stratified 70/15/15 of its balanced classes; loco:<corpus>: leave that corpus
out. Test speakers never touch training or model selection.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..corpora import Clip, paper_split, speaker_split, split_of, splits_of
from ..dataset import FeatureSet
from ..errors import CorpusError


def make_splits(
    clips: list[Clip], labels: Sequence[str], protocol: str = "speaker", seed: int = 0
) -> dict[str, list[Clip]]:
    """{"train", "val", "test"} -> the clips with one of `labels`, split by `protocol`."""
    labels = tuple(labels)
    clips = [c for c in clips if c.label in labels]
    if protocol == "paper":
        return paper_split(clips, seed=seed, labels=labels)
    table = speaker_split()
    if protocol.startswith("loco:"):
        return loco_split(clips, protocol.split(":", 1)[1], table)
    if protocol != "speaker":
        raise CorpusError(f"unknown protocol {protocol!r} (speaker, paper or loco:<corpus>)")
    out: dict[str, list[Clip]] = {"train": [], "val": [], "test": []}
    for c, s in zip(clips, splits_of(clips, table)):
        out[s].append(c)
    return out


def loco_split(clips: list[Clip], held_out: str, table: dict | None = None) -> dict[str, list[Clip]]:
    """Leave one corpus out: test = every clip of `held_out`; train / val = the canonical
    train / val speakers of the other corpora (their canonical test speakers and clips of
    speakers not in speakers.csv are not used), so model selection stays speaker-independent
    and never sees the held-out corpus."""
    table = speaker_split() if table is None else table
    out: dict[str, list[Clip]] = {"train": [], "val": [], "test": []}
    for c in clips:
        if c.corpus == held_out:
            out["test"].append(c)
        elif (s := split_of(c, table)) in ("train", "val"):
            out[s].append(c)
    if not out["test"]:
        raise CorpusError(f"leave-one-corpus-out: no clips of corpus {held_out!r} with the recipe's labels")
    return out


def protocol_description(protocol: str, seed: int) -> str:
    """The model card's one-line account of a protocol."""
    if protocol == "paper":
        return f"seed paper: 5 classes balanced by downsampling, random stratified 70/15/15, seed {seed}"
    if protocol.startswith("loco:"):
        return (
            f"leave one corpus out: test = every clip of {protocol.split(':', 1)[1]}; train / val = "
            "the canonical train / val speakers of the other corpora; model selection on val"
        )
    return (
        "speaker-independent: canonical speakers.csv split; model selection on val speakers; "
        "test speakers scored once at the end"
    )


def subset(fs: FeatureSet, idx: list[int]) -> FeatureSet:
    """The clips `idx` of a feature set (log-mels, paper vectors and summaries alike)."""
    return FeatureSet(
        [fs.clips[i] for i in idx],
        [fs.logmel[i] for i in idx],
        fs.paper_mel[idx],
        fs.paper_mfcc[idx],
        fs.summary[idx],
        [],
    )


def speaker_groups(clips: Sequence[Clip]) -> list[str]:
    """Group keys for group normalisation in training and scoring: each clip's speaker."""
    return [c.speaker_key for c in clips]
