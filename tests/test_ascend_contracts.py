"""Contract tests of the Ascend attention op layer (no NPU here: nothing runs on Ascend).

1. The reference spec (`attention/reference.py`) matches a plain numpy computation.
2. Each documented constraint, violated once, is rejected with a message naming it.
3. Every call the reference records is replayed against the real MindSpore 2.10 primitive
   (through `attention/ascend_ops.py`) on CPU: MindSpore runs its own shape/dtype inference
   and must then stop at exactly `The kernel <Op> unregistered.`.
4. The primitives' constructor and call signatures are pinned.
"""
import inspect
from functools import partial

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
F16, BF16, F32 = torch.float16, torch.bfloat16, torch.float32
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
    mask = conventions.paged_mask(positions_of(q_lens, kv_lens), q_lens, kv_lens, dtype)
    out = ops.paged_attention(bridge.to_ms(torch.cat(queries).flatten(1)), bridge.to_ms(pool.k), bridge.to_ms(pool.v),
                              bridge.to_ms(pool.table(tables)), bridge.to_ms(i32(kv_lens)),
                              bridge.to_ms(i32(q_lens)) if pass_q_lens else None, bridge.to_ms(mask))
    close(out, np.concatenate(expected).reshape(sum(q_lens), -1), dtype)


def positions_of(q_lens, kv_lens):
    """Each new token's position: the last q of kv per request."""
    return torch.cat([torch.arange(kv - q, kv) for q, kv in zip(q_lens, kv_lens)])


def scenario_flash(ops, dtype, lens):
    n = sum(lens)
    q, k, v = rand(n, H, D, dtype=dtype), rand(n, HKV, D, dtype=dtype, seed=1), rand(n, HKV, D, dtype=dtype, seed=2)
    out = ops.flash_attention(bridge.to_ms(q.flatten(1)), bridge.to_ms(k.flatten(1)), bridge.to_ms(v.flatten(1)),
                              bridge.copy_to_ms(conventions.prefill_mask(dtype)), bridge.to_ms(i32(lens)),
                              bridge.to_ms(i32(lens)))
    ends = np.cumsum(lens).tolist()
    starts = [0] + ends[:-1]
    expected = [naive_attention(q[a:b], k[a:b], v[a:b], SCALE, b - a) for a, b in zip(starts, ends)]
    close(out, np.concatenate(expected).reshape(n, -1), dtype)


def mla_request(ops, pool, rope_cache, b, n_kv):
    """Write one request's latent/rope through the op; return its pages, query and expected output."""
    dtype = pool.k.dtype
    c, r = rand(n_kv, LATENT, dtype=dtype, seed=b), rand(n_kv, ROPE, dtype=dtype, seed=40 + b)
    pages = pool.pages_for(n_kv)
    slots = bridge.to_ms(i32(pool.slots(pages, 0, n_kv)))
    ops.reshape_and_cache(bridge.to_ms(c), None, bridge.to_ms(pool.k), None, slots)  # latent cache only
    ops.reshape_and_cache(bridge.to_ms(r), None, bridge.to_ms(rope_cache), None, slots)  # rope cache only
    qn, qr = rand(1, MLA_H, LATENT, dtype=dtype, seed=50 + b), rand(1, MLA_H, ROPE, dtype=dtype, seed=60 + b)
    keys = torch.cat([c, r], -1).unsqueeze(1)  # [n_kv, 1, 576]: MLA is MQA over [latent | rope]
    return pages, qn, qr, naive_attention(torch.cat([qn, qr], -1), keys, c.unsqueeze(1), SCALE, n_kv)


