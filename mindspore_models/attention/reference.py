"""Executable spec of the Ascend attention ops wrapped in `ascend_ops.AscendOps`.

These ops are NOT executed on an NPU here; only their contracts are checked. `ReferenceOps`
has the same methods and signatures as `AscendOps` and, for each call, (a) checks the
documented constraints (raising `ContractError` naming the violated one), (b) computes the
documented result in torch on the host (fp16/bf16 upcast to fp32 as the NPU accumulates in
fp32, cast back), writing caches IN PLACE through DLPack so writes land in SGLang's torch
pool, and (c) records the call so a test can replay it against the real MindSpore primitive.

Sources: the layouts, lengths and masks of the code that has run on Ascend
(`conventions.py` names each), MindSpore 2.10.0's C++ inference (gen_ops_prim.py, Mla infer) and
op docs for the remaining constraints.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from mindspore_models.attention import conventions

CACHE_DTYPES = (torch.float16, torch.bfloat16)
MLA_LATENT, MLA_ROPE, MLA_MAX_HEADS = 512, 64, 128


class ContractError(ValueError):
    """A call that violates a documented constraint of the Ascend op."""


def require(cond: bool, constraint: str, detail: str = "") -> None:
    if not cond:
        raise ContractError(f"{constraint}" + (f" ({detail})" if detail else ""))


# ---- recording -------------------------------------------------------------------------

@dataclass
class CallRecord:
    op: str  # provider method name
    provider: dict  # AscendOps constructor kwargs
    inputs: dict  # name -> None | ("tensor", shape, dtype, values|None) | ("ints", [..])


@dataclass
class Recorder:
    """Every call, valid or not, recorded before it is checked: integer tensors by value
    (block tables, lengths, slots), float tensors by shape and dtype only."""

    calls: list = field(default_factory=list)

    def record(self, op: str, provider: dict, **inputs) -> None:
        self.calls.append(CallRecord(op, dict(provider), {k: _describe(v) for k, v in inputs.items()}))


def _describe(x):
    if x is None:
        return None
    if isinstance(x, (list, tuple)):
        return ("ints", [int(v) for v in x])
    t = as_torch(x)
    small_ints = not t.is_floating_point() and t.numel() <= 4096
    values = t.tolist() if small_ints else None
    return ("tensor", tuple(t.shape), str(t.dtype).removeprefix("torch."), values)


# ---- tensor plumbing -------------------------------------------------------------------

def as_torch(x) -> torch.Tensor:
    """Zero-copy view of a MindSpore tensor (the torch tensor itself; anything else as it is)."""
    if x is None or isinstance(x, (torch.Tensor, list, tuple, int, float)):
        return x
    import mindspore as ms  # noqa: PLC0415 (only when MindSpore tensors are passed)

    return torch.utils.dlpack.from_dlpack(ms.utils.dlpack.to_dlpack(x))


def _like(result: torch.Tensor, template):
    """Return the result in the framework the caller used."""
    if isinstance(template, torch.Tensor):
        return result
    import mindspore as ms  # noqa: PLC0415

    return ms.utils.dlpack.from_dlpack(torch.utils.dlpack.to_dlpack(result.contiguous()))


# ---- shared constraint checks ----------------------------------------------------------

def _check_16bit(name: str, t: torch.Tensor) -> None:
    require(t.dtype in CACHE_DTYPES, f"{name} must be float16 or bfloat16", f"got {t.dtype}")


def _check_same_dtype(names: str, *ts) -> None:
    dtypes = {t.dtype for t in ts}
    require(len(dtypes) == 1, f"{names} must share one dtype", f"got {sorted(map(str, dtypes))}")


def _check_int32(name: str, t: torch.Tensor, ndim: int) -> None:
    require(t.dtype == torch.int32, f"{name} must be int32", f"got {t.dtype}")
    require(t.dim() == ndim, f"{name} must be {ndim}-D", f"got shape {tuple(t.shape)}")


def _check_cache(name: str, cache: torch.Tensor) -> None:
    _check_16bit(name, cache)
    require(cache.dim() == 4, f"{name} must be 4-D [blocks, block_size, heads, head_dim]",
            f"got shape {tuple(cache.shape)}")
    require(cache.is_contiguous(), f"{name} must be contiguous (ND layout)")
    require(cache.shape[1] % 16 == 0, "block_size % 16 == 0", f"block_size {cache.shape[1]}")


def _check_block_table(tables: torch.Tensor, context_lens: torch.Tensor, cache: torch.Tensor) -> None:
    blocks, block_size = cache.shape[0], cache.shape[1]
    _check_int32("block_tables", tables, 2)
    require(bool(((tables >= 0) & (tables < blocks)).all()), "block table entries must be in [0, blocks)",
            f"blocks {blocks}, entries {tables.min().item()}..{tables.max().item()}")
    need = (context_lens.max().item() + block_size - 1) // block_size
    require(tables.shape[1] >= need, "block_tables must cover ceil(context_len / block_size) pages",
            f"need {need}, have {tables.shape[1]}")


def _paged_kv(cache: torch.Tensor, pages: torch.Tensor, length: int) -> torch.Tensor:
    """fp32 `[length, Hkv, D]`: one request's tokens gathered from its pages."""
    return cache[pages.long()].flatten(0, 1)[:length].float()


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, visible: torch.Tensor, scale: float):
    """fp32 GQA attention. q `[S1, N1, D]`, k/v `[S2, N2, Dv]`, visible bool `[S1, S2]`."""
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)  # [S2, N1, *]
    scores = torch.einsum("qhd,khd->hqk", q, k) * scale  # [N1, S1, S2]
    scores = scores.masked_fill(~visible, float("-inf"))
    return torch.einsum("hqk,khd->qhd", scores.softmax(-1), v)  # [S1, N1, Dv]


