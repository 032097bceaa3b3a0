"""Model kind "whisper-head": an emotion head over a frozen Whisper encoder (sercli.whisper).

A head reads the hidden states of a few encoder blocks (pooled to 25 frames per second, see
sercli.encoded) as one vector per clip: each block's mean and standard deviation over time
(`pooled_stats`). The vector is standardised with the training set's statistics and fed to an
MLP (or, with hidden = 0, a linear layer; nets.WhisperHead). Logits are divided by a
temperature fitted on the val speakers, so that confidences are calibrated. A head trained
with normalize = "group" reads the vectors z-scored per speaker (sercli.normalize), as
`--normalize-by` gives them.

The feature keys and pooled vectors need only numpy, so workers and the classify process use
them before torch is loaded; torch is imported when a head is loaded or run.

(A head over the frames themselves, with learned block weights and attentive statistics
pooling, scored below this on val: docs/encoder.md.)
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import ModelError
from .base import Model
from .registry import ENCODERS, encoder_path, weights_dir


class EncodedFeature(NamedTuple):
    """What a feature key "encoder:FILE:LAYERS[:PRECISION]" names."""

    encoder_file: str
    layers: tuple[int, ...]
    precision: str  # sercli.encoded.PRECISIONS


def encoded_key(encoder_file: str, layers, precision: str = "fp32") -> str:
    """The feature key naming the pooled outputs of `layers` (1-based) of an encoder file run at
    `precision` (float32 keys carry no suffix, as before precisions existed)."""
    key = f"encoder:{encoder_file}:{','.join(str(int(x)) for x in layers)}"
    return key if precision == "fp32" else f"{key}:{precision}"


def parse_encoded_key(key: str) -> EncodedFeature | None:
    if not key.startswith("encoder:"):
        return None
    _, f, layers, *precision = key.split(":")
    return EncodedFeature(f, tuple(int(x) for x in layers.split(",")), precision[0] if precision else "fp32")


def pooled_stats(h: np.ndarray) -> np.ndarray:
    """(L, T, C) hidden states -> (2 * L * C,) float32: per block, the mean over time then the
    standard deviation over time."""
    h = np.asarray(h, np.float32)
    return np.concatenate([h.mean(axis=1), h.std(axis=1)], axis=1).ravel()


class HeadModel:
    """A head with what it needs to run: its encoder's file and blocks, and its temperature."""

    #: clips per encoder batch when the encoder runs here (use_device)
    BATCH = 32

    def __init__(self, net, encoder_file: str, encoder_sha256: str):
        self.net, self.dims = net, net.dims  # net: nets.WhisperHead
        self.encoder_file, self.encoder_sha256 = encoder_file, encoder_sha256
        self.device = None  # None: the encoder runs in the feature workers, on their CPU
        self._encoder = None
        self._bf16 = False  # the encoder here runs under bf16 autocast (dims.precision, if native)

    @property
    def feature_key(self) -> str:
        """The feature a worker computes for this head (sercli.dataset.clip_features): the
        pooled encoder outputs, or only the log-mel when the encoder runs here (use_device)."""
        if self.device is not None:
            return "whisper_mel"
        return encoded_key(self.encoder_file, self.dims.layers, self.dims.precision)

    def use_device(self, device: str) -> None:
        """Run the encoder in this process on `device` ("cuda", or "cpu" to test the path),
        clips batched by length; the workers then compute only the log-mel."""
        import torch

        from ..encoded import load_at, run_precision

        if self.dims.precision == "int8" and device != "cpu":
            return  # torch's int8 linear layers run on the CPU only: the encoder stays in the workers
        self.device = torch.device(device)
        if device == "cpu":
            self._bf16 = run_precision(self.dims.precision) == "bf16"
        else:
            self._bf16 = self.dims.precision == "bf16" and torch.cuda.is_bf16_supported()
        at = run_precision(self.dims.precision) if device == "cpu" else "fp32"
        self._encoder = load_at(str(weights_dir() / self.encoder_file), at).to(self.device)

    def vectors(self, feats: list[dict]) -> list[np.ndarray]:
        """Each clip's pooled vector, from its worker's features (encoder outputs, or log-mel)."""
        if self.device is None:
            return [f[self.feature_key] for f in feats]
        return self._encode_batched([f["whisper_mel"] for f in feats])

    def _encode_batched(self, mels: list[np.ndarray]) -> list[np.ndarray]:
        # Clips of similar length share a batch. The convolution stem runs on each clip alone
        # (it would see the padding), the transformer blocks on the padded batch with padded
        # frames masked out of attention and pooling: a clip's scores do not depend on its batch.
        import torch

        from ..encoded import pool_frames

        layers = tuple(self.dims.layers)
        out: list = [None] * len(mels)
        order = sorted(range(len(mels)), key=lambda i: mels[i].shape[1])
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self._bf16):
            for s in range(0, len(order), self.BATCH):
                idx = order[s : s + self.BATCH]
                stems = [self._encoder.stem(torch.from_numpy(mels[i])[None].to(self.device))[0] for i in idx]
                n = torch.tensor([len(x) for x in stems])
                x = torch.nn.utils.rnn.pad_sequence(stems, batch_first=True)
                keep = (torch.arange(x.shape[1])[None, :] < n[:, None]).to(self.device)
                hs = self._encoder.run_blocks(x, layers, keep[:, None, None, :])
                for j, i in enumerate(idx):
                    h = torch.stack([hh[j, : int(n[j])] for hh in hs]).float()
                    out[i] = pooled_stats(pool_frames(h).to(torch.float16).cpu().numpy())
        return out

    def inputs(self, vectors: list[np.ndarray], groups=None, grouped: bool = False) -> np.ndarray:
        """(B, n_input) float32 as the network takes them: group-trained heads get the vectors
        z-scored per group (groups None or not `grouped`: each clip alone)."""
        V = np.stack([np.asarray(v, np.float32) for v in vectors])
        if self.dims.group_norm:
            from ..normalize import normalize_groups

            V = normalize_groups(
                V,
                groups if grouped else None,
                self.net.group_mean.numpy(),
                self.net.group_std.numpy(),
                self.dims.group_prior,
            ).astype(np.float32)
        return V

    def predict_proba(self, vectors: list[np.ndarray], groups=None, grouped: bool = False) -> np.ndarray:
        """Probabilities (B, n_labels) from clips' pooled vectors (pooled_stats)."""
        import torch

        V = self.inputs(vectors, groups, grouped)
        with torch.inference_mode():
            logits = self.net(torch.from_numpy(V)) / self.dims.temperature
            return torch.softmax(logits, -1).numpy()