def scenario_mla(ops, page, dtype, kv_lens):
    pool = Pool(8, page, 1, LATENT, dtype)  # .k is the latent cache [8, page, 1, 512]
    rope_cache = torch.zeros(8, page, 1, ROPE, dtype=dtype)
    tables, qn, qr, expected = zip(*[mla_request(ops, pool, rope_cache, b, n) for b, n in enumerate(kv_lens)])
    out = ops.mla(bridge.to_ms(torch.cat(qn)), bridge.to_ms(torch.cat(qr)), bridge.to_ms(pool.k),
                  bridge.to_ms(rope_cache), bridge.to_ms(pool.table(list(tables))), bridge.to_ms(i32(kv_lens)),
                  bridge.to_ms(i32([1] * len(kv_lens))))
    close(out, np.concatenate(expected), dtype)


MHA, MLA = dict(), dict(head_num=MLA_H, kv_head_num=1)  # provider overrides
SCENARIOS = {  # name -> (provider overrides, scenario on an ops provider)
    "cache_write_page16_fp16": (MHA, partial(scenario_cache_write, page=16, dtype=F16)),
    "cache_write_page128_bf16": (MHA, partial(scenario_cache_write, page=128, dtype=BF16)),
    "decode_page16_fp16": (MHA, partial(scenario_paged, page=16, dtype=F16, q_lens=[1, 1, 1], kv_lens=[1, 17, 40],
                                        pass_q_lens=False)),
    "mixed_prefix_chunk_page16_fp16": (MHA, partial(scenario_paged, page=16, dtype=F16, q_lens=[1, 5, 3, 7],
                                                    kv_lens=[9, 21, 3, 35])),
    "chunked_page128_bf16": (MHA, partial(scenario_paged, page=128, dtype=BF16, q_lens=[4, 1], kv_lens=[133, 5])),
    "flash_fp16": (MHA, partial(scenario_flash, dtype=F16, lens=[5, 1, 12])),
    "flash_bf16": (MHA, partial(scenario_flash, dtype=BF16, lens=[3, 17])),
    "mla_page16_fp16": (MLA, partial(scenario_mla, page=16, dtype=F16, kv_lens=[1, 20, 45])),
    "mla_page128_bf16": (MLA, partial(scenario_mla, page=128, dtype=BF16, kv_lens=[130, 7])),
}


def provider_kwargs(overrides):
    return dict(dict(head_num=H, kv_head_num=HKV, scale_value=SCALE), **overrides)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_reference_matches_independent_computation(name):
    overrides, run = SCENARIOS[name]
    run(ReferenceOps(**provider_kwargs(overrides)))


# ---- every recorded call replayed against the real MindSpore primitive ------------------

def ms_input(spec):
    """A MindSpore input rebuilt from a recorded spec: integers by value, floats as zeros."""
    if spec is None or spec[0] == "ints":
        return None if spec is None else list(spec[1])
    _, shape, dtype, values = spec
    if values is not None:
        return ms.Tensor(np.array(values, dtype=dtype).reshape(shape))
    return ms.Tensor(np.zeros(shape, np.float32)).astype(getattr(ms, dtype))


def to_ms_inputs(kwargs):
    return {k: bridge.to_ms(v) if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}


def outcome_of(call) -> str:
    """Run `call()` (real primitives), forcing and synchronizing every tensor it returns; its outcome."""
    try:
        out = call()
        for t in out if isinstance(out, tuple) else (out,):
            if isinstance(t, ms.Tensor):
                t.asnumpy()
        ms.runtime.synchronize()
        outcome = "no error"
    except Exception as e:  # noqa: BLE001 (the outcome is what is tested)
        outcome = f"{type(e).__name__}: {str(e).strip().splitlines()[0]}"
    canary = (ms.Tensor([1.0]) + ms.Tensor([2.0])).asnumpy()  # no error may bleed into the next op
    assert canary[0] == 3.0
    return outcome


def run_on_mindspore(op, provider, kwargs):
    """One call of the real attention primitive, on its own; returns its outcome."""
    return outcome_of(lambda: getattr(AscendOps(**provider), op)(**kwargs))


def unregistered(op):
    return f"RuntimeError: The kernel {PRIM[op]} unregistered."


def recorded_calls():
    recorder = Recorder()
    for overrides, run in SCENARIOS.values():
        run(ReferenceOps(**provider_kwargs(overrides), recorder=recorder))
    return recorder.calls