def _lengths(t: torch.Tensor) -> list[int]:
    return [int(n) for n in t.tolist()]


# ---- the ops ---------------------------------------------------------------------------

class ReferenceOps:
    """Same interface as `ascend_ops.AscendOps`, computed on the host and recorded."""

    def __init__(self, head_num: int, kv_head_num: int, scale_value: float, recorder: Recorder | None = None):
        self.head_num, self.kv_head_num, self.scale_value = head_num, kv_head_num, scale_value
        self.recorder = recorder if recorder is not None else Recorder()
        self._config = dict(head_num=head_num, kv_head_num=kv_head_num, scale_value=scale_value)

    def _record(self, op: str, **inputs) -> None:
        self.recorder.record(op, self._config, **inputs)

    # ReshapeAndCache ------------------------------------------------------------------

    def reshape_and_cache(self, key, value, key_cache, value_cache, slot_mapping):
        self._record("reshape_and_cache", key=key, value=value, key_cache=key_cache,
                     value_cache=value_cache, slot_mapping=slot_mapping)
        k, kc, slots = as_torch(key), as_torch(key_cache), as_torch(slot_mapping)
        require((value is None) == (value_cache is None), "value and value_cache are given together")
        _check_slots(slots, k, kc)
        _write_cache(k, kc, slots, "key")
        if value is not None:
            v, vc = as_torch(value), as_torch(value_cache)
            require(v.shape[0] == k.shape[0], "key and value have the same number of tokens")
            _write_cache(v, vc, slots, "value")
        return key_cache  # as the primitive: its output orders later reads after the write

    # PagedAttention -------------------------------------------------------------------

    def paged_attention(self, query, key_cache, value_cache, block_tables, context_lens,
                        q_seq_lens=None, attn_mask=None):
        self._record("paged_attention", query=query, key_cache=key_cache, value_cache=value_cache,
                     block_tables=block_tables, context_lens=context_lens,
                     q_seq_lens=q_seq_lens, attn_mask=attn_mask)
        q, kc, vc = as_torch(query), as_torch(key_cache), as_torch(value_cache)
        tables, ctx = as_torch(block_tables), as_torch(context_lens)
        q = self._check_paged(q, kc, vc, tables, ctx)  # [T, H, D]
        q_lens = self._query_lengths(q, ctx, as_torch(q_seq_lens))
        _check_paged_mask(as_torch(attn_mask), q_lens, _lengths(ctx), q.dtype)
        outs, row = [], 0
        for b, (n_q, n_kv) in enumerate(zip(q_lens, _lengths(ctx))):
            pages = tables[b, :math.ceil(n_kv / kc.shape[1])]
            k, v = _paged_kv(kc, pages, n_kv), _paged_kv(vc, pages, n_kv)  # [n_kv, Hkv, D]
            visible = conventions.causal_visible(n_q, n_kv)
            outs.append(_attend(q[row:row + n_q].float(), k, v, visible, self.scale_value))
            row += n_q
        return _like(torch.cat(outs).to(q.dtype).flatten(1), query)  # [T, H*D]

    def _check_paged(self, q, kc, vc, tables, ctx) -> torch.Tensor:
        _check_cache("key_cache", kc)
        _check_cache("value_cache", vc)
        _check_16bit("query", q)
        _check_same_dtype("query, key_cache and value_cache", q, kc, vc)
        require(kc.shape == vc.shape, "key_cache and value_cache have the same shape")
        block_size, head_size = kc.shape[1], kc.shape[3]
        require(q.dim() == 2 and q.shape[1] == self.head_num * head_size,
                "query must be 2-D [tokens, head_num*head_dim] (TH, as SGLMS passes it)", f"got {tuple(q.shape)}")
        self._check_heads(self.head_num, kc.shape[2])
        require(head_size <= 256, "head_size <= 256", f"got {head_size}")
        require(block_size * head_size <= 16384, "block_size * head_size <= 16384",
                f"{block_size} * {head_size}")
        _check_int32("context_lens", ctx, 1)
        require(bool((ctx >= 1).all()), "context_lens must be >= 1 (per request, incl. new tokens)")
        _check_block_table(tables, ctx, kc)
        require(tables.shape[0] == ctx.shape[0], "block_tables has one row per request (len(context_lens))")
        return q.view(q.shape[0], self.head_num, head_size)

    def _check_heads(self, heads: int, kv_heads: int) -> None:
        require(heads == self.head_num, "query heads == head_num", f"{heads} vs {self.head_num}")
        require(kv_heads == self.kv_head_num, "cache heads == kv_head_num", f"{kv_heads} vs {self.kv_head_num}")
        require(self.head_num % self.kv_head_num == 0, "kv_head_num divides head_num",
                f"{self.head_num} % {self.kv_head_num}")

    @staticmethod
    def _query_lengths(q, ctx, q_seq_lens) -> list[int]:
        if q_seq_lens is None:
            require(q.shape[0] == ctx.shape[0], "without q_seq_lens each request has one query token",
                    f"{q.shape[0]} tokens, {ctx.shape[0]} requests")
            return [1] * q.shape[0]
        _check_int32("q_seq_lens", q_seq_lens, 1)
        q_lens = _lengths(q_seq_lens)
        require(len(q_lens) == ctx.shape[0], "q_seq_lens has one entry per request")
        require(sum(q_lens) == q.shape[0], "q_seq_lens are per-request counts summing to the query tokens",
                f"sum {sum(q_lens)} vs {q.shape[0]} tokens; cumulative lengths given?")
        require(all(1 <= n <= c for n, c in zip(q_lens, _lengths(ctx))), "1 <= q_seq_len <= context_len")
        return q_lens

    # FlashAttentionScore (TH, per-request lengths, GLUE's 128x128 mask) -------------------

    def flash_attention(self, query, key, value, attn_mask, actual_seq_qlen, actual_seq_kvlen):
        self._record("flash_attention", query=query, key=key, value=value, attn_mask=attn_mask,
                     actual_seq_qlen=actual_seq_qlen, actual_seq_kvlen=actual_seq_kvlen)
        q, k, v = (as_torch(x) for x in (query, key, value))
        q, k, v = _check_flash_tensors(q, k, v, self.head_num, self.kv_head_num)
        _check_prefill_mask(as_torch(attn_mask), q.dtype)
        q_lens = _check_lengths("actual_seq_qlen", as_torch(actual_seq_qlen), q.shape[0])
        kv_lens = _check_lengths("actual_seq_kvlen", as_torch(actual_seq_kvlen), k.shape[0])
        require(len(q_lens) == len(kv_lens), "actual_seq_qlen and actual_seq_kvlen have one entry per request")
        outs, q0, kv0 = [], 0, 0
        for n_q, n_kv in zip(q_lens, kv_lens):
            require(n_q == n_kv, "prefill without prefix: each request's keys are its queries (S1 == S2)",
                    f"{n_q} vs {n_kv}")
            visible = conventions.causal_visible(n_q, n_kv)
            outs.append(_attend(q[q0:q0 + n_q].float(), k[kv0:kv0 + n_kv].float(), v[kv0:kv0 + n_kv].float(),
                                visible, self.scale_value))
            q0, kv0 = q0 + n_q, kv0 + n_kv
        return _like(torch.cat(outs).to(q.dtype).flatten(1), query)  # [T1, N1*D]

    # MLA over split latent / rope caches ------------------------------------------------

    def mla(self, query, q_rope, kv_cache, k_rope, block_tables, context_lens, q_seq_lens):
        self._record("mla", query=query, q_rope=q_rope, kv_cache=kv_cache, k_rope=k_rope,
                     block_tables=block_tables, context_lens=context_lens, q_seq_lens=q_seq_lens)
        qn, qr, latent, rope = (as_torch(x) for x in (query, q_rope, kv_cache, k_rope))
        tables, ctx, q_lens = as_torch(block_tables), as_torch(context_lens), as_torch(q_seq_lens)
        self._check_mla(qn, qr, latent, rope, tables, ctx, q_lens)
        outs = []
        for b, n_kv in enumerate(_lengths(ctx)):
            pages = tables[b, :math.ceil(n_kv / latent.shape[1])]
            c, r = _paged_kv(latent, pages, n_kv), _paged_kv(rope, pages, n_kv)  # [n_kv, 1, *]
            outs.append(_mla_one(qn[b:b + 1].float(), qr[b:b + 1].float(), c, r, self.scale_value))
        return _like(torch.cat(outs).to(qr.dtype), query)  # [T, H, 512]

    def _check_mla(self, qn, qr, latent, rope, tables, ctx, q_lens) -> None:
        for name, t in (("query", qn), ("q_rope", qr), ("kv_cache", latent), ("k_rope", rope)):
            _check_16bit(name, t)
        _check_same_dtype("query, q_rope, kv_cache and k_rope", qn, qr, latent, rope)
        _check_mla_shapes(qn, qr, latent, rope)
        heads = qn.shape[1]
        require(self.kv_head_num == 1, "MLA kv_head_num must be 1", f"got {self.kv_head_num}")
        require(heads == self.head_num, "query heads == head_num", f"{heads} vs {self.head_num}")
        require(heads <= MLA_MAX_HEADS and heads % 16 == 0, "MLA head_num <= 128 and a multiple of 16",
                f"got {heads}")
        require(heads != MLA_MAX_HEADS or latent.shape[1] == 128, "MLA block_size 128 when head_num is 128")
        _check_int32("context_lens", ctx, 1)
        _check_int32("q_seq_lens", q_lens, 1)
        require(q_lens.shape == ctx.shape, "q_seq_lens and context_lens have one entry per request")
        require(bool((q_lens == 1).all()) and qn.shape[0] == ctx.shape[0],
                "MLA spec covers decode only (q_seq_lens all 1, one token per request)",
                "multi-token MLA needs a mask convention MindSpore 2.10 does not document")
        require(bool((ctx >= 1).all()), "context_lens must be >= 1")
        _check_block_table(tables, ctx, latent)
        require(tables.shape[0] == ctx.shape[0], "block_tables has one row per request")


