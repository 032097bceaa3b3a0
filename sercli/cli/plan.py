"""What one `sercli classify` run does, settled from its options before anything starts."""

from __future__ import annotations

from dataclasses import dataclass, field

from .messages import say
from .resume import Resumed


@dataclass
class Plan:
    files: list[str]
    speakers: dict[str, str]  # from manifests, for --normalize-by speaker
    model: str  # a bundled model's name or a model file
    fmt: str  # table, jsonl, json or csv
    output: str | None  # None: stdout
    jobs: int | None
    backend: str
    scheduler: str | None
    window: float
    segments: bool
    top_k: int | None
    normalize_by: str
    gpu: bool  # the encoder runs on CUDA in this process
    quiet: bool
    debug: bool
    resumed: Resumed = field(default_factory=Resumed)
    already: set[str] = field(default_factory=set)  # analysed for their group, not written

    @property
    def todo(self) -> int:
        """How many rows this run writes when it is not interrupted."""
        return len(self.files) - len(self.already)

    def warn(self, msg: str) -> None:
        say(msg, self.quiet)
