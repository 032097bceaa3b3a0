"""Model kind "ensemble": models whose class probabilities are averaged with fixed weights.

An ensemble file is JSON (no code) naming member model files relative to it, each with its
pinned sha256 and weight; it is its own card.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .base import Model
from .files import MAX_ENSEMBLE_MEMBERS, read_json

#: what an ensemble file (JSON, no code) says of itself and its members
ENSEMBLE_FORMAT = "sercli-ensemble"


@dataclass
class Ensemble:
    """Models whose class probabilities are averaged with fixed weights (summing to 1).

    A member marked per_clip sees each clip alone even under --normalize-by: a single-clip
    model (`cnn`) beside group-normalised ones keeps the ensemble sound on small groups and on
    groups of one emotion, where group normalisation fails."""

    members: list[Model]
    weights: np.ndarray
    per_clip: list[bool]  # one flag per member

    def grouped_members(self) -> list[Model]:
        return [m for m, pc in zip(self.members, self.per_clip) if not pc]

    def combine(self, probs: list[np.ndarray]) -> np.ndarray:
        return sum(w * p for w, p in zip(self.weights, probs)).astype(np.float32)


@dataclass
class EnsembleSpec:
    """An ensemble file as read, checked, before any member is loaded."""

    spec: dict
    entries: list[dict]
    files: list[Path]
    pins: list[str]
    weights: np.ndarray
    per_clip: list[bool]


def read_spec(path: Path) -> EnsembleSpec:
    """An ensemble file's members (files relative to it, pins, weights); ModelError when it is
    not a valid ensemble file."""
    try:
        spec = read_json(path)
        if not isinstance(spec, dict) or spec.get("format") != ENSEMBLE_FORMAT:
            raise ValueError(f"not a {ENSEMBLE_FORMAT} file")
        entries = spec["members"]
        if not isinstance(entries, list) or not entries:
            raise ValueError("members must be a non-empty list")
        if len(entries) > MAX_ENSEMBLE_MEMBERS:
            raise ValueError(f"{len(entries)} members, at most {MAX_ENSEMBLE_MEMBERS}")
        if not all(isinstance(e, dict) and isinstance(e.get("file"), str) for e in entries):
            raise ValueError("each member must be an object with a file name")
        files = [path.parent / str(e["file"]) for e in entries]
        pins = [str(e["sha256"]) for e in entries]
        weights = np.array([float(e["weight"]) for e in entries])
        per_clip = [e.get("per_clip", False) for e in entries]
        if not all(isinstance(pc, bool) for pc in per_clip):
            raise ValueError("per_clip must be true or false")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelError(f"{path}: not a valid sercli ensemble file ({' '.join(str(exc).split())[:160]})") from exc
    if not np.all(np.isfinite(weights)) or np.any(weights < 0) or abs(weights.sum() - 1) > 1e-6:
        raise ModelError(f"{path}: ensemble weights must be non-negative and sum to 1, got {weights.tolist()}")
    return EnsembleSpec(spec, entries, files, pins, weights, per_clip)


class EnsembleModel(Model):
    """`impl`: Ensemble of loaded models."""

    KINDS = ("ensemble",)

    @classmethod
    def group_from_card(cls, card: dict) -> bool:
        """An ensemble file (its own card) chosen for --normalize-by says mode "speaker"."""
        return card.get("mode") == "speaker"

    @classmethod
    def from_file(cls, path: Path, digest: str, name: str | None, load_member: Callable[..., Model]) -> EnsembleModel:
        """An ensemble file; each member is loaded as any model file, hash-checked, by
        `load_member(file, name=..., sha256=...)`."""
        s = read_spec(path)
        members = []
        loaded: dict[tuple[str, str], Model] = {}  # a member listed twice is loaded once
        for f, pin, e in zip(s.files, s.pins, s.entries):
            if f.suffix.lower() == ".json":
                raise ModelError(f"{path}: member {f.name} is an ensemble (members must be model files)")
            member_name = str(e.get("name") or f.stem)
            key = (os.path.realpath(f), pin)
            if key in loaded:
                members.append(dataclasses.replace(loaded[key], name=member_name))
                continue
            try:
                loaded[key] = load_member(f, name=member_name, sha256=pin)
            except ModelError as exc:  # name the ensemble too: the member path is relative to it
                raise ModelError(f"{path}: member {exc}") from exc
            members.append(loaded[key])
        labels = members[0].labels
        for m in members[1:]:
            if m.labels != labels:
                raise ModelError(
                    f"{path}: member {m.name} has labels {', '.join(m.labels)}, "
                    f"{members[0].name} has {', '.join(labels)} (they must be the same, in order)"
                )
        card = {k: v for k, v in s.spec.items() if k not in ("format", "members")}
        card["members"] = [
            {
                "name": m.name,
                "file": Path(m.path).name,
                "sha256": m.sha256,
                "weight": float(w),
                **({"per_clip": True} if pc else {}),
            }
            for m, w, pc in zip(members, s.weights, s.per_clip)
        ]
        return cls(
            name or path.stem, "ensemble", labels, str(path), digest, card, Ensemble(members, s.weights, s.per_clip)
        )

    @property
    def needs(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(k for m in self.impl.members for k in m.needs))

    @property
    def group_trained(self) -> bool:
        """Whether any member was trained on group-normalised inputs."""
        return any(m.group_trained for m in self.impl.members)

    @property
    def supports_group_norm(self) -> bool:
        grouped = self.impl.grouped_members()
        return bool(grouped) and all(m.supports_group_norm for m in grouped)

    @property
    def encoder(self) -> str | None:
        names = [m.encoder for m in self.impl.members if m.encoder]
        return ", ".join(dict.fromkeys(names)) or None

    def use_device(self, device: str) -> None:
        for m in self.impl.members:
            m.use_device(device)

    def _predict(self, feats: list[dict[str, np.ndarray]]) -> np.ndarray:
        return self.impl.combine([m.predict_proba(feats) for m in self.impl.members])

    def _predict_grouped(self, feats: list[dict[str, np.ndarray]], groups: list) -> np.ndarray:
        return self.impl.combine(
            [
                m.predict_proba(feats) if per_clip else m.predict_proba_grouped(feats, groups)
                for m, per_clip in zip(self.impl.members, self.impl.per_clip)
            ]
        )
