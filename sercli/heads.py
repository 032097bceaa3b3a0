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

    #: clips per encoder batch when the encoder runs here (use_device)
    BATCH = 32

    def __init__(self, net: WhisperHead, encoder_file: str, encoder_sha256: str):
        self.net, self.dims = net, net.dims
        self.encoder_file, self.encoder_sha256 = encoder_file, encoder_sha256
        self.device = None          # None: the encoder runs in the feature workers, on their CPU
        self._encoder = None

    @property
    def feature_key(self) -> str:
        """The feature a worker computes for this head (sercli.dataset.clip_features): the
        pooled encoder outputs, or only the log-mel when the encoder runs here (use_device)."""
        if self.device is not None:
            return "whisper_mel"
        return encoded_key(self.encoder_file, self.dims.layers)

    def use_device(self, device: str) -> None:
        """Run the encoder in this process on `device` ("cuda", or "cpu" to test the path),
        clips batched by length; the workers then compute only the log-mel."""
        from .models import weights_dir
        from .whisper import load_encoder
        self.device = torch.device(device)
        self._encoder = load_encoder(weights_dir() / self.encoder_file)[0].to(self.device)

    def vectors(self, feats: list[dict]) -> list[np.ndarray]:
        """Each clip's pooled vector, from its worker's features (encoder outputs, or log-mel)."""
        if self.device is None:
            return [f[self.feature_key] for f in feats]
        return self._encode_batched([f["whisper_mel"] for f in feats])

    def _encode_batched(self, mels: list[np.ndarray]) -> list[np.ndarray]:
        # Clips of similar length share a batch. The convolution stem runs on each clip alone
        # (it would see the padding), the transformer blocks on the padded batch with padded
        # frames masked out of attention and pooling: a clip's scores do not depend on its batch.
        from .encoded import pool_frames
        layers = tuple(self.dims.layers)
        out: list = [None] * len(mels)
        order = sorted(range(len(mels)), key=lambda i: mels[i].shape[1])
        with torch.inference_mode():
            for s in range(0, len(order), self.BATCH):
                idx = order[s:s + self.BATCH]
                stems = [self._encoder.stem(torch.from_numpy(mels[i])[None].to(self.device))[0] for i in idx]
                n = torch.tensor([len(x) for x in stems])
                x = torch.nn.utils.rnn.pad_sequence(stems, batch_first=True)
                keep = (torch.arange(x.shape[1])[None, :] < n[:, None]).to(self.device)
                hs = self._encoder.run_blocks(x, layers, keep[:, None, None, :])
                for j, i in enumerate(idx):
                    h = torch.stack([hh[j, :int(n[j])] for hh in hs])
                    out[i] = pooled_stats(pool_frames(h).to(torch.float16).cpu().numpy())
        return out

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