def _check_slots(slots: torch.Tensor, key: torch.Tensor, key_cache: torch.Tensor) -> None:
    _check_int32("slot_mapping", slots, 1)
    require(key.dim() == 2, "key/value must be 2-D [tokens, heads*head_dim]", f"got {tuple(key.shape)}")
    require(slots.shape[0] == key.shape[0], "one slot per token", f"{slots.shape[0]} vs {key.shape[0]}")
    capacity = key_cache.shape[0] * key_cache.shape[1]
    require(bool(((slots >= 0) & (slots < capacity)).all()),
            "slot_mapping entries in [0, blocks*block_size) (slot = block*block_size + offset)")
    require(slots.unique().numel() == slots.numel(), "slot_mapping entries are distinct within a call")


def _write_cache(x: torch.Tensor, cache: torch.Tensor, slots: torch.Tensor, name: str) -> None:
    _check_cache(f"{name}_cache", cache)
    _check_16bit(name, x)
    _check_same_dtype(f"{name} and {name}_cache", x, cache)
    require(x.dim() == 2, f"{name} must be 2-D [tokens, heads*head_dim]")
    heads, dim = cache.shape[2], cache.shape[3]
    require(x.shape[1] == heads * dim, f"{name} width == cache heads*head_dim", f"{x.shape[1]} vs {heads}*{dim}")
    flat = cache.view(-1, heads, dim)  # [blocks*block_size, H, D], same storage
    flat[slots.long()] = x.view(-1, heads, dim)


