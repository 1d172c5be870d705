"""Thin wrappers over MindSpore 2.10's fused Ascend ops, called as sgl-mindspore (5ee7f2f) calls them.

NOT executed on an NPU here: on CPU these ops run MindSpore's shape/dtype inference and then fail
with `The kernel <Op> unregistered.` (PyNative), or stop at kernel selection inside a compiled
graph (tests/test_ascend_graph.py). Signatures: MindSpore 2.10.0 `ops/auto_generate`. A Cell, so
its methods run inside a compiled graph.

Anchors (SGLMS = sgl-mindspore 5ee7f2f):
- norms: SGLMS `layers/norm.py`: `rms_norm(x=, gamma=, epsilon=)[0]` and
  `add_rms_norm(x1=x, x2=residual, gamma=, epsilon=)` -> (y, rstd, x1 + x2); its models set
  `MS_DISABLE_INTERNAL_KERNELS_LIST=RmsNorm` (device.ASCEND_KERNEL_ENV).
- MoE (tensor parallel, no expert parallel): SGLMS `layers/moe/fused_moe.py` `run_tp_moe` and
  `_group_matmul`: MoeInitRoutingV2 (drop_pad_mode 0, active_num 0, expert_capacity 0, per-expert
  counts) -> GroupedMatmulV4 over the sorted rows (split_item 3, group_type 0, group_list_type 1,
  int64 counts) -> MoeTokenUnpermute weighted by the routing probabilities. Expert weights
  `[E, in, out]`, as SGLMS's w13 `[E, H, 2I]` / w2 `[E, I, H]`.
"""
from __future__ import annotations

from mindspore import nn
from mindspore.ops import auto_generate
from mindspore.ops.auto_generate import GroupedMatmulV4, MoeInitRoutingV2, MoeTokenUnpermute


class AscendFusedOps(nn.Cell):
    """The fused-op provider kernels.py calls on NPU; `reference.ReferenceFusedOps` has the same interface."""

    def __init__(self):
        super().__init__()
        self._init_routing = MoeInitRoutingV2()
        self._grouped_matmul = GroupedMatmulV4()
        self._unpermute = MoeTokenUnpermute()

    def rms_norm(self, x, gamma, epsilon: float):
        """x `[..., D]`, gamma `[D]` in x's dtype -> y (the op's second output, rstd, is unused)."""
        return auto_generate.rms_norm(x=x, gamma=gamma, epsilon=epsilon)[0]

    def add_rms_norm(self, x1, x2, gamma, epsilon: float):
        """-> (rms_norm(x1 + x2), x1 + x2): the pre-norm residual step in one op."""
        y, _, x_sum = auto_generate.add_rms_norm(x1=x1, x2=x2, gamma=gamma, epsilon=epsilon)
        return y, x_sum

    def moe_init_routing(self, x, expert_idx, expert_num: int):
        """x `[T, H]`, int32 expert ids `[T, k]` -> (rows of x sorted by expert `[T*k, H]`, int32
        `[T*k]` position of each (token, choice) among the sorted rows, int32 rows per expert `[E]`)."""
        sorted_x, row_idx, counts, _ = self._init_routing(
            x, expert_idx, active_num=0, expert_capacity=0, expert_num=expert_num, drop_pad_mode=0,
            expert_tokens_count_or_cumsum_flag=2, expert_tokens_before_capacity_flag=True)
        return sorted_x, row_idx, counts

    def grouped_matmul(self, x, weight, group_list):
        """x `[M, K]` split into consecutive groups of int64 `group_list` `[E]` rows, group e times
        weight[e] `[K, N]` -> `[M, N]`."""
        return self._grouped_matmul([x], [weight], None, None, None, None, None, None, group_list,
                                    split_item=3, group_type=0, group_list_type=1)[0]

    def moe_token_unpermute(self, permuted_tokens, sorted_indices, probs):
        """out[t] = sum_j probs[t, j] * permuted_tokens[sorted_indices[t*k + j]] -> `[T, H]`."""
        return self._unpermute(permuted_tokens=permuted_tokens, sorted_indices=sorted_indices, probs=probs,
                               padded_mode=False, restore_shape=None)
