"""Sparse mixture of experts: a softmax top-k router and SwiGLU experts stacked per expert."""
from __future__ import annotations

import re

import mindspore as ms
import numpy as np
from mindspore import Parameter, mint, nn, ops

from mindspore_models import kernels, parallel
from mindspore_models.config import MoEConfig

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
    Tensor parallel: every rank holds every expert, with its share of the intermediate size (TP.share:
    within one column when the TP size does not divide it; the partial outputs are summed over ranks)."""

    def __init__(self, num_experts: int, hidden: int, intermediate: int):
        super().__init__()
        self.e, self.h, self.i = num_experts, hidden, intermediate
        self.start, self.local = parallel.tp().share(intermediate)
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


class Router(nn.Cell):
    """Top-k routing. softmax (Qwen3-MoE), or sigmoid with a score-correction bias that only
    decides the choice, restricted to the best `topk_group` of `n_group` expert groups (DeepSeek-V3)."""

    def __init__(self, hidden: int, moe: MoEConfig):
        super().__init__()
        self.moe = moe
        self.weight = Parameter(ms.Tensor(np.zeros((hidden, moe.num_experts), np.float32)), name="weight")
        self.e_score_correction_bias = (Parameter(ms.Tensor(np.zeros(moe.num_experts, np.float32)),
                                                  name="e_score_correction_bias")
                                        if moe.scoring == "sigmoid" else None)

    def expected_shape(self, param: str, shard) -> tuple[int, ...]:
        return (self.moe.num_experts, self.weight.shape[0]) if param == "weight" else (self.moe.num_experts,)

    def assemble(self, param: str, parts: dict) -> np.ndarray:
        return np.ascontiguousarray(parts[None].T) if param == "weight" else parts[None]

    def construct(self, x):
        """-> weights [T, k] f32, expert ids [T, k] int32."""
        moe = self.moe
        if x.dtype != ms.float32:  # route in fp32, as HF does
            logits = mint.matmul(x.astype(ms.float32), self.weight.astype(ms.float32))  # [T, E]
        else:
            logits = mint.matmul(x, self.weight)
        if moe.scoring == "softmax":
            weights, ids = ops.topk(mint.softmax(logits, -1), moe.top_k)
        else:
            scores = mint.sigmoid(logits)
            choice = scores + self.e_score_correction_bias
            if moe.n_group > 1:
                grouped = choice.reshape(-1, moe.n_group, moe.num_experts // moe.n_group)
                group_scores = ops.topk(grouped, 2)[0].sum(-1)  # [T, G]
                best = ops.topk(group_scores, moe.topk_group)[1]  # [T, topk_group]
                keep = ops.one_hot(best, moe.n_group, ms.Tensor(1.0, ms.float32), ms.Tensor(0.0, ms.float32)).sum(1)
                keep = keep.unsqueeze(-1).broadcast_to(grouped.shape).reshape(choice.shape)  # [T, E]
                choice = choice * keep + (keep - 1) * 1e30  # ineligible groups can never be chosen
            ids = ops.topk(choice, moe.top_k)[1]
            weights = ops.gather_elements(scores, 1, ids)
        if moe.norm_topk_prob:
            weights = weights / (weights.sum(-1, keepdims=True) + (1e-20 if moe.scoring == "sigmoid" else 0.0))
        weights = weights * moe.routed_scaling_factor
        return (weights if x.dtype == ms.float32 else weights.astype(x.dtype)), ids.astype(ms.int32)


class SparseMoE(nn.Cell):
    def __init__(self, hidden: int, moe: MoEConfig, shared: nn.Cell | None = None):
        super().__init__()
        self.gate = Router(hidden, moe)
        self.experts = Experts(moe.num_experts, hidden, moe.intermediate_size)
        self.shared_experts = shared
        self.reduced = parallel.tp().size > 1  # each rank computed its share of the intermediate size

    def construct(self, x):
        weights, ids = self.gate(x)
        out = kernels.moe_swiglu(x, weights, ids, self.experts.gate_up_proj, self.experts.down_proj)
        if self.reduced:
            out = parallel.all_reduce(out)
        if self.shared_experts is not None:  # its down_proj already sums over ranks
            return out + self.shared_experts(x)
        return out
