"""Ascend attention backend: MindSpore's built-in Ascend ops over SGLang's NPU KV pools.

The only module that decides which Ascend op runs when, as upstream SGLang's glue decides it
(`sglang/srt/models/mindspore.py`, `_is_prefill`):
- every step writes the new K/V rows with `ReshapeAndCache` into the page-major pool;
- a prefill where no request has cached keys attends with `FlashAttentionScore` over this
  step's K/V (TH layout, per-request lengths, the glue's 128x128 mask);
- everything else (decode, chunked-prefill continuation, radix-cache hits, mixed batches) uses
  `PagedAttention` over the block tables with the glue's mask;
- MLA (DeepSeek) writes latent and rope parts into SGLang's split NPU MLA pool and attends with
  the `mla` op, every new token passed as its own "request" (its request's block table, its own
  context length). Unlike the anchors (PagedAttention with `mla_v_dim` over ONE [latent | rope]
  cache, which sgl-mindspore builds with a torch.cat outside SGLang's pool), this reads SGLang's
  split pool in place; its cost is that prefill re-reads each token's whole context. Unproven on
  hardware.

The step is a tuple: (is_prefill, slot_mapping, block_tables, context_lens, q_seq_lens,
attn_mask, key caches, value caches), every entry but the first a tensor or a list of tensors,
so the forward compiles (`compiles`): one graph per value of is_prefill, the caches `mutable`
graph inputs, as sgl-mindspore's models declare them.

NOT exercised on an NPU here. On CPU the same backend runs with `reference.ReferenceOps` (the
executable spec of each op) over SGLang's real NPU pool classes (tests/test_ascend_backend.py),
and its compiled forward is checked up to kernel selection (tests/test_ascend_graph.py).
"""
from __future__ import annotations

from typing import Callable

import mindspore as ms
import torch
from mindspore import mint, mutable, nn, ops

from mindspore_models import bridge
from mindspore_models.attention import conventions
from mindspore_models.attention.plan import StepPlan
from mindspore_models.attention.pool import KVPool

CACHE_DTYPES = (torch.float16, torch.bfloat16)


def real_ops(head_num: int, kv_head_num: int, scale_value: float):
    from mindspore_models.attention.ascend_ops import AscendOps

    return AscendOps(head_num, kv_head_num, scale_value)


class AscendAttention(nn.Cell):
    """One layer: (q [T, Hq, D], k/v [T, Hkv, D], step) -> [T, Hq*D]."""

    def __init__(self, ops, layer_id: int):
        super().__init__()
        self.ops, self.layer_id = ops, layer_id

    def construct(self, q, k, v, step):
        is_prefill, slots, tables, context_lens, q_lens, mask, k_caches, v_caches = step
        t = q.shape[0]
        q, k, v = q.reshape(t, -1), k.reshape(t, -1), v.reshape(t, -1)  # TH: [T, heads*D]
        k_cache, v_cache = k_caches[self.layer_id], v_caches[self.layer_id]
        written = self.ops.reshape_and_cache(k, v, k_cache, v_cache, slots)
        q = ops.depend(q, written)  # keeps the write in the graph (prefill reads no cache) and orders the paged read after it
        if is_prefill:
            return self.ops.flash_attention(q, k, v, mask, q_lens, context_lens)
        return self.ops.paged_attention(q, k_cache, v_cache, tables, context_lens, q_lens, mask)


class AscendLatentAttention(nn.Cell):
    """MLA: (q [T, H, L+R], entry [T, 1, L+R], step) -> [T, H*L]; step tables/lengths are per token."""

    def __init__(self, ops, layer_id: int, latent: int):
        super().__init__()
        self.ops, self.layer_id, self.latent = ops, layer_id, latent

    def construct(self, q, entry, step):
        _, slots, tables, context_lens, q_lens, _, latent_caches, rope_caches = step
        t = q.shape[0]
        latent, rope = mint.split(entry.reshape(t, -1), [self.latent, entry.shape[-1] - self.latent], -1)
        latent_cache, rope_cache = latent_caches[self.layer_id], rope_caches[self.layer_id]
        written = self.ops.reshape_and_cache(latent.contiguous(), None, latent_cache, None, slots)
        written_rope = self.ops.reshape_and_cache(rope.contiguous(), None, rope_cache, None, slots)
        q_latent, q_rope = mint.split(q, [self.latent, q.shape[-1] - self.latent], -1)
        q_latent = ops.depend(q_latent.contiguous(), (written, written_rope))
        out = self.ops.mla(q_latent, q_rope.contiguous(), latent_cache, rope_cache, tables, context_lens, q_lens)
        return out.reshape(t, -1)


