"""Ascend attention backend: MindSpore's built-in Ascend ops over SGLang's NPU KV pools.

The only module that decides which Ascend op runs when:
- every step writes the new K/V rows with `ReshapeAndCache` into the page-major pool;
- a prefill where no request has cached keys attends with `FlashAttentionScore` (TND layout,
  this step's K/V only);
- everything else (decode, chunked-prefill continuation, radix-cache hits, mixed batches) uses
  `PagedAttention` over the block tables, with the lookahead mask when a request has several
  new tokens;
- MLA (DeepSeek) writes latent and rope parts into SGLang's split NPU MLA pool and attends with
  the `mla` op. Its documented contract covers one query token per request, so every new token
  is passed as its own "request" (its request's block table, its own context length): that is
  the causal rule, and it covers prefill and extend without an undocumented mask convention.

NOT exercised on an NPU here. On CPU the same backend runs with `reference.ReferenceOps`
(the executable spec of each op, constraint checks included) instead of the real ops, over
SGLang's real NPU pool classes: tests/test_ascend_backend.py.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import mindspore as ms
import torch

from mindspore_models import bridge
from mindspore_models.attention import conventions
from mindspore_models.attention.backend import EagerAttention
from mindspore_models.attention.plan import StepPlan
from mindspore_models.attention.pool import KVPool

CACHE_DTYPES = (torch.float16, torch.bfloat16)


def real_ops(head_num: int, kv_head_num: int, scale_value: float):
    from mindspore_models.attention.ascend_ops import AscendOps

    return AscendOps(head_num, kv_head_num, scale_value)


@dataclass(eq=False)
class AscendStep:
    slot_mapping: ms.Tensor  # [T] int32
    block_tables: ms.Tensor  # [B, M] int32
    context_lens: ms.Tensor  # [B] int32, keys per request after this step
    q_seq_lens: ms.Tensor  # [B] int32
    attn_mask: ms.Tensor | None  # [T, max context] lookahead mask (PagedAttention, multi-token requests)
    no_prefix: bool  # FlashAttention over this step's K/V
    cum_q_lens: list[int]  # TND cumulative lengths (no-prefix prefill: keys == queries)
    plan: StepPlan

    @property
    def num_tokens(self) -> int:
        return self.plan.num_tokens  # T, known on the host

    @functools.cached_property
    def per_token(self) -> tuple[ms.Tensor, ms.Tensor, ms.Tensor]:
        """MLA: (block tables [T, M], context lens [T], ones [T]): each token a one-token request."""
        plan = self.plan
        request = torch.repeat_interleave(torch.arange(plan.batch_size), plan.q_lens)  # [T]
        i32 = bridge.copy_int32_to_ms
        return i32(plan.block_tables[request]), i32(plan.positions + 1), i32(torch.ones(plan.num_tokens))


class AscendBackend:
    name = "ascend"
    # Runs PyNative: the step carries host-side values (the no-prefix choice, FlashAttention's
    # cumulative lengths) that a compiled graph would take as constants. Compiling it needs
    # those as tensor inputs and an NPU to check the result on: not done.
    compiles = False

    def __init__(self, pool: KVPool, ops: Callable = real_ops):
        """ops(head_num, kv_head_num, scale_value) -> an ops provider (AscendOps, or ReferenceOps in CPU tests)."""
        check_pool(pool)
        self.pool, self.make_ops = pool, ops
        self.caches = [(bridge.to_ms(pool.page_major(k)), bridge.to_ms(pool.page_major(v)) if v is not None else None)
                       for k, v in zip(pool.keys, pool.values)]
        self._ops: dict = {}

    def ops(self, heads: int, kv_heads: int, scale: float):
        key = (heads, kv_heads, scale)
        if key not in self._ops:  # one provider per attention shape, built once
            self._ops[key] = self.make_ops(heads, kv_heads, scale)
        return self._ops[key]

    def attention(self, spec):
        return EagerAttention(self, spec)

    def prepare(self, plan: StepPlan) -> AscendStep:
        i32 = bridge.copy_int32_to_ms
        no_prefix, multi = plan.no_prefix, int(plan.q_lens.max()) > 1
        mask = None
        if multi and not no_prefix and not self.pool.mla:
            mask = bridge.copy_to_ms(conventions.paged_lookahead_mask(plan.q_lens, plan.seq_lens, self.pool.dtype))
        return AscendStep(i32(plan.slots), i32(plan.block_tables),
                          i32(plan.seq_lens), i32(plan.q_lens), mask, no_prefix,
                          conventions.cumulative(plan.q_lens.tolist()), plan)

    def attend(self, spec, q, k, v, step: AscendStep):
        """q [T, Hq, D], k/v [T, Hkv, D] -> [T, Hq*D]."""
        ops = self.ops(spec.heads, spec.kv_heads, spec.scale)
        k_cache, v_cache = self.caches[spec.layer_id]
        t = step.num_tokens
        ops.reshape_and_cache(k.reshape(t, -1), v.reshape(t, -1), k_cache, v_cache, step.slot_mapping)
        if step.no_prefix:
            out = ops.flash_attention(q, k, v, step.cum_q_lens, step.cum_q_lens)
        else:
            out = ops.paged_attention(q, k_cache, v_cache, step.block_tables, step.context_lens,
                                      step.q_seq_lens, step.attn_mask)
        return out.reshape(t, -1)

    def attend_latent(self, spec, q, entry, step: AscendStep):
        """MLA: q [T, H, L+R] against the cached [latent | rope] entries -> [T, H*L]."""
        ops = self.ops(spec.heads, 1, spec.scale)
        latent_cache, rope_cache = self.caches[spec.layer_id]
        t, lora = step.num_tokens, spec.latent
        entry = entry.reshape(t, -1)
        ops.reshape_and_cache(entry[:, :lora], None, latent_cache, None, step.slot_mapping)
        ops.reshape_and_cache(entry[:, lora:], None, rope_cache, None, step.slot_mapping)
        tables, context_lens, ones = step.per_token
        out = ops.mla(q[..., :lora], q[..., lora:], latent_cache, rope_cache, tables, context_lens, ones)
        return out.reshape(t, -1)


def check_pool(pool: KVPool) -> None:
    """What the Ascend ops accept, checked when the pool is bound (not at the first request)."""
    if pool.dtype not in CACHE_DTYPES:
        raise ValueError(f"the Ascend attention ops need a float16 or bfloat16 KV pool, got {pool.dtype}: "
                         "serve with --dtype bfloat16 or float16")
    if pool.page_size % 16:
        raise ValueError(f"Ascend PagedAttention needs --page-size a multiple of 16, got {pool.page_size}")
    if pool.mla:
        if any(v is None for v in pool.values):
            raise ValueError("the Ascend MLA backend reads SGLang's NPU MLA pool (separate latent and rope buffers)")
        latent, rope = pool.keys[0].shape[-1], pool.values[0].shape[-1]
        if (latent, rope) != (512, 64):
            raise ValueError(f"MindSpore's Ascend mla op takes kv_lora_rank 512 and rope dim 64, got {latent} and {rope}")
        return
    head_dim = pool.keys[0].shape[-1]
    if head_dim > 256 or pool.page_size * head_dim > 16384:
        raise ValueError(f"Ascend PagedAttention needs head_dim <= 256 and page_size * head_dim <= 16384, got "
                         f"head_dim {head_dim}, page_size {pool.page_size}")
