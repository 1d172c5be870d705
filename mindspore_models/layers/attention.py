"""Paged attention over SGLang's KV pool, in MindSpore.

New K/V rows are written into the pool, then every query attends its own request's keys,
which the slot table locates in the pool. The custom kernel does this reading the pool in
place; the pure-MindSpore fallback gathers each request's keys into a padded [B, S] batch and
attends with one masked batched matmul (GQA groups share a KV head without repeating it).
"""
from __future__ import annotations

from mindspore import mint, nn, ops

from mindspore_models import kernels
from mindspore_models.runtime import context


class PagedAttention(nn.Cell):
    def __init__(self, num_heads: int, num_kv_heads: int, head_dim: int, layer_id: int):
        super().__init__()
        assert num_heads % num_kv_heads == 0, "query heads must be a multiple of KV heads"
        self.hq, self.hkv, self.d = num_heads, num_kv_heads, head_dim
        self.group = num_heads // num_kv_heads
        self.layer_id = layer_id
        self.scale = head_dim ** -0.5

    def construct(self, q, k, v):
        """q: [T, Hq, D], k/v: [T, Hkv, D] -> [T, Hq*D]."""
        ctx = context.get()
        k_buf, v_buf = ctx.kv[self.layer_id]
        k_done = kernels.kv_cache_write(k_buf, ctx.out_cache_loc, k, ctx.slot_runs)
        v_done = kernels.kv_cache_write(v_buf, ctx.out_cache_loc, v, ctx.slot_runs)
        if kernels.active("PagedAttention"):
            return kernels.paged_attention(q, k_buf, v_buf, ctx, self.scale, after=ops.depend(k_done, v_done))
        return self.attend_gathered(q, kernels.pool_view(k_buf, k_done), kernels.pool_view(v_buf, v_done), ctx)

    def attend_gathered(self, q, k_cache, v_cache, ctx):
        keys = ops.gather(k_cache, ctx.kv_slots, 0)  # [B, S, Hkv, D]
        values = ops.gather(v_cache, ctx.kv_slots, 0)
        return padded_attention(q, keys, values, ctx, self.group, self.scale)


def padded_attention(q, keys, values, ctx, group: int, scale: float):
    """q [T, Hkv*G, Dk] with each request's keys/values [B, S, Hkv, Dk|Dv] -> [T, Hkv*G*Dv].

    Queries are padded to [B, Lq]; the context's mask hides future and padding keys."""
    b, s, hkv, dk = keys.shape
    dv = values.shape[-1]
    lq = ctx.q_index.shape[1]
    queries = ops.gather(q, ctx.q_index, 0)  # [B, Lq, Hq, Dk]
    queries = queries.reshape(b, lq, hkv, group, dk).permute(0, 2, 3, 1, 4).reshape(b, hkv, group * lq, dk)
    scores = mint.matmul(queries, keys.permute(0, 2, 3, 1)) * scale  # [B, Hkv, G*Lq, S]
    scores = scores.reshape(b, hkv, group, lq, s) + ctx.mask
    probs = mint.softmax(scores, -1).reshape(b, hkv, group * lq, s)
    out = mint.matmul(probs, values.permute(0, 2, 1, 3))  # [B, Hkv, G*Lq, Dv]
    out = out.reshape(b, hkv, group, lq, dv).permute(0, 3, 1, 2, 4).reshape(b * lq, hkv * group * dv)
    return ops.gather(out, ctx.out_index, 0)  # [T, Hq*Dv]
