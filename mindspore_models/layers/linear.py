"""Linear layers. Weights are stored transposed, (in, out): mint.matmul(x, W) with that layout
was ~28x faster on MindSpore CPU than linear() with (out, in).

A packed layer (qkv_proj, gate_up_proj) declares its shards; the weight loader assembles
the HF tensors of all shards, checks every shape, and sets the parameter once complete.
"""
from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import Parameter, nn

from mindspore_models import kernels
from mindspore_models.runtime import context


class Linear(nn.Cell):
    def __init__(self, in_features: int, out_features: int, bias: bool = False,
                 shards: dict[str | int, int] | None = None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.shards = shards or {None: out_features}  # shard id -> rows (HF out dim), in order
        assert sum(self.shards.values()) == out_features, "shard sizes must add up to out_features"
        self.weight = Parameter(ms.Tensor(np.zeros((in_features, out_features), np.float32)), name="weight")
        self.bias = Parameter(ms.Tensor(np.zeros(out_features, np.float32)), name="bias") if bias else None

    def construct(self, x):
        y = kernels.matmul(x, self.weight, context.rows_hint())
        return y if self.bias is None else y + self.bias

    def shards_of(self, param: str) -> dict:
        return self.shards

    def expected_shape(self, param: str, shard) -> tuple[int, ...]:
        rows = self.shards[shard]
        return (rows, self.in_features) if param == "weight" else (rows,)

    def assemble(self, param: str, parts: dict) -> np.ndarray:
        """HF tensors of every shard (each (rows, in) or (rows,)) -> this layer's stored layout."""
        full = np.concatenate([parts[s] for s in self.shards], axis=0)
        return np.ascontiguousarray(full.T) if param == "weight" else full
