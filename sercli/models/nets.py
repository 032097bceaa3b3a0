"""The torch networks: the CNN, the seed paper's nets and the head over a Whisper encoder.
Imported only when a torch model is used (keeps `--help` fast).

Each network is built from a small dimensions dataclass stored beside its state_dict, as
openai/whisper's ModelDimensions, so a weights file holds tensors and plain values only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class CNNDims:
    n_mels: int = 64
    n_labels: int = 6
    channels: list[int] = field(default_factory=lambda: [32, 64, 128, 128])
    n_summary: int = 0  # > 0: fuse a z-scored summary vector with the CNN embedding
    hidden: int = 128
    dropout: float = 0.3
    convs_per_block: int = 1
    time_pool: int = 1  # > 1: average this many frames before the convolutions (cheaper)
    band_norm: bool = False  # subtract each band's mean over the utterance first (as CMN)
    pooling: str = "stats"  # "stats": mean and std over time; "attention": both weighted by
    # a learned frame score (attentive statistics pooling, Okabe 2018)
    # True: trained on inputs normalised per speaker (sercli.normalize.cnn_group_inputs); the
    # prior statistics are the buffers group_mean / group_std over (band means, summary)
    group_norm: bool = False
    group_prior: float = 1.0


def masked_stats(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean and std over time of (B, C, T) where mask (B, T) is True on real frames -> (B, 2C)."""
    m = mask[:, None, :].to(h.dtype)
    n = m.sum(-1).clamp(min=1.0)
    mean = (h * m).sum(-1) / n
    var = (((h - mean[..., None]) ** 2) * m).sum(-1) / n
    return torch.cat([mean, (var + 1e-5).sqrt()], dim=1)