def test_every_recorded_call_passes_mindspore_inference():
    calls = recorded_calls()
    assert {c.op for c in calls} == set(PRIM), "every op is exercised"
    for call in calls:
        inputs = {name: ms_input(spec) for name, spec in call.inputs.items()}
        outcome = run_on_mindspore(call.op, call.provider, inputs)
        assert outcome == unregistered(call.op), (call.op, call.inputs.keys(), outcome)


# ---- documented constraints, each violated once ---------------------------------------


def base_call(op):
    """A valid call of `op`: (provider overrides, kwargs with torch tensors)."""
    if op == "reshape_and_cache":
        cache = torch.zeros(4, 16, HKV, D, dtype=F16)
        return {}, dict(key=rand(3, HKV * D), value=rand(3, HKV * D, seed=1), key_cache=cache,
                        value_cache=cache.clone(), slot_mapping=i32([0, 17, 33]))
    if op == "paged_attention":
        cache = rand(4, 16, HKV, D)
        return {}, dict(query=rand(4, H * D), key_cache=cache, value_cache=cache.clone(),
                        block_tables=i32([[0, 1], [2, 3]]), context_lens=i32([20, 3]), q_seq_lens=i32([3, 1]),
                        attn_mask=conventions.paged_mask(i32([17, 18, 19, 2]), [3, 1], [20, 3], F16))
    if op == "flash_attention":
        return {}, dict(query=rand(7, H * D), key=rand(7, HKV * D), value=rand(7, HKV * D, seed=1),
                        attn_mask=conventions.prefill_mask(F16), actual_seq_qlen=i32([3, 4]),
                        actual_seq_kvlen=i32([3, 4]))
    return dict(head_num=MLA_H, kv_head_num=1), dict(
        query=rand(2, MLA_H, LATENT), q_rope=rand(2, MLA_H, ROPE), kv_cache=rand(3, 16, 1, LATENT),
        k_rope=rand(3, 16, 1, ROPE), block_tables=i32([[0, 1], [2, 0]]), context_lens=i32([20, 5]),
        q_seq_lens=i32([1, 1]))


def cast(*names, dtype):
    return lambda p, k: k.update({n: k[n].to(dtype) for n in names})


def put(**values):
    return lambda p, k: k.update(values)


def provider(**values):
    return lambda p, k: p.update(values)


def reshape(name, *shape):
    return lambda p, k: k.update({name: k[name].reshape(*shape)})


def both(*mutations):
    return lambda p, k: [m(p, k) for m in mutations]