class AscendBackend:
    jit_level = "O0"  # as SGLang's runner sets it (model_executor/mindspore_runner.py) and vllm-mindspore

    def __init__(self, pool: KVPool, ops: Callable = real_ops):
        """ops(head_num, kv_head_num, scale_value) -> an ops provider (AscendOps, or ReferenceOps in CPU tests)."""
        check_pool(pool)
        self.pool, self.make_ops = pool, ops
        # the primitives (an nn.Cell provider such as AscendOps) compile; the executable spec is host torch code
        self.compiles = ops is real_ops or (isinstance(ops, type) and issubclass(ops, nn.Cell))
        self.key_caches = mutable([bridge.to_ms(pool.page_major(k)) for k in pool.keys])
        self.value_caches = mutable([bridge.to_ms(pool.page_major(v)) for v in pool.values])
        self._ops: dict = {}

    def ops(self, heads: int, kv_heads: int, scale: float):
        key = (heads, kv_heads, scale)
        if key not in self._ops:  # one provider per attention shape, built once
            self._ops[key] = self.make_ops(heads, kv_heads, scale)
        return self._ops[key]

    def attention(self, spec) -> nn.Cell:
        if spec.latent is not None:
            return AscendLatentAttention(self.ops(spec.heads, 1, spec.scale), spec.layer_id, spec.latent)
        return AscendAttention(self.ops(spec.heads, spec.kv_heads, spec.scale), spec.layer_id)

    def prepare(self, plan: StepPlan, upstream: dict | None = None) -> tuple:
        """The step tuple. `upstream`: the inputs SGLang's glue prepared for this step; its
        attention mask is used as is (it equals `conventions`' mask: tests/test_ascend_glue_inputs.py)."""
        i32, dtype = bridge.copy_int32_to_ms, self.pool.dtype
        if self.pool.mla:
            request = torch.repeat_interleave(torch.arange(plan.batch_size), plan.q_lens)  # [T]
            return (False, i32(plan.slots), i32(plan.block_tables[request]), i32(plan.positions + 1),
                    i32(torch.ones(plan.num_tokens)), bridge.copy_to_ms(torch.zeros(1, 1, dtype=dtype)),
                    self.key_caches, self.value_caches)
        prefill = plan.no_prefix
        if upstream is not None and upstream.get("attention_mask") is not None:
            mask = upstream["attention_mask"]
        elif prefill:
            mask = bridge.copy_to_ms(conventions.prefill_mask(dtype))
        else:
            mask = bridge.copy_to_ms(conventions.paged_mask(plan.positions, plan.q_lens, plan.seq_lens, dtype))
        return (prefill, i32(plan.slots), i32(plan.block_tables), i32(plan.seq_lens), i32(plan.q_lens), mask,
                self.key_caches, self.value_caches)

    @staticmethod
    def split_step(step: tuple) -> tuple:
        """(the graph phase, the step's graph inputs): one compiled graph per is_prefill."""
        return step[0], step[1:]

    def step_signature(self, phase) -> tuple:
        """Dynamic-shape declarations of the step's graph inputs (sgl-mindspore models/qwen3.py's set_inputs)."""
        vec, table = ms.Tensor(shape=[None], dtype=ms.int32), ms.Tensor(shape=[None, None], dtype=ms.int32)
        dtype = bridge.ms_dtype(self.pool.dtype)
        caches = lambda bufs: mutable([ms.Tensor(shape=[None] * 3 + [b.shape[-1]], dtype=dtype) for b in bufs])  # noqa: E731
        return (vec, table, vec, vec, ms.Tensor(shape=[None, None], dtype=dtype),
                caches(self.pool.keys), caches(self.pool.values))


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
