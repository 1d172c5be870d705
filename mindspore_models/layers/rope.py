"""Rotary position embedding (NeoX half-rotation, as Llama/Qwen in HF) with a precomputed table."""
from __future__ import annotations

import functools

import mindspore as ms
import numpy as np
from mindspore import nn

from mindspore_models import kernels


def inv_frequencies(head_dim: int, theta: float, scaling: dict | None) -> np.ndarray:
    inv = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.int64).astype(np.float32) / head_dim))
    if scaling:
        raise NotImplementedError(f"rope scaling {scaling.get('rope_type')!r} is not implemented yet")
    return inv.astype(np.float32)


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