KV = ("key_cache", "value_cache")
# (op, what is broken, mutation, expected message, whether MindSpore's own inference rejects it)
VIOLATIONS = [
    ("reshape_and_cache", "3-D key", both(reshape("key", 3, HKV, D), reshape("value", 3, HKV, D)),
     "key/value must be 2-D", True),
    ("reshape_and_cache", "fp32 everywhere", cast("key", "value", *KV, dtype=F32),
     "key_cache must be float16 or bfloat16", True),
    ("reshape_and_cache", "fp32 cache", cast(*KV, dtype=F32), "key_cache must be float16 or bfloat16", True),
    ("reshape_and_cache", "fp32 key", cast("key", "value", dtype=F32), "key must be float16 or bfloat16", True),
    ("reshape_and_cache", "fp16 key into bf16 cache", cast(*KV, dtype=BF16),
     "key and key_cache must share one dtype", True),
    ("reshape_and_cache", "slot count", put(slot_mapping=i32([0, 17])), "one slot per token", True),
    ("reshape_and_cache", "int64 slots", put(slot_mapping=torch.tensor([0, 17, 33])),
     "slot_mapping must be int32", False),
    ("reshape_and_cache", "key width", put(key=rand(3, 2 * HKV * D)), "key width == cache heads*head_dim", False),
    ("reshape_and_cache", "slot out of range", put(slot_mapping=i32([0, 17, 64])),
     "slot_mapping entries in [0, blocks*block_size)", False),
    ("reshape_and_cache", "duplicate slots", put(slot_mapping=i32([0, 17, 17])), "distinct", False),
    ("reshape_and_cache", "block_size 8", put(key_cache=rand(8, 8, HKV, D), value_cache=rand(8, 8, HKV, D)),
     "block_size % 16 == 0", False),
    ("paged_attention", "fp32 caches", cast("query", *KV, dtype=F32), "key_cache must be float16 or bfloat16", True),
    ("paged_attention", "fp32 query", cast("query", dtype=F32), "query must be float16 or bfloat16", True),
    ("paged_attention", "bf16 query, fp16 cache", cast("query", "attn_mask", dtype=BF16),
     "query, key_cache and value_cache must share one dtype", True),
    ("paged_attention", "int64 block tables", put(block_tables=torch.tensor([[0, 1], [2, 3]])),
     "block_tables must be int32", False),
    ("paged_attention", "int64 context lens", put(context_lens=torch.tensor([20, 3])),
     "context_lens must be int32", False),
    ("paged_attention", "block entry == blocks", put(block_tables=i32([[0, 4], [2, 3]])),
     "block table entries must be in [0, blocks)", False),
    ("paged_attention", "negative block entry", put(block_tables=i32([[0, 1], [-1, 3]])),
     "block table entries must be in [0, blocks)", False),
    ("paged_attention", "table too narrow", put(block_tables=i32([[0], [2]])),
     "must cover ceil(context_len / block_size)", False),
    ("paged_attention", "block_size 8", put(key_cache=rand(8, 8, HKV, D), value_cache=rand(8, 8, HKV, D)),
     "block_size % 16 == 0", False),
    ("paged_attention", "head_size 272",
     put(query=rand(4, H * 272), key_cache=rand(4, 16, HKV, 272), value_cache=rand(4, 16, HKV, 272)),
     "head_size <= 256", False),
    ("paged_attention", "block 128 x head 256",
     put(query=rand(4, H * 256), key_cache=rand(4, 128, HKV, 256), value_cache=rand(4, 128, HKV, 256)),
     "block_size * head_size <= 16384", False),
    ("paged_attention", "kv heads do not divide",
     both(provider(kv_head_num=4), put(key_cache=rand(4, 16, 4, D), value_cache=rand(4, 16, 4, D))),
     "kv_head_num divides head_num", False),
    ("paged_attention", "head_num != query heads", provider(head_num=2 * H), "query must be 2-D [tokens, head_num",
     False),
    ("paged_attention", "cumulative q_seq_lens", put(q_seq_lens=i32([3, 4])), "per-request counts summing", False),
    ("paged_attention", "no mask", put(attn_mask=None), "attn_mask is given", False),
    ("paged_attention", "mask hides nothing", put(attn_mask=torch.zeros(4, 8192, dtype=F16)),
     "0 up to each token's position, DECODE_MASK_VALUE after it", False),
    ("paged_attention", "bf16 mask of 1.0 (FlashAttention's bf16 value)",
     both(cast("query", *KV, dtype=BF16), put(attn_mask=(conventions.paged_mask(
         i32([17, 18, 19, 2]), [3, 1], [20, 3], F16) != 0).to(BF16))),
     "0 up to each token's position, DECODE_MASK_VALUE after it", False),
    ("paged_attention", "mask narrower than the context", put(attn_mask=torch.zeros(4, 19, dtype=F16)),
     "attn_mask is [tokens, >= max(context_lens)]", False),
    ("paged_attention", "context_lens one short", put(context_lens=i32([20])),
     "block_tables has one row per request", False),
    ("paged_attention", "3-D query", reshape("query", 4, H, D), "query must be 2-D", False),
    ("flash_attention", "D = 20", put(query=rand(7, H * 20), key=rand(7, HKV * 20), value=rand(7, HKV * 20)),
     "D % 16 == 0", False),
    ("flash_attention", "fp32", cast("query", "key", "value", dtype=F32), "query must be float16 or bfloat16", False),
    ("flash_attention", "cumulative lengths (TND)", put(actual_seq_qlen=i32([3, 7]), actual_seq_kvlen=i32([3, 7])),
     "per-request lengths summing to the token count (TH, not cumulative)", False),
    ("flash_attention", "empty request", put(actual_seq_qlen=i32([0, 7]), actual_seq_kvlen=i32([0, 7])),
     "per-request lengths >= 1", False),
    ("flash_attention", "lengths as host lists", put(actual_seq_qlen=[3, 4], actual_seq_kvlen=[3, 4]),
     "must be a tensor", False),
    ("flash_attention", "int64 lengths", put(actual_seq_qlen=torch.tensor([3, 4]), actual_seq_kvlen=torch.tensor([3, 4])),
     "actual_seq_qlen must be int32", False),
    ("flash_attention", "3-D query (TND)", reshape("query", 7, H, D), "query must be 2-D", False),
    ("flash_attention", "key width", put(key=rand(7, 4 * D), value=rand(7, 4 * D)),
     "key width is kv_head_num * head_dim", False),
    ("flash_attention", "keys longer than queries", put(actual_seq_kvlen=i32([4, 3])), "S1 == S2", False),
    ("flash_attention", "TND's uint8 2048x2048 mask", put(attn_mask=torch.ones(2048, 2048, dtype=torch.uint8).triu(1)),
     "attn_mask dtype == query dtype", False),
    ("flash_attention", "bf16 with fp16's -10000 mask",
     both(cast("query", "key", "value", dtype=BF16), put(attn_mask=conventions.prefill_mask(F16).to(BF16))),
     "attn_mask is GLUE's [128, 128] prefill mask", False),
    ("mla", "latent 256", put(query=rand(2, MLA_H, 256), kv_cache=rand(3, 16, 1, 256)),
     "MLA query is [T, H, 512]", True),
    ("mla", "rope 32", put(q_rope=rand(2, MLA_H, 32), k_rope=rand(3, 16, 1, 32)), "MLA q_rope is [T, H, 64]", True),
    ("mla", "head_num 8", both(provider(head_num=8), put(query=rand(2, 8, LATENT), q_rope=rand(2, 8, ROPE))),
     "multiple of 16", True),
    ("mla", "kv_head_num 2", provider(kv_head_num=2), "MLA kv_head_num must be 1", True),
    ("mla", "2-D query", reshape("query", 2, MLA_H * LATENT), "MLA query is [T, H, 512]", True),
    ("mla", "lengths disagree", put(context_lens=i32([20, 5, 1])), "one entry per request", True),
    ("mla", "fp32", cast("query", "q_rope", "kv_cache", "k_rope", dtype=F32), "must be float16 or bfloat16", False),
    ("mla", "bf16 rope cache", cast("k_rope", dtype=BF16), "must share one dtype", False),
    ("mla", "two query tokens",
     put(query=rand(3, MLA_H, LATENT), q_rope=rand(3, MLA_H, ROPE), q_seq_lens=i32([2, 1])), "decode only", False),
    ("mla", "block_size 8",
     put(kv_cache=rand(6, 8, 1, LATENT), k_rope=rand(6, 8, 1, ROPE), block_tables=i32([[0, 1, 2], [3, 0, 0]])),
     "block_size % 16 == 0", False),
]

