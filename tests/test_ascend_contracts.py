"""Contract tests of the Ascend attention op layer (no NPU here: nothing runs on Ascend).

1. The reference spec (`attention/reference.py`) matches a plain numpy computation.
2. Each documented constraint, violated once, is rejected with a message naming it.
3. Every call the reference records is replayed against the real MindSpore 2.10 primitive
   (through `attention/ascend_ops.py`) on CPU: MindSpore runs its own shape/dtype inference
   and must then stop at exactly `The kernel <Op> unregistered.`.
4. The primitives' constructor and call signatures are pinned.
"""
import inspect

import mindspore as ms
import numpy as np
import pytest
import torch

from mindspore_models import bridge, device

device.init("cpu")  # PyNative + launch_blocking: an op's error is raised by that op's call

from mindspore.ops.auto_generate import FlashAttentionScore, Mla, PagedAttention, ReshapeAndCache  # noqa: E402

from mindspore_models.attention import conventions  # noqa: E402
from mindspore_models.attention.ascend_ops import AscendOps  # noqa: E402
from mindspore_models.attention.reference import ContractError, Recorder, ReferenceOps  # noqa: E402

H, HKV, D = 6, 2, 32  # GQA: 3 query heads per KV head
SCALE = D ** -0.5
MLA_H, LATENT, ROPE = 16, 512, 64
PRIM = {"reshape_and_cache": "ReshapeAndCache", "paged_attention": "PagedAttention",
        "flash_attention": "FlashAttentionScore", "mla": "Mla"}
TOL = {torch.float16: 3e-3, torch.bfloat16: 2.5e-2}


def rand(*shape, dtype=torch.float16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g).to(dtype)


def i32(values):
    return torch.tensor(values, dtype=torch.int32)


# ---- an independent computation: token-major K/V, explicit loops, float64 numpy -----------