def _check_flash_tensors(q, k, v, head_num: int, kv_head_num: int):
    """TH: q [T, N1*D], k/v [T, N2*D] -> the [T, N, D] views."""
    for name, t in (("query", q), ("key", k), ("value", v)):
        _check_16bit(name, t)
        require(t.dim() == 2, f"{name} must be 2-D [T, heads*head_dim] (TH)", f"got {tuple(t.shape)}")
    _check_same_dtype("query, key and value", q, k, v)
    require(k.shape == v.shape, "key and value have the same shape")
    require(head_num % kv_head_num == 0, "key heads (N2) divide query heads (N1)", f"{head_num} % {kv_head_num}")
    require(q.shape[1] % head_num == 0, "query width is head_num * head_dim", f"{q.shape[1]} / {head_num}")
    dim = q.shape[1] // head_num
    require(k.shape[1] == kv_head_num * dim, "key width is kv_head_num * head_dim",
            f"{k.shape[1]} vs {kv_head_num} * {dim}")
    require(dim % 16 == 0 and dim <= 512, "D % 16 == 0 and D <= 512", f"got {dim}")
    return q.view(-1, head_num, dim), k.view(-1, kv_head_num, dim), v.view(-1, kv_head_num, dim)


def _check_prefill_mask(mask, dtype) -> None:
    require(mask is not None, "attn_mask is GLUE's [128, 128] prefill mask")
    require(mask.dtype == dtype, "attn_mask dtype == query dtype", f"{mask.dtype} vs {dtype}")
    require(torch.equal(mask, conventions.prefill_mask(dtype)),
            "attn_mask is GLUE's [128, 128] prefill mask (upper triangle = PREFILL_MASK_VALUE[dtype])",
            f"got shape {tuple(mask.shape)}")


