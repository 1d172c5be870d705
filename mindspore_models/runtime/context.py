"""The per-step forward context: attention metadata and the KV pool, reached by layers here.

Serving state never goes through model constructors; the runtime sets the context before a
forward and layers read it (one context object, as in nano-vllm / mini-sglang).
"""
from __future__ import annotations

import functools
from contextlib import contextmanager
from dataclasses import dataclass

import mindspore as ms
import torch

from mindspore_models import bridge

from mindspore_models.kernels import KVBuffer


MASKED = -1e30  # finite, so fully masked padding rows give no NaN


@dataclass
class ForwardContext:
    positions: ms.Tensor  # [T] int32, position of each new token
    out_cache_loc: ms.Tensor  # [T] int64, KV slot each new token writes
    slot_runs: list[tuple[int, int, int]]  # out_cache_loc as contiguous runs (fallback KV write)
    seq_lens: ms.Tensor  # [B] int32, keys per request after this step
    q_starts: ms.Tensor  # [B] int32, first flat token of each request
    q_lens: ms.Tensor  # [B] int32, new tokens per request
    kv_slots: ms.Tensor  # [B, S] int32, KV slot of key j of request b (padding -> slot 0)
    q_index: ms.Tensor  # [B, Lq] int32, flat token index of query i of request b (padding -> 0)
    out_index: ms.Tensor  # [T] int32, row of each flat token in the padded [B*Lq] layout
    mask_inputs: tuple  # (q_pos [B, Lq] torch, S, dtype): the mask is built only if a layer asks for it
    logits_index: ms.Tensor  # [N] int32, tokens whose logits are returned
    kv: list[tuple[KVBuffer, KVBuffer]]  # per layer (K, V)
    num_tokens: int  # T, known on the host: reading a MindSpore tensor's shape costs a sync
    num_logits: int  # N

    @functools.cached_property
    def mask(self) -> ms.Tensor:
        """[B, 1, 1, Lq, S] additive causal + length mask, for the gathered (padded) attention paths.
        O(B*Lq*S): never built when the PagedAttention kernel does the attention."""
        q_pos, s, dtype = self.mask_inputs
        allowed = torch.arange(s)[None, None, :] <= q_pos[:, :, None]  # [B, Lq, S]
        mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, MASKED)
        return bridge.copy_to_ms(mask[:, None, None])


def rows_hint(logits: bool = False) -> int | None:
    """Rows of the activations in the current forward (None outside one)."""
    if _current is None:
        return None
    return _current.num_logits if logits else _current.num_tokens


_current: ForwardContext | None = None


def get() -> ForwardContext:
    if _current is None:
        raise RuntimeError("no forward context: MindSpore layers run only inside runtime.forward_context()")
    return _current


@contextmanager
def forward_context(ctx: ForwardContext):
    global _current
    prev, _current = _current, ctx
    try:
        yield ctx
    finally:
        _current = prev
