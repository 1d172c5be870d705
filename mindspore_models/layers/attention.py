"""Attention over SGLang's KV pool, as a layer: what the backend needs to know about it.

The step's backend (chosen once by the device switch, see attention/) writes the new K/V
rows into the pool and attends; the layer only shapes q/k/v and passes the step along.
"""
from __future__ import annotations

from mindspore import nn


class Attention(nn.Cell):
    def __init__(self, num_heads: int, num_kv_heads: int, head_dim: int, layer_id: int):
        super().__init__()
        assert num_heads % num_kv_heads == 0, "query heads must be a multiple of KV heads"
        self.hq, self.hkv, self.d = num_heads, num_kv_heads, head_dim
        self.group = num_heads // num_kv_heads
        self.layer_id = layer_id
        self.scale = head_dim ** -0.5

    def construct(self, q, k, v, step):
        """q: [T, Hq, D], k/v: [T, Hkv, D] -> [T, Hq*D]."""
        return step.attend(self, q, k, v)