class WhisperHeadModel(Model):
    """`impl`: HeadModel. The encoder itself runs in the feature workers (or, after
    use_device, in this process)."""

    KINDS = ("whisper-head",)

    @classmethod
    def needs_from_card(cls, card: dict) -> tuple[str, ...] | None:
        features = card.get("features")
        if not isinstance(features, dict) or features.get("encoder") not in ENCODERS:
            return None
        return (encoded_key(ENCODERS[features["encoder"]][0], features["layers"], features.get("precision", "fp32")),)

    @classmethod
    def from_torch(
        cls, path: Path, digest: str, name: str, card: dict, blob: dict, labels: tuple[str, ...]
    ) -> WhisperHeadModel:
        """A whisper-head file: the head's state dict, its dims, and the encoder it reads (by
        bundled name and sha256; the encoder's own file is checked and loaded by the workers)."""
        from .nets import HeadDims, WhisperHead

        cfg = blob["config"]
        dims = HeadDims(**blob["dims"])
        enc = encoder_path(dims.encoder, cfg.get("encoder_sha256"))
        if max(dims.layers) > ENCODERS[dims.encoder][2] or min(dims.layers) < 1:
            raise ModelError(f"{path}: layers {dims.layers} outside the encoder's blocks")
        from ..encoded import PRECISIONS

        if dims.precision not in PRECISIONS:
            raise ModelError(f"{path}: encoder precision {dims.precision!r} is not one of {', '.join(PRECISIONS)}")
        labels = tuple(cfg["labels"])
        if len(labels) != dims.n_labels:
            raise ModelError(f"{path}: {len(labels)} labels for {dims.n_labels} outputs")
        net = WhisperHead(dims)
        net.load_state_dict(blob["state_dict"])
        net.eval()
        return cls(
            name, "whisper-head", labels, str(path), digest, card, HeadModel(net, enc.name, ENCODERS[dims.encoder][1])
        )

    @property
    def needs(self) -> tuple[str, ...]:
        return (self.impl.feature_key,)

    @property
    def group_trained(self) -> bool:
        return self.impl.dims.group_norm

    @property
    def encoder(self) -> str | None:
        return self.impl.dims.encoder

    def use_device(self, device: str) -> None:
        self.impl.use_device(device)

    def _predict(self, feats: list[dict[str, np.ndarray]]) -> np.ndarray:
        return self.impl.predict_proba(self.impl.vectors(feats))

    def _predict_grouped(self, feats: list[dict[str, np.ndarray]], groups: list) -> np.ndarray:
        return self.impl.predict_proba(self.impl.vectors(feats), groups, grouped=True)
