"""Executable spec of the fused Ascend ops in `ascend.AscendFusedOps` (NOT run on an NPU here).

Same methods and signatures; each call is recorded (for a replay against the real primitive),
checked against the op's constraints (`ContractError` naming the violated one) and computed in
torch on the host: 16-bit inputs upcast to fp32, the result cast back to the input dtype.
Sources: MindSpore 2.10.0's op docs and inference for the constraints, sgl-mindspore's calls
(`ascend.py` names them) for the forms.
"""
from __future__ import annotations

import torch

from mindspore_models.attention.reference import Recorder, _like, as_torch, require

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def _check_norm(x: torch.Tensor, gamma: torch.Tensor) -> None:
    require(x.dtype in FLOAT_DTYPES, "x must be float16, bfloat16 or float32", f"got {x.dtype}")
    require(gamma.dtype == x.dtype, "gamma must have x's dtype", f"x {x.dtype}, gamma {gamma.dtype}")
    require(gamma.dim() == 1 and gamma.shape[0] == x.shape[-1], "gamma must be [D], D = x's last dim",
            f"x {tuple(x.shape)}, gamma {tuple(gamma.shape)}")


def _norm(x: torch.Tensor, gamma: torch.Tensor, epsilon: float) -> torch.Tensor:
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + epsilon) * gamma.float()).to(x.dtype)


class ReferenceFusedOps:
    """Same interface as `ascend.AscendFusedOps`, computed on the host and recorded."""

    def __init__(self, recorder: Recorder | None = None):
        self.recorder = recorder if recorder is not None else Recorder()

    def _record(self, op: str, scalars: dict, **tensors) -> None:
        """The op's scalar arguments go where the attention spec keeps its constructor arguments."""
        self.recorder.record(op, scalars, **tensors)

    def rms_norm(self, x, gamma, epsilon: float):
        self._record("rms_norm", dict(epsilon=epsilon), x=x, gamma=gamma)
        t, g = as_torch(x), as_torch(gamma)
        _check_norm(t, g)
        return _like(_norm(t, g, epsilon), x)

    def add_rms_norm(self, x1, x2, gamma, epsilon: float):
        self._record("add_rms_norm", dict(epsilon=epsilon), x1=x1, x2=x2, gamma=gamma)
        a, b, g = as_torch(x1), as_torch(x2), as_torch(gamma)
        require(a.shape == b.shape and a.dtype == b.dtype, "x1 and x2 must share shape and dtype",
                f"x1 {a.dtype}{tuple(a.shape)}, x2 {b.dtype}{tuple(b.shape)}")
        _check_norm(a, g)
        total = (a.float() + b.float()).to(a.dtype)  # the sum is an output in x's dtype, normed as such
        return _like(_norm(total, g, epsilon), x1), _like(total, x1)

    def moe_init_routing(self, x, expert_idx, expert_num: int):
        self._record("moe_init_routing", dict(expert_num=expert_num), x=x, expert_idx=expert_idx)
        t, ids = as_torch(x), as_torch(expert_idx)
        require(t.dim() == 2, "x must be 2-D [tokens, hidden]", f"got {tuple(t.shape)}")
        require(ids.dtype == torch.int32, "expert_idx must be int32", f"got {ids.dtype}")
        require(ids.dim() == 2 and ids.shape[0] == t.shape[0], "expert_idx must be [tokens, k]",
                f"x {tuple(t.shape)}, expert_idx {tuple(ids.shape)}")
        require(bool(((ids >= 0) & (ids < expert_num)).all()), "expert ids must be in [0, expert_num)",
                f"expert_num {expert_num}, ids {ids.min().item()}..{ids.max().item()}")
        flat = ids.flatten().long()
        order = torch.sort(flat, stable=True).indices  # (token, choice) pairs, by expert, in order
        row_idx = torch.empty_like(order)
        row_idx[order] = torch.arange(order.numel())
        sorted_x = t[order // ids.shape[1]]
        counts = torch.bincount(flat, minlength=expert_num).to(torch.int32)
        return _like(sorted_x, x), _like(row_idx.to(torch.int32), x), _like(counts, x)

    def grouped_matmul(self, x, weight, group_list):
        self._record("grouped_matmul", {}, x=x, weight=weight, group_list=group_list)
        t, w, groups = as_torch(x), as_torch(weight), as_torch(group_list)
        require(t.dim() == 2 and w.dim() == 3, "x must be [M, K] and weight [E, K, N]",
                f"x {tuple(t.shape)}, weight {tuple(w.shape)}")
        require(t.dtype == w.dtype, "x and weight must share one dtype", f"x {t.dtype}, weight {w.dtype}")
        require(t.shape[1] == w.shape[1], "x's K must equal weight's K", f"x {tuple(t.shape)}, weight {tuple(w.shape)}")
        require(groups.dtype == torch.int64, "group_list must be int64 (group_list_type 1: counts)",
                f"got {groups.dtype}")
        require(groups.dim() == 1 and groups.shape[0] == w.shape[0], "group_list must be [E], one count per expert",
                f"group_list {tuple(groups.shape)}, weight {tuple(w.shape)}")
        require(bool((groups >= 0).all()) and int(groups.sum()) == t.shape[0], "group counts must sum to x's rows",
                f"sum {int(groups.sum())}, rows {t.shape[0]}")
        out = torch.empty(t.shape[0], w.shape[2], dtype=t.dtype)
        start = 0
        for e, n in enumerate(groups.tolist()):
            out[start:start + n] = (t[start:start + n].float() @ w[e].float()).to(t.dtype)
            start += n
        return _like(out, x)

    def moe_token_unpermute(self, permuted_tokens, sorted_indices, probs):
        self._record("moe_token_unpermute", {}, permuted_tokens=permuted_tokens, sorted_indices=sorted_indices,
                     probs=probs)
        t, idx, p = as_torch(permuted_tokens), as_torch(sorted_indices), as_torch(probs)
        require(idx.dtype == torch.int32, "sorted_indices must be int32", f"got {idx.dtype}")
        require(p.dim() == 2 and idx.shape == (p.numel(),) and t.shape[0] == p.numel(),
                "sorted_indices [T*k] and permuted_tokens' rows must match probs [T, k]",
                f"tokens {tuple(t.shape)}, indices {tuple(idx.shape)}, probs {tuple(p.shape)}")
        require(p.dtype == t.dtype, "probs must have permuted_tokens' dtype", f"probs {p.dtype}, tokens {t.dtype}")
        require(bool(((idx >= 0) & (idx < t.shape[0])).all()), "sorted_indices must be in [0, T*k)")
        gathered = t[idx.long()].float().reshape(p.shape[0], p.shape[1], -1)
        return _like((gathered * p.float().unsqueeze(-1)).sum(1).to(t.dtype), permuted_tokens)