VIOLATION_IDS = [f"{op}-{what}" for op, what, *_ in VIOLATIONS]


def violated(op, mutate):
    prov, kwargs = base_call(op)
    mutate(prov, kwargs)
    return provider_kwargs(prov), kwargs


@pytest.mark.parametrize("op", sorted(PRIM))
def test_base_calls_are_valid_for_both(op):
    prov, kwargs = base_call(op)
    getattr(ReferenceOps(**provider_kwargs(prov)), op)(**kwargs)
    assert run_on_mindspore(op, provider_kwargs(prov), to_ms_inputs(kwargs)) == unregistered(op)


@pytest.mark.parametrize("op, what, mutate, message, ms_rejects", VIOLATIONS, ids=VIOLATION_IDS)
def test_reference_rejects_violation(op, what, mutate, message, ms_rejects):
    prov, kwargs = violated(op, mutate)
    with pytest.raises(ContractError, match=None) as err:
        getattr(ReferenceOps(**prov), op)(**kwargs)
    assert message in str(err.value), str(err.value)


@pytest.mark.parametrize("op, what, mutate, message, ms_rejects", VIOLATIONS, ids=VIOLATION_IDS)
def test_mindspore_inference_on_the_same_violation(op, what, mutate, message, ms_rejects):
    """Pins which violations MindSpore's own inference catches; the rest only the reference catches."""
    prov, kwargs = violated(op, mutate)
    outcome = run_on_mindspore(op, prov, to_ms_inputs(kwargs))
    if ms_rejects:
        assert outcome not in (unregistered(op), "no error"), outcome
    else:
        assert outcome == unregistered(op), outcome