def naive_attention(q, k, v, scale, n_kv):
    """q `[Sq, H, D]` (the last Sq of n_kv tokens), k/v `[n_kv, Hkv, Dv]` -> `[Sq, H, Dv]`."""
    q, k, v = (np.asarray(x.double()) for x in (q, k, v))
    group = q.shape[1] // k.shape[1]
    out = np.zeros(q.shape[:2] + (v.shape[2],))
    for i in range(q.shape[0]):
        seen = n_kv - q.shape[0] + i + 1
        for h in range(q.shape[1]):
            s = k[:seen, h // group] @ q[i, h] * scale
            p = np.exp(s - s.max())
            out[i, h] = (p / p.sum()) @ v[:seen, h // group]
    return out


def close(actual, expected, dtype):
    actual = np.asarray(bridge.to_torch(actual).double()) if isinstance(actual, ms.Tensor) else actual
    np.testing.assert_allclose(actual, expected, atol=TOL[dtype], rtol=TOL[dtype])


# ---- a paged pool like SGLang's NPU pool, written through the op under test --------------

class Pool:
    """Torch KV pool `[blocks, page, heads, dim]`; requests get shuffled, non-contiguous pages."""

    def __init__(self, blocks, page, heads, dim, dtype, seed=0):
        self.k = torch.zeros(blocks, page, heads, dim, dtype=dtype)
        self.v = torch.zeros_like(self.k)
        self.page, self.free = page, torch.randperm(blocks, generator=torch.Generator().manual_seed(seed)).tolist()

    def pages_for(self, n_tokens):
        return [self.free.pop() for _ in range(-(-n_tokens // self.page))]

    def slots(self, pages, start, stop):
        return [pages[t // self.page] * self.page + t % self.page for t in range(start, stop)]

    def table(self, page_lists):
        width = max(len(p) for p in page_lists)
        return i32([p + [p[0]] * (width - len(p)) for p in page_lists])  # pad with a valid page


def write(ops, pool, k, v, slots):
    """Write token-major k/v `[T, Hkv, D]` through the op, with caches as DLPack views."""
    ops.reshape_and_cache(bridge.to_ms(k.flatten(1)), bridge.to_ms(v.flatten(1)),
                          bridge.to_ms(pool.k), bridge.to_ms(pool.v), bridge.to_ms(i32(slots)))


# ---- scenarios: each runs valid calls on an ops provider and checks them numerically ----

def scenario_cache_write(ops, page, dtype):
    pool = Pool(5, page, HKV, D, dtype)
    pages = pool.pages_for(2 * page + 3)  # one request spanning three pages
    k, v = rand(2 * page + 3, HKV, D, dtype=dtype), rand(2 * page + 3, HKV, D, dtype=dtype, seed=1)
    write(ops, pool, k[:page + 1], v[:page + 1], pool.slots(pages, 0, page + 1))
    write(ops, pool, k[page + 1:], v[page + 1:], pool.slots(pages, page + 1, 2 * page + 3))
    flat_k, flat_v = pool.k.flatten(0, 1), pool.v.flatten(0, 1)  # seen through the torch pool
    slots = torch.tensor(pool.slots(pages, 0, 2 * page + 3))
    assert torch.equal(flat_k[slots], k) and torch.equal(flat_v[slots], v)
    untouched = torch.ones(flat_k.shape[0], dtype=torch.bool)
    untouched[slots] = False
    assert not flat_k[untouched].any() and not flat_v[untouched].any()


def scenario_paged(ops, page, dtype, q_lens, kv_lens, pass_q_lens=True):
    pool, tables, queries, expected = Pool(12, page, HKV, D, dtype), [], [], []
    for b, (n_q, n_kv) in enumerate(zip(q_lens, kv_lens)):
        k, v = rand(n_kv, HKV, D, dtype=dtype, seed=10 + b), rand(n_kv, HKV, D, dtype=dtype, seed=20 + b)
        tables.append(pool.pages_for(n_kv))
        write(ops, pool, k, v, pool.slots(tables[-1], 0, n_kv))
        queries.append(rand(n_q, H, D, dtype=dtype, seed=30 + b))
        expected.append(naive_attention(queries[-1], k, v, SCALE, n_kv))
    mask = None if max(q_lens) == 1 else conventions.paged_lookahead_mask(q_lens, kv_lens, dtype)
    out = ops.paged_attention(bridge.to_ms(torch.cat(queries)), bridge.to_ms(pool.k), bridge.to_ms(pool.v),
                              bridge.to_ms(pool.table(tables)), bridge.to_ms(i32(kv_lens)),
                              bridge.to_ms(i32(q_lens)) if pass_q_lens else None, bridge.to_ms(mask))
    close(out, np.concatenate(expected), dtype)


def scenario_flash(ops, dtype, lens):
    q, k, v = rand(sum(lens), H, D, dtype=dtype), rand(sum(lens), HKV, D, dtype=dtype, seed=1), \
        rand(sum(lens), HKV, D, dtype=dtype, seed=2)
    ends = conventions.cumulative(lens)
    out = ops.flash_attention(bridge.to_ms(q), bridge.to_ms(k), bridge.to_ms(v), ends, ends)
    starts = [0] + ends[:-1]
    expected = [naive_attention(q[a:b], k[a:b], v[a:b], SCALE, b - a) for a, b in zip(starts, ends)]
    close(out, np.concatenate(expected), dtype)


def scenario_mla(ops, page, dtype, kv_lens):
    pool = Pool(8, page, 1, LATENT, dtype)
    rope_cache = torch.zeros(8, page, 1, ROPE, dtype=dtype)
    tables, expected, queries = [], [], []
    for b, n_kv in enumerate(kv_lens):
        c, r = rand(n_kv, LATENT, dtype=dtype, seed=b), rand(n_kv, ROPE, dtype=dtype, seed=40 + b)
        tables.append(pool.pages_for(n_kv))
        slots = bridge.to_ms(i32(pool.slots(tables[-1], 0, n_kv)))
        ops.reshape_and_cache(bridge.to_ms(c), None, bridge.to_ms(pool.k), None, slots)  # latent only
        ops.reshape_and_cache(bridge.to_ms(r), None, bridge.to_ms(rope_cache), None, slots)  # rope only
        qn, qr = rand(1, MLA_H, LATENT, dtype=dtype, seed=50 + b), rand(1, MLA_H, ROPE, dtype=dtype, seed=60 + b)
        queries.append((qn, qr))
        keys = torch.cat([c, r], -1).unsqueeze(1)  # [n_kv, 1, 576]: MLA = MQA over [latent|rope]
        expected.append(naive_attention(torch.cat([qn, qr], -1), keys, c.unsqueeze(1), SCALE, n_kv))
    qn, qr = (torch.cat([q[i] for q in queries]) for i in (0, 1))
    out = ops.mla(bridge.to_ms(qn), bridge.to_ms(qr), bridge.to_ms(pool.k), bridge.to_ms(rope_cache),
                  bridge.to_ms(pool.table(tables)), bridge.to_ms(i32(kv_lens)), bridge.to_ms(i32([1] * len(kv_lens))))
    close(out, np.concatenate(expected), dtype)


SCENARIOS = {
    "cache_write_page16_fp16": (dict(), lambda o: scenario_cache_write(o, 16, torch.float16)),
    "cache_write_page128_bf16": (dict(), lambda o: scenario_cache_write(o, 128, torch.bfloat16)),
    "decode_page16_fp16": (dict(), lambda o: scenario_paged(o, 16, torch.float16, [1, 1, 1], [1, 17, 40], False)),
    "mixed_prefix_chunk_page16_fp16": (dict(), lambda o: scenario_paged(o, 16, torch.float16, [1, 5, 3, 7],
                                                                        [9, 21, 3, 35])),
    "chunked_page128_bf16": (dict(), lambda o: scenario_paged(o, 128, torch.bfloat16, [4, 1], [133, 5])),
    "flash_fp16": (dict(), lambda o: scenario_flash(o, torch.float16, [5, 1, 12])),
    "flash_bf16": (dict(), lambda o: scenario_flash(o, torch.bfloat16, [3, 17])),
    "mla_page16_fp16": (dict(head_num=MLA_H, kv_head_num=1), lambda o: scenario_mla(o, 16, torch.float16, [1, 20, 45])),
    "mla_page128_bf16": (dict(head_num=MLA_H, kv_head_num=1), lambda o: scenario_mla(o, 128, torch.bfloat16, [130, 7])),
}


def provider_kwargs(overrides):
    return dict(dict(head_num=H, kv_head_num=HKV, scale_value=SCALE), **overrides)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_reference_matches_independent_computation(name):
    overrides, run = SCENARIOS[name]
    run(ReferenceOps(**provider_kwargs(overrides)))
