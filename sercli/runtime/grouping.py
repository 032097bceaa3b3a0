"""Which files are normalised together for --normalize-by (classify and evaluate alike).

A group is a speaker when one is known (a manifest's speaker column, or a corpus file name),
else the file's folder. The normalisation itself (statistics shrunk toward the model's training
statistics) is in sercli.normalize, which the models and training use too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ..errors import SercliError

if TYPE_CHECKING:
    from ..corpora import Clip

GROUPINGS = ("folder", "speaker")


def _check_grouping(by: str) -> None:
    if by not in GROUPINGS:
        raise SercliError(f"unknown grouping {by!r} (choose folder or speaker)")


def _folder(path: str) -> tuple:
    return ("folder", os.path.dirname(os.path.abspath(path)))


def group_keys(paths: list[str], by: str, speakers: Mapping[str, str] | None = None) -> list[tuple]:
    """Each path's group for --normalize-by.

    folder: the file's parent folder. speaker: the path's speaker in `speakers` (a manifest's
    speaker column), else the speaker of a file name that corpora.parse_name recognises
    (RAVDESS, CREMA-D, TESS, SAVEE, EmoDB, JL-Corpus naming), else the parent folder.
    """
    from ..corpora import parse_name

    _check_grouping(by)
    out = []
    for p in paths:
        if by == "speaker":
            if speakers and speakers.get(p):
                out.append(("speaker", "given", speakers[p]))
                continue
            clip = parse_name(p)
            if clip is not None and clip.speaker is not None:
                out.append(("speaker", clip.speaker_key))
                continue
        out.append(_folder(p))
    return out


def clip_groups(clips: list[Clip], by: str) -> list[tuple]:
    """Group keys of labelled clips for normalize_by, by the rule of group_keys: "speaker" is
    the clip's corpus:speaker (from its file name or a manifest's speaker column), else its
    folder; "folder" is the file's parent folder."""
    _check_grouping(by)
    return [("speaker", c.speaker_key) if by == "speaker" and c.speaker is not None else _folder(c.path) for c in clips]


def check_group_support(m) -> None:
    """A one-line SercliError when model `m` cannot take group-normalised input."""
    if not m.supports_group_norm:
        from ..models import group_models

        best, *rest = group_models() or ["cnn-spk-ens"]
        raise SercliError(
            f"--normalize-by needs a model trained for it: use --model {best}"
            + (f" (or {', '.join(rest)})" if rest else "")
            + f"; model {m.name} ({m.kind}) was trained on single clips"
        )


def group_setup(
    m,
    paths: list[str],
    normalize_by: str | None,
    speakers: Mapping[str, str] | None = None,
    warn: Callable[[str], None] | None = None,
) -> list[tuple] | None:
    """classify's group keys (None: no group normalisation), after checking the model takes it."""
    from ..normalize import MIN_GROUP_CLIPS, NORMALIZE_BY

    by = normalize_by or "none"
    if by not in NORMALIZE_BY:
        raise SercliError(f"unknown normalize_by {by!r} (choose {', '.join(NORMALIZE_BY)})")
    if by == "none":
        if warn and m.group_trained:
            warn(
                f"warning: model {m.name} was trained on features normalised per speaker; "
                "without --normalize-by each clip is normalised alone with its training "
                f"statistics, which scores lower: add --normalize-by speaker (or folder) for "
                f"batches of >= {MIN_GROUP_CLIPS} clips per speaker"
            )
        return None
    check_group_support(m)
    return group_keys(paths, by, speakers)
