"""Rotary position embedding (NeoX half-rotation, as Llama/Qwen in HF) with a precomputed table."""
from __future__ import annotations

import functools

import mindspore as ms
import numpy as np
from mindspore import nn

from mindspore_models import kernels


def inv_frequencies(head_dim: int, theta: float, scaling: dict | None) -> np.ndarray:
    inv = (1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.int64).astype(np.float32) / head_dim))).astype(np.float32)
    kind = (scaling or {}).get("rope_type", (scaling or {}).get("type", "default"))
    if kind == "default":
        return inv
    if kind == "linear":  # positions divided by factor == frequencies divided by factor
        return (inv / np.float32(scaling["factor"])).astype(np.float32)
    if kind == "llama3":
        return _llama3(inv, scaling)
    raise NotImplementedError(f"rope scaling type {kind!r} is not implemented (supported: linear, llama3)")


def _llama3(inv: np.ndarray, s: dict) -> np.ndarray:
    """Llama 3.1: long wavelengths slowed by `factor`, short ones kept, the band between blended."""
    factor, low, high = np.float32(s["factor"]), s["low_freq_factor"], s["high_freq_factor"]
    old_len = s["original_max_position_embeddings"]
    wavelen = (2 * np.pi / inv).astype(np.float32)
    scaled = np.where(wavelen > old_len / low, inv / factor, inv).astype(np.float32)
    smooth = ((old_len / wavelen - low) / (high - low)).astype(np.float32)
    blended = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= old_len / high) & (wavelen <= old_len / low)
    return np.where(medium, blended, scaled).astype(np.float32)


class RotaryEmbedding(nn.Cell):
    def __init__(self, head_dim: int, max_position: int, theta: float, scaling: dict | None = None):
        super().__init__()
        key = (head_dim, max_position, theta, tuple(sorted((scaling or {}).items())))
        self.cos, self.sin = _tables(*key)

    def construct(self, positions, q, k):
        """q: [T, Hq, D], k: [T, Hk, D] -> rotated, same shapes."""
        return kernels.rope_neox(q, positions, self.cos, self.sin), kernels.rope_neox(k, positions, self.cos, self.sin)


@functools.cache
def _tables(head_dim: int, max_position: int, theta: float, scaling: tuple):
    """cos/sin [P, D/2], built once per shape and shared by every layer."""
    inv = inv_frequencies(head_dim, theta, dict(scaling) or None)
    freqs = np.outer(np.arange(max_position, dtype=np.float32), inv)
    return ms.Tensor(np.cos(freqs).astype(np.float32)), ms.Tensor(np.sin(freqs).astype(np.float32))
