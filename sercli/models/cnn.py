"""Model kind "cnn": the 2-D CNN on log-mel frames (nets.EmotionCNN), optionally fused with
the summary vector and trained on group-normalised inputs. Torch is imported when one is
loaded or run."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import Model
from .files import load_state


def pad_batch(mels: list[np.ndarray]):
    """List of (n_mels, T_i) -> zero-padded float tensor (B, n_mels, T_max) and lengths (B,)."""
    import torch

    T = max(m.shape[1] for m in mels)
    x = np.zeros((len(mels), mels[0].shape[0], T), np.float32)
    for i, m in enumerate(mels):
        x[i, :, : m.shape[1]] = m
    return torch.from_numpy(x), torch.tensor([m.shape[1] for m in mels])


class CNNModel(Model):
    """`impl`: nets.EmotionCNN (fused for inference when loaded from a file)."""

    KINDS = ("cnn",)

    @classmethod
    def needs_from_card(cls, card: dict) -> tuple[str, ...] | None:
        recipe = card.get("recipe")
        if not isinstance(recipe, dict):
            return None
        return ("logmel", "summary") if recipe.get("fuse_summary") else ("logmel",)

    @classmethod
    def from_torch(
        cls, path: Path, digest: str, name: str, card: dict, blob: dict, labels: tuple[str, ...]
    ) -> CNNModel:
        """The model of a torch file whose config says kind "cnn" (read by files.read_torch)."""
        from .nets import CNNDims, EmotionCNN

        net = load_state(EmotionCNN(CNNDims(**blob["dims"])), blob, labels)
        net.eval()
        return cls(name, "cnn", labels, str(path), digest, card, net.fuse_for_inference())

    @property
    def needs(self) -> tuple[str, ...]:
        return ("logmel", "summary") if self.impl.dims.n_summary else ("logmel",)

    @property
    def group_trained(self) -> bool:
        return self.impl.dims.group_norm

    def _predict(self, feats: list[dict[str, np.ndarray]]) -> np.ndarray:
        return self._predict_cnn(feats, None)

    def _predict_grouped(self, feats: list[dict[str, np.ndarray]], groups: list) -> np.ndarray:
        return self._predict_cnn(feats, groups)

    def _predict_cnn(self, feats: list[dict[str, np.ndarray]], groups: list | None) -> np.ndarray:
        # One window per forward pass, never padded: on a CPU that is the fastest per window
        # (a padded batch computes the padding and misses the caches), and padding would shift
        # the scores a little, making a file's scores depend on the files batched with it.
        import torch

        dims = self.impl.dims
        fuse = bool(dims.n_summary)
        offsets = z = None
        if self.group_trained:  # groups None: each clip is a group of one
            from ..normalize import cnn_group_inputs

            offsets, z = cnn_group_inputs(
                [f["logmel"] for f in feats],
                np.stack([f["summary"] for f in feats]) if fuse else None,
                groups,
                self.impl.group_mean.numpy(),
                self.impl.group_std.numpy(),
                dims.group_prior,
            )
        out = np.zeros((len(feats), len(self.labels)), np.float32)
        with torch.inference_mode():
            for i, f in enumerate(feats):
                m = np.asarray(f["logmel"], dtype=np.float32)
                m = np.ascontiguousarray(m - offsets[i][:, None] if offsets is not None else m)
                x = torch.from_numpy(m[None])
                summ = None
                if fuse:
                    summ = torch.from_numpy((z[i] if z is not None else np.asarray(f["summary"], np.float32))[None])
                logits = self.impl(x, torch.tensor([x.shape[-1]]), summ)
                out[i] = torch.softmax(logits.float(), dim=-1).numpy()[0]
        return out
