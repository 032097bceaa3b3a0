"""Emotion heads over a frozen Whisper encoder (sercli.whisper): the network, its group
normalisation, and what classify, evaluate and train call.

A head reads the hidden states of a few encoder blocks (pooled to 25 frames per second, see
sercli.encoded) as one vector per clip: each block's mean and standard deviation over time
(`pooled_stats`). The vector is standardised with the training set's statistics and fed to an
MLP (or, with hidden = 0, a linear layer). Logits are divided by a temperature fitted on the
val speakers, so that confidences are calibrated. A head trained with normalize = "group"
reads the vectors z-scored per speaker (sercli.normalize), as `--normalize-by` gives them.

(A head over the frames themselves, with learned block weights and attentive statistics
pooling, scored below this on val: docs/encoder.md.)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .heads_np import encoded_key, pooled_stats  # noqa: F401 (re-exported)


@dataclass
class HeadDims:
    encoder: str = "whisper-base"          # bundled encoder name (sercli.models.ENCODERS)
    layers: list[int] = field(default_factory=lambda: [3, 4, 5, 6])   # encoder blocks read, 1-based
    n_state: int = 512
    n_labels: int = 6
    hidden: int = 256                      # 0: a linear head
    dropout: float = 0.3
    temperature: float = 1.0               # logits are divided by it (fitted on val)
    # True: trained on vectors z-scored per speaker; group_mean / group_std hold the prior
    group_norm: bool = False
    group_prior: float = 1.0

    @property
    def n_input(self) -> int:
        return 2 * len(self.layers) * self.n_state


class WhisperHead(nn.Module):
    """(B, n_input) pooled vectors -> logits (B, n_labels) (before the temperature)."""

    def __init__(self, dims: HeadDims):
        super().__init__()
        self.dims = dims
        D, H = dims.n_input, dims.hidden
        self.register_buffer("feat_mean", torch.zeros(D))
        self.register_buffer("feat_std", torch.ones(D))
        self.register_buffer("group_mean", torch.zeros(D if dims.group_norm else 0))
        self.register_buffer("group_std", torch.ones(D if dims.group_norm else 0))
        if H:
            self.classifier = nn.Sequential(nn.Dropout(dims.dropout), nn.Linear(D, H), nn.GELU(),
                                            nn.Dropout(dims.dropout), nn.Linear(H, dims.n_labels))
        else:
            self.classifier = nn.Sequential(nn.Dropout(dims.dropout), nn.Linear(D, dims.n_labels))

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.classifier((v - self.feat_mean) / self.feat_std)


class HeadModel:
    """A head with what it needs to run: its encoder's file and blocks, and its temperature."""

    def __init__(self, net: WhisperHead, encoder_file: str, encoder_sha256: str):
        self.net, self.dims = net, net.dims
        self.encoder_file, self.encoder_sha256 = encoder_file, encoder_sha256

    @property
    def feature_key(self) -> str:
        """The feature a worker computes for this head (sercli.dataset.clip_features)."""
        return encoded_key(self.encoder_file, self.dims.layers)

    def inputs(self, vectors: list[np.ndarray], groups=None, grouped: bool = False) -> np.ndarray:
        """(B, n_input) float32 as the network takes them: group-trained heads get the vectors
        z-scored per group (groups None or not `grouped`: each clip alone)."""
        V = np.stack([np.asarray(v, np.float32) for v in vectors])
        if self.dims.group_norm:
            from .normalize import normalize_groups
            V = normalize_groups(V, groups if grouped else None, self.net.group_mean.numpy(),
                                 self.net.group_std.numpy(), self.dims.group_prior).astype(np.float32)
        return V

    def predict_proba(self, vectors: list[np.ndarray], groups=None, grouped: bool = False) -> np.ndarray:
        """Probabilities (B, n_labels) from clips' pooled vectors (pooled_stats)."""
        V = self.inputs(vectors, groups, grouped)
        with torch.inference_mode():
            logits = self.net(torch.from_numpy(V)) / self.dims.temperature
            return torch.softmax(logits, -1).numpy()
