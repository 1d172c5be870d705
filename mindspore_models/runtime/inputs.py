"""Turn one step's batch (torch tensors, as SGLang holds them) into a ForwardContext.

All index and mask arithmetic runs in torch, where small ops cost ~2 us instead of MindSpore
PyNative's ~45 us, and the results cross to MindSpore once, zero-copy.
"""
from __future__ import annotations

import torch

from mindspore_models import bridge
from mindspore_models.kernels import KVBuffer, slot_runs
from mindspore_models.runtime.context import ForwardContext



def build_context(
    seq_lens: torch.Tensor,  # [B] keys per request after this step (prefix + new)
    q_lens: torch.Tensor,  # [B] new tokens per request
    token_table: torch.Tensor,  # [B, >=S] KV slot of every position of each request
    positions: torch.Tensor,  # [T]
    out_cache_loc: torch.Tensor,  # [T]
    kv: list[tuple[KVBuffer, KVBuffer]],
    all_logits: bool = False,
    mask_dtype: torch.dtype = torch.float32,
) -> ForwardContext:
    seq_lens, q_lens = seq_lens.to(torch.int64).cpu(), q_lens.to(torch.int64).cpu()
    b = seq_lens.numel()
    s, lq = int(seq_lens.max()), int(q_lens.max())
    starts = torch.cumsum(q_lens, 0) - q_lens  # [B] first flat token of each request
    i = torch.arange(lq)
    q_valid = i[None, :] < q_lens[:, None]  # [B, Lq]
    q_index = torch.where(q_valid, starts[:, None] + i[None, :], 0)
    out_index = (torch.arange(b)[:, None] * lq + i[None, :])[q_valid]  # [T], request-major like the batch
    q_pos = (seq_lens - q_lens)[:, None] + i[None, :]  # [B, Lq] absolute position of each query
    key_valid = torch.arange(s)[None, :] < seq_lens[:, None]
    kv_slots = torch.where(key_valid, token_table[:, :s].to(torch.int64).cpu(), 0)
    logits_index = torch.arange(int(q_lens.sum())) if all_logits else torch.cumsum(q_lens, 0) - 1
    return ForwardContext(
        positions=bridge.copy_to_ms(positions.to(torch.int32).cpu()),
        out_cache_loc=bridge.copy_to_ms(out_cache_loc.to(torch.int64).cpu()),
        slot_runs=slot_runs(out_cache_loc.cpu()),
        seq_lens=bridge.copy_to_ms(seq_lens.to(torch.int32)),
        q_starts=bridge.copy_to_ms(starts.to(torch.int32)),
        q_lens=bridge.copy_to_ms(q_lens.to(torch.int32)),
        kv_slots=bridge.copy_to_ms(kv_slots.to(torch.int32)),
        q_index=bridge.copy_to_ms(q_index.to(torch.int32)),
        out_index=bridge.copy_to_ms(out_index.to(torch.int32)),
        mask_inputs=(q_pos, s, mask_dtype),
        logits_index=bridge.copy_to_ms(logits_index.to(torch.int32)),
        kv=kv,
        num_tokens=int(q_lens.sum()),
        num_logits=logits_index.numel(),
    )
