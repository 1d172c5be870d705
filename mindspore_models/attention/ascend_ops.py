"""Thin wrappers over MindSpore 2.10's built-in Ascend attention primitives.

NOT executed on an NPU here: on CPU these primitives run MindSpore's shape/dtype inference
and then fail with `RuntimeError: The kernel <Op> unregistered.` (PyNative), or stop at kernel
selection inside a compiled graph. Only their contracts are checked (tests/test_ascend_contracts.py
replays every call the reference spec records; tests/test_ascend_graph.py compiles whole models).
Signatures come from `mindspore/ops/auto_generate/gen_ops_prim.py` of MindSpore 2.10.0; the
attributes and input forms are the anchors' (`conventions.py` names them).

A Cell, so that its methods run inside a compiled graph. All tensors are MindSpore tensors; the
KV caches are DLPack views of SGLang's torch pool, page-major `[blocks, block_size, kv_heads,
head_dim]` (MLA: latent `[blocks, block_size, 1, 512]` and rope `[blocks, block_size, 1, 64]`).
"""
from __future__ import annotations

from mindspore import nn
from mindspore.ops.auto_generate import FlashAttentionScore, Mla, PagedAttention, ReshapeAndCache

from mindspore_models.attention import conventions


class AscendOps(nn.Cell):
    """The ops provider a backend calls; `reference.ReferenceOps` has the same interface."""

    def __init__(self, head_num: int, kv_head_num: int, scale_value: float):
        super().__init__()
        self.head_num, self.kv_head_num, self.scale_value = head_num, kv_head_num, scale_value
        self._cache_write = ReshapeAndCache()
        # SGLMS attention.py: head_num, scale_value, kv_head_num (mla_v_dim 0 for MHA); the rest default
        self._paged = PagedAttention(head_num, scale_value, kv_head_num)
        self._flash = FlashAttentionScore(head_num, scale_value=scale_value, next_tokens=conventions.FA_NEXT_TOKENS,
                                          input_layout=conventions.FA_LAYOUT, sparse_mode=conventions.FA_SPARSE_MODE)
        self._mla = Mla()

    def reshape_and_cache(self, key, value, key_cache, value_cache, slot_mapping):
        """Write key/value `[T, H*D]` into the caches in place at int32 `slot_mapping` [T].

        `value`/`value_cache` may both be None (one cache, e.g. MLA latent or rope). Returns the
        primitive's output, which a graph uses to order later reads of the caches after the write."""
        return self._cache_write(key, value, key_cache, value_cache, slot_mapping)

    def paged_attention(self, query, key_cache, value_cache, block_tables, context_lens,
                        q_seq_lens=None, attn_mask=None):
        """query `[T, H*D]` -> `[T, H*D]`; block_tables int32 `[B, M]`, lengths int32 `[B]`; attn_mask
        GLUE's (`conventions.paged_mask`)."""
        return self._paged(query, key_cache, value_cache, block_tables, context_lens,
                           None, None, attn_mask, q_seq_lens, None)

    def flash_attention(self, query, key, value, attn_mask, actual_seq_qlen, actual_seq_kvlen):
        """TH prefill without cached prefix: query `[T, N1*D]`, key/value `[T, N2*D]` -> `[T, N1*D]`;
        attn_mask GLUE's `[128, 128]` (`conventions.prefill_mask`); per-request int32 length tensors."""
        out = self._flash(query, key, value, None, None, None, attn_mask, None, actual_seq_qlen, actual_seq_kvlen)
        return out[3]  # (softmax_max, softmax_sum, softmax_out, attention_out)

    def mla(self, query, q_rope, kv_cache, k_rope, block_tables, context_lens, q_seq_lens):
        """MLA decode over split caches: query `[T, H, 512]`, q_rope `[T, H, 64]` -> `[T, H, 512]`."""
        out = self._mla(query, q_rope, kv_cache, k_rope, block_tables, None, None, None,
                        q_seq_lens, context_lens, self.head_num, self.scale_value,
                        self.kv_head_num, "MASK_NONE", 0)
        return out[0]  # (attention_out, lse)