def _check_paged_mask(mask, q_lens: list[int], kv_lens: list[int], dtype) -> None:
    require(mask is not None, "attn_mask is given (GLUE passes one every step)")
    require(mask.dtype == dtype, "attn_mask dtype == query dtype", f"{mask.dtype} vs {dtype}")
    require(mask.dim() == 2, "attn_mask is 2-D", f"got {tuple(mask.shape)}")
    if max(q_lens) == 1:
        return  # decode: the op reads no mask (GLUE passes [1, 1] zeros)
    require(mask.shape[0] == sum(q_lens) and mask.shape[1] >= max(kv_lens),
            "attn_mask is [tokens, >= max(context_lens)]", f"got {tuple(mask.shape)}")
    masked = torch.tensor(conventions.DECODE_MASK_VALUE).to(dtype)
    row = 0
    for n_q, n_kv in zip(q_lens, kv_lens):
        rows = mask[row:row + n_q, :n_kv]
        want = torch.where(conventions.causal_visible(n_q, n_kv), torch.zeros((), dtype=dtype), masked)
        require(torch.equal(rows, want), "attn_mask: 0 up to each token's position, DECODE_MASK_VALUE after it "
                "(-10000 for every dtype, as GLUE)", f"request rows {row}..{row + n_q}")
        row += n_q


def _check_lengths(name: str, lengths, total: int) -> list[int]:
    require(isinstance(lengths, torch.Tensor), f"{name} must be a tensor (per-request lengths, as GLUE passes)")
    _check_int32(name, lengths, 1)
    values = _lengths(lengths)
    require(0 < len(values) and all(n >= 1 for n in values), f"{name}: per-request lengths >= 1", f"got {values}")
    require(sum(values) == total, f"{name} are per-request lengths summing to the token count (TH, not cumulative)",
            f"sum {sum(values)} vs {total} tokens")
    return values


def _check_mla_shapes(qn, qr, latent, rope) -> None:
    require(qn.dim() == 3 and qn.shape[2] == MLA_LATENT, "MLA query is [T, H, 512]", f"got {tuple(qn.shape)}")
    require(qr.shape == qn.shape[:2] + (MLA_ROPE,), "MLA q_rope is [T, H, 64]", f"got {tuple(qr.shape)}")
    _check_cache("kv_cache", latent)
    _check_cache("k_rope", rope)
    require(latent.shape[2:] == (1, MLA_LATENT), "MLA kv_cache is [blocks, block_size, 1, 512]",
            f"got {tuple(latent.shape)}")
    require(rope.shape == latent.shape[:2] + (1, MLA_ROPE), "MLA k_rope is [blocks, block_size, 1, 64]",
            f"got {tuple(rope.shape)}")


def _mla_one(qn, qr, latent, rope, scale: float) -> torch.Tensor:
    """One decode token. qn `[1, H, 512]`, qr `[1, H, 64]`, latent `[S, 1, 512]`, rope `[S, 1, 64]`."""
    scores = torch.einsum("qhd,kd->hqk", qn, latent[:, 0]) + torch.einsum("qhd,kd->hqk", qr, rope[:, 0])
    probs = (scores * scale).softmax(-1)  # [H, 1, S]
    return torch.einsum("hqk,kd->qhd", probs, latent[:, 0])  # [1, H, 512]