# ---- pinned signatures: a MindSpore rename or reorder must fail here ---------------------

PINNED = {
    ReshapeAndCache: ("(self)", "(self, key, value=None, key_cache=None, value_cache=None, slot_mapping=None)"),
    PagedAttention: (
        "(self, head_num, scale_value, kv_head_num, kv_cache_quant_mode='DEFAULT', mask_mode='MASK_DEFAULT', "
        "mla_v_dim=0)",
        "(self, query, key_cache, value_cache=None, block_tables=None, context_lens=None, antiquant_scale=None, "
        "antiquant_offset=None, attn_mask=None, q_seq_lens=None, alibi_mask=None)"),
    FlashAttentionScore: (
        "(self, head_num, keep_prob=1.0, scale_value=1.0, pre_tokens=2147483647, next_tokens=2147483647, "
        "inner_precise=0, input_layout='BSH', sparse_mode=0)",
        "(self, query, key, value, real_shift=None, drop_mask=None, padding_mask=None, attn_mask=None, prefix=None, "
        "actual_seq_qlen=None, actual_seq_kvlen=None)"),
    Mla: ("(self)",
          "(self, query, q_rope, kv_cache, k_rope, block_tables, attn_mask=None, deq_scale_qk=None, "
          "deq_scale_pv=None, q_seq_lens=None, context_lens=None, head_num=32, scale_value=0.0, kv_head_num=1, "
          "mask_mode='MASK_NONE', is_ring=0)"),
}


@pytest.mark.parametrize("prim", list(PINNED), ids=lambda p: p.__name__)
def test_primitive_signatures_are_pinned(prim):
    init, call = PINNED[prim]
    assert (str(inspect.signature(prim.__init__)), str(inspect.signature(prim.__call__))) == (init, call)


def test_both_providers_have_the_same_interface():
    for method in PRIM:
        real, spec = getattr(AscendOps, method), getattr(ReferenceOps, method)
        assert inspect.signature(real) == inspect.signature(spec), method
    init = list(inspect.signature(AscendOps.__init__).parameters)
    assert list(inspect.signature(ReferenceOps.__init__).parameters)[:len(init)] == init


def test_reference_writes_land_in_the_torch_pool_when_called_with_torch_or_mindspore():
    pool = torch.zeros(2, 16, HKV, D, dtype=F16)
    key = rand(2, HKV * D)
    ops = ReferenceOps(H, HKV, SCALE)
    ops.reshape_and_cache(key, None, pool, None, i32([3, 20]))  # torch in, torch pool
    ops.reshape_and_cache(bridge.to_ms(key.flip(0)), None, bridge.to_ms(pool), None, bridge.to_ms(i32([4, 21])))
    flat = pool.flatten(0, 1).flatten(1)  # [32, HKV*D]
    assert torch.equal(flat[[3, 20]], key) and torch.equal(flat[[4, 21]], key.flip(0))
    assert [c.op for c in ops.recorder.calls] == ["reshape_and_cache"] * 2
