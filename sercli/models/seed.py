"""Model kinds "seed-cnn" and "seed-rnn": the seed paper's networks (nets.SeedCNN, SeedRNN) on
the time means of a 128-band log-mel and 20 MFCCs. Torch is imported when one is loaded or run."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import Model
from .files import load_state


class SeedModel(Model):
    """`impl`: one of the seed paper's networks; both take (mel, mfcc) -> logits."""

    @classmethod
    def needs_from_card(cls, card: dict) -> tuple[str, ...] | None:
        return ("paper_mel", "paper_mfcc")

    @classmethod
    def network(cls, dims: dict):
        """The untrained network of a file's dims."""
        raise NotImplementedError

    @classmethod
    def from_torch(
        cls, path: Path, digest: str, name: str, card: dict, blob: dict, labels: tuple[str, ...]
    ) -> SeedModel:
        """The model of a torch file whose config names this class's kind."""
        net = load_state(cls.network(blob["dims"]), blob, labels)
        net.eval()
        return cls(name, cls.KINDS[0], labels, str(path), digest, card, net)

    @property
    def needs(self) -> tuple[str, ...]:
        return ("paper_mel", "paper_mfcc")

    def _predict(self, feats: list[dict[str, np.ndarray]]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            mel = torch.from_numpy(np.stack([f["paper_mel"] for f in feats]).astype(np.float32))
            mfcc = torch.from_numpy(np.stack([f["paper_mfcc"] for f in feats]).astype(np.float32))
            logits = self.impl(mel, mfcc)
            return torch.softmax(logits.float(), dim=-1).numpy()


class SeedCNNModel(SeedModel):
    """`impl`: nets.SeedCNN, the paper's dual-branch 1-D CNN."""

    KINDS = ("seed-cnn",)

    @classmethod
    def network(cls, dims: dict):
        from .nets import SeedCNN, SeedCNNDims

        return SeedCNN(SeedCNNDims(**dims))


class SeedRNNModel(SeedModel):
    """`impl`: nets.SeedRNN, the paper's dual RNN."""

    KINDS = ("seed-rnn",)

    @classmethod
    def network(cls, dims: dict):
        from .nets import SeedRNN, SeedRNNDims

        return SeedRNN(SeedRNNDims(**dims))


#: torch models on the seed paper's inputs (time-means of 128-band log-mel and 20 MFCCs).
SEED_KINDS = SeedCNNModel.KINDS + SeedRNNModel.KINDS
