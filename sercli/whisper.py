"""Whisper's audio encoder in plain torch (OpenAI's architecture, MIT), frozen, as a feature
extractor for the emotion heads in sercli.models.head.

The weights are the encoder half of OpenAI's checkpoints, bundled by train/whisper_weights.py
(float16 tensors, ModelDimensions-style dims, loaded with weights_only=True). Input is
features.whisper_log_mel; clips are fed at their own length (no padding to 30 s), which keeps
the cost proportional to the audio and changes the hidden states only a little (Whisper was
trained on 30 s windows; the heads are trained on what this code computes).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class WhisperEncoderDims:
    n_mels: int = 80
    n_ctx: int = 1500  # positions: 30 s at 50 frames per second
    n_state: int = 384
    n_head: int = 6
    n_layer: int = 4


class MultiHeadAttention(nn.Module):
    def __init__(self, n_state: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.qkv = nn.Linear(n_state, 3 * n_state)  # Whisper's key has no bias: CTranslate2 fused it as zeros
        self.out = nn.Linear(n_state, n_state)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, C // self.n_head).permute(2, 0, 3, 1, 4)
        h = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(h.transpose(1, 2).reshape(B, T, C))


class ResidualAttentionBlock(nn.Module):
    def __init__(self, n_state: int, n_head: int):
        super().__init__()
        self.attn_ln = nn.LayerNorm(n_state)
        self.attn = MultiHeadAttention(n_state, n_head)
        self.mlp_ln = nn.LayerNorm(n_state)
        self.mlp = nn.Sequential(nn.Linear(n_state, 4 * n_state), nn.GELU(), nn.Linear(4 * n_state, n_state))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.attn_ln(x), mask)
        return x + self.mlp(self.mlp_ln(x))


class WhisperEncoder(nn.Module):
    """Conv stem (two 1-D convolutions, the second with stride 2), sinusoidal positions,
    pre-LayerNorm transformer blocks and a final LayerNorm.

    forward: log-mel (B, n_mels, T) -> (B, ceil(T / 2), n_state), Whisper's encoder output.
    hidden_states: the outputs of the blocks asked for (1-based, before the final LayerNorm),
    each (B, ceil(T / 2), n_state); only the blocks up to the highest one asked for are run.
    """

    def __init__(self, dims: WhisperEncoderDims):
        super().__init__()
        self.dims = dims
        self.conv1 = nn.Conv1d(dims.n_mels, dims.n_state, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(dims.n_state, dims.n_state, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positional_embedding", torch.zeros(dims.n_ctx, dims.n_state))
        self.blocks = nn.ModuleList(ResidualAttentionBlock(dims.n_state, dims.n_head) for _ in range(dims.n_layer))
        self.ln_post = nn.LayerNorm(dims.n_state)

    def stem(self, mel: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x)).transpose(1, 2)
        if x.shape[1] > self.dims.n_ctx:
            raise ValueError(f"at most {self.dims.n_ctx} encoder frames (30 s), got {x.shape[1]}")
        return x + self.positional_embedding[: x.shape[1]].to(x.dtype)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.stem(mel)
        for block in self.blocks:
            x = block(x)
        return self.ln_post(x)

    def hidden_states(
        self, mel: torch.Tensor, layers: tuple[int, ...], mask: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """`mask` (B, 1, T', T') bool, True where attention is allowed (padded batches)."""
        return self.run_blocks(self.stem(mel), layers, mask)

    def run_blocks(
        self, x: torch.Tensor, layers: tuple[int, ...], mask: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """hidden_states from the stem's output x (B, T', n_state)."""
        out = {}
        for i, block in enumerate(self.blocks[: max(layers)], start=1):
            x = block(x, mask)
            if i in layers:
                out[i] = x
        return [out[i] for i in layers]


def encoder_frames(n_mel_frames: int) -> int:
    """Encoder frames for a log-mel of n_mel_frames (the stride-2 convolution)."""
    return (n_mel_frames + 1) // 2


def sinusoids(length: int, channels: int, max_timescale: float = 10000) -> torch.Tensor:
    """Whisper's fixed positional embedding (length, channels)."""
    import math

    inc = math.log(max_timescale) / (channels // 2 - 1)
    inv = torch.exp(-inc * torch.arange(channels // 2))
    t = torch.arange(length)[:, None] * inv[None, :]
    return torch.cat([torch.sin(t), torch.cos(t)], dim=1)


def load_encoder(path, *, dtype: torch.dtype = torch.float32) -> tuple[WhisperEncoder, dict]:
    """(encoder in eval mode, config) from a file written by train/whisper_weights.py."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    enc = WhisperEncoder(WhisperEncoderDims(**blob["dims"]))
    enc.load_state_dict({k: v.to(dtype) for k, v in blob["state_dict"].items()})
    return enc.to(dtype).eval(), blob["config"]
