"""Sparse mixture of experts: a softmax top-k router and SwiGLU experts stacked per expert."""
from __future__ import annotations

import re

import mindspore as ms
import numpy as np
from mindspore import Parameter, mint, nn, ops

from mindspore_models import kernels, parallel
from mindspore_models.config import MoEConfig
from mindspore_models.layers.linear import Linear

EXPERT_NAME = re.compile(r"\.experts\.(\d+)\.(gate_proj|up_proj|down_proj)\.weight$")


def map_expert_name(hf_name: str):
    """model.layers.3.mlp.experts.7.up_proj.weight -> (model.layers.3.mlp.experts.gate_up_proj, (7, 1))."""
    m = EXPERT_NAME.search(hf_name)
    if not m:
        return None
    expert, proj = int(m.group(1)), m.group(2)
    prefix = hf_name[: m.start()]
    if proj == "down_proj":
        return f"{prefix}.experts.down_proj", expert
    return f"{prefix}.experts.gate_up_proj", (expert, 0 if proj == "gate_proj" else 1)


class Experts(nn.Cell):
    """E SwiGLU experts: gate_up_proj (E, H, 2I), down_proj (E, I, H), each stored (in, out).
    Tensor parallel: every rank holds every expert, with its share of the intermediate size."""

    def __init__(self, num_experts: int, hidden: int, intermediate: int):
        super().__init__()
        self.e, self.h, self.i = num_experts, hidden, intermediate
        self.start, self.local = parallel.tp().split(intermediate, "moe_intermediate_size")
        self.gate_up_proj = Parameter(ms.Tensor(np.zeros((num_experts, hidden, 2 * self.local), np.float32)),
                                      name="gate_up_proj")
        self.down_proj = Parameter(ms.Tensor(np.zeros((num_experts, self.local, hidden), np.float32)), name="down_proj")

    def shards_of(self, param: str) -> dict:
        if param == "gate_up_proj":
            return {(e, j): None for e in range(self.e) for j in (0, 1)}
        return {e: None for e in range(self.e)}

    def expected_shape(self, param: str, shard) -> tuple[int, ...]:
        return (self.i, self.h) if param == "gate_up_proj" else (self.h, self.i)  # HF (out, in)

    def assemble(self, param: str, parts: dict) -> np.ndarray:
        cut = slice(self.start, self.start + self.local)
        if param == "gate_up_proj":
            per_expert = [np.concatenate([parts[(e, 0)][cut], parts[(e, 1)][cut]], 0).T for e in range(self.e)]
        else:
            per_expert = [parts[e][:, cut].T for e in range(self.e)]
        return np.ascontiguousarray(np.stack(per_expert))


class SparseMoE(nn.Cell):
    def __init__(self, hidden: int, moe: MoEConfig):
        super().__init__()
        self.top_k, self.norm_topk_prob = moe.top_k, moe.norm_topk_prob
        self.gate = Linear(hidden, moe.num_experts)  # the router
        self.experts = Experts(moe.num_experts, hidden, moe.intermediate_size)

    def construct(self, x):
        probs = mint.softmax(self.gate(x), -1)  # [T, E]
        weights, ids = ops.topk(probs, self.top_k)  # [T, k]
        if self.norm_topk_prob:
            weights = weights / weights.sum(-1, keepdims=True)
        out = kernels.moe_swiglu(x, weights, ids.astype(ms.int32), self.experts.gate_up_proj,
                                 self.experts.down_proj)
        return parallel.all_reduce(out)  # each rank computed its share of the intermediate size