def attentive_stats(h: torch.Tensor, scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean and std over time of (B, C, T) weighted by softmax(scores) (B, T) over the frames
    where mask (B, T) is True -> (B, 2C)."""
    w = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)[:, None, :]
    mean = (h * w).sum(-1)
    var = (((h - mean[..., None]) ** 2) * w).sum(-1)
    return torch.cat([mean, (var + 1e-5).sqrt()], dim=1)


class EmotionCNN(nn.Module):
    """2-D CNN over log-mel frames with statistics pooling (plain or attentive); any clip length.

    Input: log-mel in dB (B, n_mels, T) and lengths (B,); each utterance is normalised to zero
    mean and unit variance over its real frames (gain invariant). Output: logits (B, n_labels).
    """

    def __init__(self, dims: CNNDims):
        super().__init__()
        self.dims = dims
        layers, c_in = [], 1
        for c in dims.channels:
            for k in range(dims.convs_per_block):
                layers += [nn.Conv2d(c_in if k == 0 else c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU()]
            layers.append(nn.MaxPool2d(2))
            c_in = c
        self.conv = nn.Sequential(*layers)
        self.conv_factor = 2 ** len(dims.channels)
        self.pool_factor = self.conv_factor * dims.time_pool  # input frames per output step
        emb = 2 * c_in
        if dims.pooling == "attention":
            self.attention = nn.Sequential(nn.Conv1d(c_in, dims.hidden, 1), nn.Tanh(), nn.Conv1d(dims.hidden, 1, 1))
        elif dims.pooling != "stats":
            raise ValueError(f"pooling must be 'stats' or 'attention', got {dims.pooling!r}")
        if dims.n_summary:
            self.register_buffer("summary_mean", torch.zeros(dims.n_summary))
            self.register_buffer("summary_std", torch.ones(dims.n_summary))
            self.summary_net = nn.Sequential(
                nn.Linear(dims.n_summary, dims.hidden), nn.ReLU(), nn.Dropout(dims.dropout)
            )
            emb += dims.hidden
        if dims.group_norm:
            self.register_buffer("group_mean", torch.zeros(dims.n_mels + dims.n_summary))
            self.register_buffer("group_std", torch.ones(dims.n_mels + dims.n_summary))
        self.embed_dim = emb  # width of embed()'s output, the head's input
        self.head = nn.Sequential(
            nn.Dropout(dims.dropout),
            nn.Linear(emb, dims.hidden),
            nn.ReLU(),
            nn.Dropout(dims.dropout),
            nn.Linear(dims.hidden, dims.n_labels),
        )
        self.fused_mkldnn = False

    def fuse_for_inference(self) -> EmotionCNN:
        """Fold each BatchNorm into the convolution before it and, where torch has oneDNN,
        prepack the convolutions for it: the same function within float rounding (about 1e-5
        on the probabilities) in about half the CPU time of the layers as trained. For a
        loaded model in eval mode only: afterwards the net cannot be trained or saved."""
        mods, layers, i = list(self.conv), [], 0
        while i < len(mods):
            conv, bn = mods[i], mods[i + 1] if i + 1 < len(mods) else None
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                fused = nn.Conv2d(
                    conv.in_channels, conv.out_channels, conv.kernel_size, padding=conv.padding, bias=True
                )
                with torch.no_grad():
                    fused.weight.copy_(conv.weight * scale[:, None, None, None])
                    fused.bias.copy_(
                        bn.bias - bn.running_mean * scale + (conv.bias * scale if conv.bias is not None else 0)
                    )
                layers.append(fused)
                i += 2
            else:
                layers.append(conv)
                i += 1
        conv = nn.Sequential(*layers).eval()
        self.conv, self.fused_mkldnn = conv.to(memory_format=torch.channels_last), False
        if torch.backends.mkldnn.is_available():
            import warnings

            try:
                with warnings.catch_warnings():  # its module still uses torch.jit decorators
                    warnings.simplefilter("ignore", DeprecationWarning)
                    from torch.utils import mkldnn
                packed = mkldnn.to_mkldnn(conv)
                with torch.inference_mode():  # a CPU oneDNN cannot serve fails here
                    packed(torch.zeros(1, 1, self.dims.n_mels, 2 * self.conv_factor).to_mkldnn())
                self.conv, self.fused_mkldnn = packed, True
            except Exception:  # the folded layers in NHWC, as they are, instead
                pass
        return self

    def embed(self, x: torch.Tensor, lengths: torch.Tensor, summary: torch.Tensor | None = None):
        T = x.shape[-1]
        mask = torch.arange(T, device=x.device)[None, :] < lengths[:, None]
        m = mask[:, None, :].to(x.dtype)
        if self.dims.band_norm:  # a fixed filter on the whole clip (channel, voice) is a band offset
            x = x - (x * m).sum(-1, keepdim=True) / m.sum(-1, keepdim=True).clamp(min=1.0)
        n = (m.sum(-1, keepdim=True) * x.shape[1]).clamp(min=1.0)
        mean = (x * m).sum((1, 2), keepdim=True) / n
        std = ((((x - mean) ** 2) * m).sum((1, 2), keepdim=True) / n + 1e-5).sqrt()
        x = ((x - mean) / std) * m
        if self.dims.time_pool > 1:
            x = F.avg_pool1d(x, self.dims.time_pool, ceil_mode=True)
        pad = (-x.shape[-1]) % self.conv_factor
        if pad:
            x = F.pad(x, (0, pad))
        if self.fused_mkldnn:
            h = self.conv(x[:, None].to_mkldnn()).to_dense()
        else:
            h = self.conv(x[:, None])  # (B, C, F', T')
        h = h.mean(dim=2)  # (B, C, T')
        t_mask = torch.arange(h.shape[-1], device=x.device)[None, :] * self.pool_factor < lengths[:, None]
        if self.dims.pooling == "attention":
            e = attentive_stats(h, self.attention(h)[:, 0], t_mask)
        else:
            e = masked_stats(h, t_mask)
        if self.dims.n_summary:
            s = (summary - self.summary_mean) / self.summary_std
            e = torch.cat([e, self.summary_net(s)], dim=1)
        return e

    def forward(self, x, lengths, summary=None):
        return self.head(self.embed(x, lengths, summary))


@dataclass
class SeedCNNDims:
    n_labels: int = 5


class SeedCNN(nn.Module):
    """The seed paper's dual-branch 1-D CNN, exactly as its section 5.1 specifies.

    mel (B, 128) -> Conv1d(1,10,k5,s3) -> MaxPool1d(4,2) -> Conv1d(10,10,k4,s2,p1) -> (B,10,10)
    mfcc (B, 20) -> Conv1d(1,10,k4,s2,p1) -> (B,10,10)
    concat (B,20,10) -> FC 700 -> 150 -> 50 -> n_labels (ReLU between; the paper names none).
    """

    def __init__(self, dims: SeedCNNDims):
        super().__init__()
        self.dims = dims
        self.mel = nn.Sequential(
            nn.Conv1d(1, 10, 5, stride=3),
            nn.ReLU(),
            nn.MaxPool1d(4, stride=2),
            nn.Conv1d(10, 10, 4, stride=2, padding=1),
            nn.ReLU(),
        )
        self.mfcc = nn.Sequential(nn.Conv1d(1, 10, 4, stride=2, padding=1), nn.ReLU())
        self.fc = nn.Sequential(
            nn.Linear(200, 700),
            nn.ReLU(),
            nn.Linear(700, 150),
            nn.ReLU(),
            nn.Linear(150, 50),
            nn.ReLU(),
            nn.Linear(50, dims.n_labels),
        )
        self.register_buffer("mel_mean", torch.zeros(128))
        self.register_buffer("mel_std", torch.ones(128))
        self.register_buffer("mfcc_mean", torch.zeros(20))
        self.register_buffer("mfcc_std", torch.ones(20))

    def forward(self, mel: torch.Tensor, mfcc: torch.Tensor) -> torch.Tensor:
        a = self.mel(((mel - self.mel_mean) / self.mel_std)[:, None])
        b = self.mfcc(((mfcc - self.mfcc_mean) / self.mfcc_std)[:, None])
        return self.fc(torch.cat([a, b], dim=1).flatten(1))


@dataclass
class SeedRNNDims:
    n_labels: int = 5
    hidden: int = 64
    layers: int = 2
    cell: str = "rnn"  # "rnn" (tanh, as the paper names it), "gru" or "lstm"
    fc: int = 64


class SeedRNN(nn.Module):
    """The seed paper's dual RNN (its section 5): one 2-layer RNN per input, then an FC net.

    mel (B, 128) is read as a sequence of 128 steps of one value (low to high band), mfcc
    (B, 20) as 20 steps; each is z-scored per dimension with training statistics first. The
    last hidden states of the top layers are concatenated (B, 2*hidden) -> FC fc -> n_labels
    (ReLU between). The paper gives no sizes or cell type; these are the recipe's choices.
    Same call signature as SeedCNN, so training and prediction share the seed-model paths.
    """

    CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}

    def __init__(self, dims: SeedRNNDims):
        super().__init__()
        if dims.cell not in self.CELLS:
            raise ValueError(f"unknown RNN cell {dims.cell!r} (choose {', '.join(self.CELLS)})")
        self.dims = dims
        cell = self.CELLS[dims.cell]
        self.mel = cell(1, dims.hidden, num_layers=dims.layers, batch_first=True)
        self.mfcc = cell(1, dims.hidden, num_layers=dims.layers, batch_first=True)
        self.fc = nn.Sequential(nn.Linear(2 * dims.hidden, dims.fc), nn.ReLU(), nn.Linear(dims.fc, dims.n_labels))
        self.register_buffer("mel_mean", torch.zeros(128))
        self.register_buffer("mel_std", torch.ones(128))
        self.register_buffer("mfcc_mean", torch.zeros(20))
        self.register_buffer("mfcc_std", torch.ones(20))

    def forward(self, mel: torch.Tensor, mfcc: torch.Tensor) -> torch.Tensor:
        a, _ = self.mel(((mel - self.mel_mean) / self.mel_std)[:, :, None])
        b, _ = self.mfcc(((mfcc - self.mfcc_mean) / self.mfcc_std)[:, :, None])
        return self.fc(torch.cat([a[:, -1], b[:, -1]], dim=1))


@dataclass
class HeadDims:
    """A head over a frozen Whisper encoder (sercli.models.head)."""

    encoder: str = "whisper-base"  # bundled encoder name (sercli.models.ENCODERS)
    layers: list[int] = field(default_factory=lambda: [3, 4, 5, 6])  # encoder blocks read, 1-based
    n_state: int = 512
    n_labels: int = 6
    hidden: int = 256  # 0: a linear head
    dropout: float = 0.3
    temperature: float = 1.0  # logits are divided by it (fitted on val)
    # True: trained on vectors z-scored per speaker; group_mean / group_std hold the prior
    group_norm: bool = False
    group_prior: float = 1.0
    # the encoder's arithmetic the head was trained on, and is run at (sercli.encoded.PRECISIONS)
    precision: str = "fp32"

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
            self.classifier = nn.Sequential(
                nn.Dropout(dims.dropout),
                nn.Linear(D, H),
                nn.GELU(),
                nn.Dropout(dims.dropout),
                nn.Linear(H, dims.n_labels),
            )
        else:
            self.classifier = nn.Sequential(nn.Dropout(dims.dropout), nn.Linear(D, dims.n_labels))

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.classifier((v - self.feat_mean) / self.feat_std)
