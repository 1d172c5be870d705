"""Thin wrappers over MindSpore 2.10's built-in Ascend attention primitives.

NOT executed on an NPU here: on CPU these primitives run MindSpore's shape/dtype inference
and then fail with `RuntimeError: The kernel <Op> unregistered.`. Only their contracts are
checked (tests/test_ascend_contracts.py replays every call the reference spec records).
Signatures come from `mindspore/ops/auto_generate/gen_ops_prim.py` of MindSpore 2.10.0.

All tensors are MindSpore tensors; the KV caches are DLPack views of SGLang's torch pool,
page-major `[blocks, block_size, kv_heads, head_dim]` (MLA: latent `[blocks, block_size, 1,
512]` and rope `[blocks, block_size, 1, 64]`). See `conventions.py` for layouts and masks.
"""
from __future__ import annotations

import mindspore as ms
from mindspore.ops.auto_generate import FlashAttentionScore, Mla, PagedAttention, ReshapeAndCache

from mindspore_models.attention import conventions

NO_LIMIT = 2147483647


class AscendOps:
    """The ops provider a backend calls; `reference.ReferenceOps` has the same interface."""

    def __init__(self, head_num: int, kv_head_num: int, scale_value: float):
        self.head_num, self.kv_head_num, self.scale_value = head_num, kv_head_num, scale_value
        self._cache_write = ReshapeAndCache()
        self._paged = PagedAttention(head_num, scale_value, kv_head_num, "DEFAULT", "MASK_DEFAULT", 0)
        self._flash = FlashAttentionScore(head_num, 1.0, scale_value, NO_LIMIT, 0, 0,
                                          conventions.FA_LAYOUT, conventions.FA_SPARSE_MODE)
        self._mla = Mla()
        mask = conventions.fa_compressed_mask().numpy()
        self._fa_mask = ms.Tensor(mask)  # uint8 [2048, 2048], made once

    def reshape_and_cache(self, key, value, key_cache, value_cache, slot_mapping) -> None:
        """Write key/value `[T, H*D]` into the caches in place at int32 `slot_mapping` [T].

        `value`/`value_cache` may both be None (one cache, e.g. MLA latent or rope)."""
        self._cache_write(key, value, key_cache, value_cache, slot_mapping)

    def paged_attention(self, query, key_cache, value_cache, block_tables, context_lens,
                        q_seq_lens=None, attn_mask=None):
        """query `[T, H, D]` -> `[T, H, D]`; block_tables int32 `[B, M]`, lengths int32 `[B]`."""
        return self._paged(query, key_cache, value_cache, block_tables, context_lens,
                           None, None, attn_mask, q_seq_lens, None)

    def flash_attention(self, query, key, value, actual_seq_qlen, actual_seq_kvlen):
        """TND prefill without cached prefix: query `[T1, N1, D]` -> `[T1, N1, D]`.

        `actual_seq_qlen`/`actual_seq_kvlen`: cumulative host lists of int."""
        out = self._flash(query, key, value, None, None, None, self._fa_mask, None,
                          tuple(actual_seq_qlen), tuple(actual_seq_kvlen))
        return out[3]  # (softmax_max, softmax_sum, softmax_out, attention_out)

    def mla(self, query, q_rope, kv_cache, k_rope, block_tables, context_lens, q_seq_lens):
        """MLA decode over split caches: query `[T, H, 512]`, q_rope `[T, H, 64]` -> `[T, H, 512]`."""
        out = self._mla(query, q_rope, kv_cache, k_rope, block_tables, None, None, None,
                        q_seq_lens, context_lens, self.head_num, self.scale_value,
                        self.kv_head_num, "MASK_NONE", 0)
        return out[0]  # (attention_out, lse)
