"""The custom KV-write kernel against the pure-MindSpore fallback, writing into a torch pool."""
import ctypes
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
import torch

from mindspore_models import bridge, device, kernels
from mindspore_models.kernels import KVBuffer, kv_cache_write_fallback, slot_runs

from conftest import kernels_required

device.init("cpu")


def custom_available() -> bool:
    return kernels.status()["KvCacheWrite"].startswith("custom")


@pytest.fixture
def need_custom():
    if not custom_available():
        if kernels_required():
            pytest.fail(f"SGLMS_REQUIRE_KERNELS=1 but KvCacheWrite is {kernels.status()['KvCacheWrite']}")
        pytest.skip(f"custom kernel not built: {kernels.status()['KvCacheWrite']}")


def test_slot_runs():
    assert slot_runs(torch.tensor([5, 6, 7, 2, 9, 10])) == [(5, 0, 3), (2, 3, 1), (9, 4, 2)]
    assert slot_runs(torch.tensor([3])) == [(3, 0, 1)]


@pytest.mark.parametrize("slots,heads,dim,index_dtype", [
    ([1, 2, 3, 4, 5], 2, 8, torch.int64),          # one contiguous run (prefill)
    ([17, 3, 9, 4, 5, 30], 3, 7, torch.int32),      # scattered, odd shapes
    ([31], 1, 1, torch.int64),                      # decode of one token into the last slot
])
def test_kv_write_custom_equals_fallback(need_custom, slots, heads, dim, index_dtype):
    rng = np.random.default_rng(0)
    values_np = rng.standard_normal((len(slots), heads, dim)).astype(np.float32)
    pools = []
    for use_custom in (True, False):
        pool = torch.full((32, heads, dim), -7.0)  # untouched rows must keep this value
        buf = KVBuffer.wrap(pool)
        values = ms.Tensor(values_np)
        slot_t = torch.tensor(slots, dtype=index_dtype)
        if use_custom:
            done = kernels.kv_cache_write(buf, bridge.to_ms(slot_t), values, slot_runs(slot_t))
        else:
            done = kv_cache_write_fallback(buf, values, slot_runs(slot_t))
        # the write is visible from MindSpore (ordered after it) and from torch (same memory)
        np.testing.assert_array_equal(kernels.pool_view(buf, done).asnumpy()[slots], values_np)
        pools.append(pool.clone())
    reference = torch.full((32, heads, dim), -7.0)
    reference[torch.tensor(slots)] = torch.from_numpy(values_np)
    torch.testing.assert_close(pools[0], reference, rtol=0, atol=0)
    torch.testing.assert_close(pools[1], reference, rtol=0, atol=0)


def test_kv_write_rejects_dtype_or_shape_mismatch():
    buf = KVBuffer.wrap(torch.zeros(8, 2, 4))
    slots = bridge.to_ms(torch.tensor([1]))
    with pytest.raises(ValueError, match="dtype or row shape"):
        kernels.kv_cache_write(buf, slots, ms.Tensor(np.zeros((1, 2, 4), np.float16)), [(1, 0, 1)])
    with pytest.raises(ValueError, match="dtype or row shape"):
        kernels.kv_cache_write(buf, slots, ms.Tensor(np.zeros((1, 2, 5), np.float32)), [(1, 0, 1)])


def test_kv_write_out_of_range_slot_is_an_error(need_custom):
    pool = torch.zeros(4, 1, 2)
    buf = KVBuffer.wrap(pool)
    with pytest.raises(RuntimeError, match="KvCacheWrite"):
        kernels.kv_cache_write(buf, bridge.to_ms(torch.tensor([4])), ms.Tensor(np.ones((1, 1, 2), np.float32)),
                               [(4, 0, 1)]).asnumpy()
    assert pool.abs().sum() == 0


def reference_attention(q, k_pool, v_pool, table, seq_lens, q_lens, scale):
    """numpy: query i of request b at position seq_len-q_len+i attends keys 0..pos."""
    hq, hkv = q.shape[1], k_pool.shape[1]
    out = np.zeros((q.shape[0], hq * q.shape[2]), np.float64)
    t = 0
    for b, (sl, ql) in enumerate(zip(seq_lens, q_lens)):
        for i in range(ql):
            pos = sl - ql + i
            slots = table[b, : pos + 1]
            for h in range(hq):
                keys, vals = k_pool[slots, h // (hq // hkv)], v_pool[slots, h // (hq // hkv)]
                s = keys.astype(np.float64) @ q[t, h] * scale
                p = np.exp(s - s.max())
                out[t, h * q.shape[2]:(h + 1) * q.shape[2]] = (p / p.sum()) @ vals
            t += 1
    return out


@pytest.mark.parametrize("hq,hkv,d,seq_lens,q_lens", [
    (4, 2, 8, [9, 5, 13], [9, 1, 4]),       # prefill, decode, chunk over a cached prefix
    (3, 3, 5, [1], [1]),                     # MHA, one token
    (8, 1, 16, [20, 20], [1, 1]),            # MQA decode batch
    # GEMM path (q_len >= 16): a prefill over two query blocks, an extend over a cached prefix
    # exactly at the threshold, next to a decode token and a short chunk (per-token path)
    (4, 2, 8, [70, 26, 9, 20], [70, 16, 1, 15]),
    # per-token path items = a token x a block of KV heads, as wide as leaves ~4 items per thread:
    # whole rows (12 decode tokens), and blocks of 2 of 3 KV heads (a short last block)
    (8, 4, 8, [30, 31, 5, 9, 17, 30, 2, 8, 11, 19, 25, 3], [1] * 12),
    (6, 3, 8, [7, 12, 3, 9], [1, 2, 1, 1]),
])
def test_paged_attention_matches_numpy(kernel_mode, hq, hkv, d, seq_lens, q_lens):
    step = check_attention_against_numpy(hq, hkv, d, seq_lens, q_lens)
    # the kernel path's step is plain tensors (it compiles); the O(B*Lq*S) mask exists only for the gathered path
    assert isinstance(step, tuple) if kernel_mode.startswith("custom-kernels") else "mask" in step.__dict__


@pytest.fixture(params=["avx512", "portable"])
def decode_path(request):
    """Forces the decode-token path of PagedAttention (the library MindSpore loaded: same handle)."""
    lib = ctypes.CDLL(str(kernels.library_path()))
    default = lib.SglmsDecodeSimd()
    if request.param == "avx512" and "avx512f" not in Path("/proc/cpuinfo").read_text():
        pytest.skip("this CPU has no AVX-512: decode tokens always take the portable loop here")
    lib.SglmsSetDecodeSimd(1 if request.param == "avx512" else 0)
    yield request.param
    lib.SglmsSetDecodeSimd(default)


# decode tokens at the head dims the AVX-512 path takes (16..128), GQA groups of 2 (Qwen3) and 3 (an
# odd group: a pass of two heads, then one), MHA, and keys crossing the 4-key prefetch distance
@pytest.mark.parametrize("hq,hkv,d,seq_lens", [
    (16, 8, 128, [150, 3, 77, 1]),
    (6, 2, 64, [40, 9]),
    (4, 4, 32, [5, 17]),
    (3, 1, 16, [12]),
])
def test_decode_attention_paths_match_numpy(need_custom, decode_path, hq, hkv, d, seq_lens):
    check_attention_against_numpy(hq, hkv, d, seq_lens, [1] * len(seq_lens))


def check_attention_against_numpy(hq, hkv, d, seq_lens, q_lens):
    """One Attention layer over a scattered pool against numpy; returns the backend's step."""
    from mindspore_models.attention.cpu import CpuBackend
    from mindspore_models.attention.plan import StepPlan
    from mindspore_models.attention.pool import KVPool
    from mindspore_models.layers.attention import Attention

    rng = np.random.default_rng(1)
    rows = max(64, sum(seq_lens) + 1)
    k_pool = torch.from_numpy(rng.standard_normal((rows, hkv, d)).astype(np.float32))
    v_pool = torch.from_numpy(rng.standard_normal((rows, hkv, d)).astype(np.float32))
    perm = rng.permutation(np.arange(1, rows))  # scattered slots, never the padding slot 0
    table = np.zeros((len(seq_lens), max(seq_lens)), np.int64)
    used = 0
    for b, sl in enumerate(seq_lens):
        table[b, :sl] = perm[used: used + sl]
        used += sl
    T = sum(q_lens)
    q = rng.standard_normal((T, hq, d)).astype(np.float32)
    new_k = rng.standard_normal((T, hkv, d)).astype(np.float32)
    new_v = rng.standard_normal((T, hkv, d)).astype(np.float32)
    new_slots = np.concatenate([table[b, sl - ql: sl] for b, (sl, ql) in enumerate(zip(seq_lens, q_lens))])
    positions = np.concatenate([np.arange(sl - ql, sl) for sl, ql in zip(seq_lens, q_lens)])
    expected_k, expected_v = k_pool.numpy().copy(), v_pool.numpy().copy()
    expected_k[new_slots], expected_v[new_slots] = new_k, new_v
    plan = StepPlan.build(torch.tensor(seq_lens), torch.tensor(q_lens), torch.from_numpy(table),
                          torch.from_numpy(positions), torch.from_numpy(new_slots))
    backend = CpuBackend(KVPool([k_pool], [v_pool], 1, mla=False))
    step = backend.prepare(plan)
    layer = Attention(hq, hkv, d, layer_id=0)
    layer.bind(backend)
    got = layer(ms.Tensor(q), ms.Tensor(new_k), ms.Tensor(new_v), step).asnumpy()
    ref = reference_attention(q, expected_k, expected_v, table, seq_lens, q_lens, d ** -0.5)
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=1e-5)
    np.testing.assert_array_equal(k_pool.numpy(), expected_k)  # the new rows landed in the pool
    return step


# widths around the 16-float vectors (masked tails), gates over float's whole exp range and past it
@pytest.mark.parametrize("t,i", [(1, 1), (3, 17), (2, 3072)])
def test_silu_mul(kernel_mode, t, i):
    rng = np.random.default_rng(4)
    gate = (rng.standard_normal((t, i)) * 8).astype(np.float32)
    gate.flat[:6] = [0.0, -90.0, 90.0, -200.0, 200.0, 1e-30][: gate.size]
    up = rng.standard_normal((t, i)).astype(np.float32)
    got = kernels.silu_mul(ms.Tensor(np.concatenate([gate, up], 1))).asnumpy()
    g = gate.astype(np.float64)
    with np.errstate(over="ignore"):
        ref = g / (1 + np.exp(-g)) * up
    np.testing.assert_allclose(got, ref, rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 7), (5, 3, 33), (2, 128)])
def test_rms_norm(kernel_mode, shape):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal(shape[-1]).astype(np.float32)
    got = kernels.rms_norm(ms.Tensor(x), ms.Tensor(w), 1e-6).asnumpy()
    ref = x / np.sqrt((x.astype(np.float64) ** 2).mean(-1, keepdims=True) + 1e-6) * w
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def rms_norm_ref(x, w, eps=1e-6):
    return x / np.sqrt((x.astype(np.float64) ** 2).mean(-1, keepdims=True) + eps) * w


@pytest.mark.parametrize("shape", [(1, 7), (5, 3, 33), (300, 256)])
def test_add_rms_norm(kernel_mode, shape):
    """residual += delta, then the norm of the sum; the returned residual is the sum."""
    rng = np.random.default_rng(7)
    delta, res = (rng.standard_normal(shape).astype(np.float32) for _ in range(2))
    w = rng.standard_normal(shape[-1]).astype(np.float32)
    normed, summed = kernels.add_rms_norm(ms.Tensor(delta), ms.Tensor(res.copy()), ms.Tensor(w), 1e-6)
    np.testing.assert_allclose(summed.asnumpy(), res + delta, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(normed.asnumpy(), rms_norm_ref(res + delta, w), rtol=1e-5, atol=1e-5)


def test_add_rms_norm_chain_in_a_compiled_graph(kernel_mode):
    """The decoder's pattern, under ms.jit with the kernels (as the model compiles), else PyNative:
    two chained steps, the stream read after each (through an op that takes the step's output, as
    kernels.add_rms_norm asks). The op writes the sum in place; a graph that read the residual's
    old value gives different numbers."""
    from mindspore import nn

    class Chain(nn.Cell):
        def construct(self, x, d1, d2, w):
            h1, r = kernels.add_rms_norm(d1, x, w, 1e-6)
            h2, r = kernels.add_rms_norm(d2 * h1, r, w, 1e-6)
            return h1, h2, r + h2  # r read after the second step: through h2

    rng = np.random.default_rng(8)
    x, d1, d2 = (rng.standard_normal((6, 64)).astype(np.float32) for _ in range(3))
    w = rng.standard_normal(64).astype(np.float32)
    net = ms.jit(Chain()) if kernel_mode == "custom-kernels" else Chain()
    h1, h2, r2 = (t.asnumpy() for t in net(*(ms.Tensor(a) for a in (x, d1, d2, w))))
    ref_h1 = rms_norm_ref(x + d1, w)
    ref_r = x + d1 + d2 * ref_h1
    np.testing.assert_allclose(h1, ref_h1, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(h2, rms_norm_ref(ref_r, w), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(r2, ref_r + rms_norm_ref(ref_r, w), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("t,h,d", [(1, 1, 2), (7, 3, 10), (4, 16, 128)])
def test_rope_neox(kernel_mode, t, h, d):
    from mindspore_models.layers.rope import inv_frequencies

    rng = np.random.default_rng(3)
    x = rng.standard_normal((t, h, d)).astype(np.float32)
    pos = rng.integers(0, 50, t).astype(np.int32)
    freqs = np.outer(np.arange(50, dtype=np.float32), inv_frequencies(d, 10000.0, None))
    cos, sin = np.cos(freqs).astype(np.float32), np.sin(freqs).astype(np.float32)
    got = kernels.rope_neox(ms.Tensor(x), ms.Tensor(pos), ms.Tensor(cos), ms.Tensor(sin)).asnumpy()
    c, s = cos[pos][:, None], sin[pos][:, None]
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    ref = np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], -1)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("t,h,d", [(1, 1, 2), (7, 3, 10), (5, 8, 128)])
def test_rms_norm_rope(kernel_mode, t, h, d):
    """The fused per-head norm + rope against numpy: norm over each head's D, then the NeoX rotation."""
    from mindspore_models.layers.rope import inv_frequencies

    rng = np.random.default_rng(6)
    x = (3 * rng.standard_normal((t, h, d))).astype(np.float32)
    w = rng.standard_normal(d).astype(np.float32)
    pos = rng.integers(0, 40, t).astype(np.int32)
    freqs = np.outer(np.arange(40, dtype=np.float32), inv_frequencies(d, 10000.0, None))
    cos, sin = np.cos(freqs).astype(np.float32), np.sin(freqs).astype(np.float32)
    got = kernels.rms_norm_rope(ms.Tensor(x), ms.Tensor(w), 1e-6, ms.Tensor(pos), ms.Tensor(cos), ms.Tensor(sin))
    n = x / np.sqrt((x.astype(np.float64) ** 2).mean(-1, keepdims=True) + 1e-6) * w
    c, s = cos[pos][:, None], sin[pos][:, None]
    n1, n2 = n[..., : d // 2], n[..., d // 2:]
    ref = np.concatenate([n1 * c - n2 * s, n2 * c + n1 * s], -1)
    np.testing.assert_allclose(got.asnumpy(), ref, rtol=1e-5, atol=1e-5)


def _qkv_case(t, hq, hkv, d, seed=9):
    from mindspore_models.layers.rope import inv_frequencies

    rng = np.random.default_rng(seed)
    qkv = (2 * rng.standard_normal((t, (hq + 2 * hkv) * d))).astype(np.float32)
    q_w, k_w = (rng.standard_normal(d).astype(np.float32) for _ in range(2))
    pos = rng.integers(0, 40, t).astype(np.int32)
    freqs = np.outer(np.arange(40, dtype=np.float32), inv_frequencies(d, 10000.0, None))
    return qkv, q_w, k_w, pos, np.cos(freqs).astype(np.float32), np.sin(freqs).astype(np.float32)


def _norm_rope_ref(x, w, pos, cos, sin):
    d = x.shape[-1]
    n = rms_norm_ref(x, w) if w is not None else x
    c, s = cos[pos][:, None], sin[pos][:, None]
    n1, n2 = n[..., : d // 2], n[..., d // 2:]
    return np.concatenate([n1 * c - n2 * s, n2 * c + n1 * s], -1)


@pytest.mark.parametrize("norm", [True, False], ids=["qk-norm", "rope-only"])
@pytest.mark.parametrize("t,hq,hkv,d", [(1, 2, 1, 8), (7, 4, 2, 16), (40, 16, 8, 128)])
def test_qk_norm_rope_cache(need_custom, t, hq, hkv, d, norm):
    """Packed qkv -> q (normed, Qwen3; or not, Llama) and rotated; k the same and v written at their
    slots, every other pool row untouched; against numpy."""
    qkv, q_w, k_w, pos, cos, sin = _qkv_case(t, hq, hkv, d)
    if not norm:
        q_w = k_w = None
    rows = 2 * t + 3
    k_pool, v_pool = torch.full((rows, hkv, d), 7.0), torch.full((rows, hkv, d), 7.0)
    slots = np.random.default_rng(1).permutation(rows)[:t].astype(np.int64)
    pair = kernels.pair_ref(KVBuffer.wrap(k_pool), KVBuffer.wrap(v_pool))
    weights = (ms.Tensor(q_w), ms.Tensor(k_w)) if norm else (None, None)
    q = kernels.qk_norm_rope_cache(ms.Tensor(qkv), ms.Tensor(np.zeros(hq, np.int32)), *weights, 1e-6, ms.Tensor(pos),
                                   ms.Tensor(cos), ms.Tensor(sin), pair, ms.Tensor(slots))
    x = qkv.reshape(t, hq + 2 * hkv, d)
    np.testing.assert_allclose(q.asnumpy(), _norm_rope_ref(x[:, :hq], q_w, pos, cos, sin), rtol=1e-5, atol=1e-5)
    k_ref, v_ref = np.full((rows, hkv, d), 7.0, np.float32), np.full((rows, hkv, d), 7.0, np.float32)
    k_ref[slots] = _norm_rope_ref(x[:, hq: hq + hkv], k_w, pos, cos, sin)
    v_ref[slots] = x[:, hq + hkv:]
    np.testing.assert_allclose(k_pool.numpy(), k_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(v_pool.numpy(), v_ref)


def test_qk_norm_rope_cache_bad_slot_writes_nothing(need_custom):
    qkv, q_w, k_w, pos, cos, sin = _qkv_case(3, 2, 1, 8)
    k_pool, v_pool = torch.zeros((4, 1, 8)), torch.zeros((4, 1, 8))
    pair = kernels.pair_ref(KVBuffer.wrap(k_pool), KVBuffer.wrap(v_pool))
    with pytest.raises(RuntimeError, match="is 3"):  # SGLMS_ERR_BAD_INDEX
        kernels.qk_norm_rope_cache(ms.Tensor(qkv), ms.Tensor(np.zeros(2, np.int32)), ms.Tensor(q_w), ms.Tensor(k_w), 1e-6,
                                   ms.Tensor(pos), ms.Tensor(cos), ms.Tensor(sin), pair,
                                   ms.Tensor(np.array([0, 4, 1], np.int64))).asnumpy()
    assert not k_pool.any() and not v_pool.any()


@pytest.mark.parametrize("fused", [False, True], ids=["RopeNeox", "RmsNormRope"])
def test_rope_position_outside_the_table_is_an_error(need_custom, fused):
    x, table = ms.Tensor(np.ones((2, 1, 4), np.float32)), ms.Tensor(np.ones((3, 2), np.float32))
    positions = ms.Tensor(np.array([0, 3], np.int32))  # 3 rows of cos/sin: position 3 is out
    with pytest.raises(RuntimeError, match="is 3"):  # SGLMS_ERR_BAD_INDEX
        if fused:
            kernels.rms_norm_rope(x, ms.Tensor(np.ones(4, np.float32)), 1e-6, positions, table, table).asnumpy()
        else:
            kernels.rope_neox(x, positions, table, table).asnumpy()


@pytest.mark.parametrize("m,k,n", [(1, 5, 3), (3, 64, 2050), (16, 33, 300), (17, 8, 9)])
def test_matmul_nt(kernel_mode, m, k, n):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.standard_normal((k, n)).astype(np.float32)
    ref = x.astype(np.float64) @ w
    wt = np.ascontiguousarray(w.T)
    np.testing.assert_allclose(kernels.matmul_nt(ms.Tensor(x), ms.Tensor(wt)).asnumpy(), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("t,h,e,i,k", [(1, 8, 4, 3, 2), (5, 7, 6, 5, 3), (3, 16, 2, 8, 1)])
def test_moe_swiglu(kernel_mode, t, h, e, i, k):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((t, h)).astype(np.float32)
    gate_up = rng.standard_normal((e, h, 2 * i)).astype(np.float32)
    down = rng.standard_normal((e, i, h)).astype(np.float32)
    ids = np.stack([rng.choice(e, k, replace=False) for _ in range(t)]).astype(np.int32)
    w = rng.random((t, k)).astype(np.float32)
    got = kernels.moe_swiglu(ms.Tensor(x), ms.Tensor(w), ms.Tensor(ids), ms.Tensor(gate_up), ms.Tensor(down)).asnumpy()
    ref = np.zeros((t, h))
    for r in range(t):
        for j in range(k):
            hgu = x[r].astype(np.float64) @ gate_up[ids[r, j]]
            g, u = hgu[:i], hgu[i:]
            ref[r] += w[r, j] * ((g / (1 + np.exp(-g)) * u) @ down[ids[r, j]])
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


# GEMM path -> (row-dot max M, tiles max M): the kernel tries tiles, then row-dot, then oneDNN.
GEMM_PATHS = {"tiles": (0, 1 << 20), "oneDNN": (0, 0), "row-dot": (1 << 20, 0)}


@pytest.fixture
def gemm_path():
    """Forces one of the GEMM kernel's paths (the library MindSpore loaded: same handle)."""
    lib = ctypes.CDLL(str(kernels.library_path()))
    default = lib.SglmsRowDotMaxM(), lib.SglmsTileMaxM()

    def force(path: str) -> None:
        if path == "tiles" and default[1] == 0:
            pytest.skip("this CPU has no AVX-512: the kernel never takes the register-tile path here")
        row_dot, tiles = GEMM_PATHS[path]
        lib.SglmsSetRowDotMaxM(ctypes.c_int64(row_dot))
        lib.SglmsSetTileMaxM(ctypes.c_int64(tiles))

    yield force
    lib.SglmsSetRowDotMaxM(ctypes.c_int64(default[0]))
    lib.SglmsSetTileMaxM(ctypes.c_int64(default[1]))


@pytest.mark.parametrize("path", list(GEMM_PATHS))
# shapes cover the tiles' edges: x rows not a multiple of 4, W rows not of 6, masked K tails, K
# over one 1024-column chunk (partial sums accumulated), one thread's band shorter than a tile
@pytest.mark.parametrize("m,k,n", [(1, 5, 3), (3, 64, 2050), (16, 33, 300), (17, 8, 9), (40, 96, 33),
                                   (5, 1100, 13), (16, 2100, 50), (9, 16, 7), (2, 3072, 1)])
def test_matmul_nt_every_path(need_custom, gemm_path, path, m, k, n):
    """Each of the GEMM kernel's paths against float64, whichever the default thresholds pick."""
    assert "oneDNN" in kernels.status()["MatMulNT"], kernels.status()["MatMulNT"]
    gemm_path(path)
    rng = np.random.default_rng(m * 1000 + n)
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.standard_normal((n, k)).astype(np.float32)
    got = kernels.matmul_nt(ms.Tensor(x), ms.Tensor(w)).asnumpy()
    np.testing.assert_allclose(got, x.astype(np.float64) @ w.T.astype(np.float64), rtol=1e-4, atol=1e-4)


def test_probe_attention_runs_and_its_paths_agree(need_custom):
    """benchmarks/probe_attention.py (README quotes it) on a small step: both decode paths, same output."""
    import subprocess
    import sys

    probe = Path(__file__).parent.parent / "benchmarks" / "probe_attention.py"
    out = subprocess.run([sys.executable, str(probe), "--lib", str(kernels.library_path()), "--batch", "3",
                          "--keys", "20", "--repeats", "1"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "paths agree" in out.stdout and "avx512" in out.stdout and "portable" in out.stdout


def test_a_missing_library_is_an_error_unless_the_fallbacks_are_asked_for(tmp_path):
    """No silent slow path: `python -m mindspore_models.kernels` (what model load calls) names
    where it looked and how to get the library; SGLMS_DISABLE_KERNELS=1 chooses the fallbacks."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "SGLMS_KERNELS_LIB": str(tmp_path / "absent.so")}
    env.pop("SGLMS_DISABLE_KERNELS", None)
    out = subprocess.run([sys.executable, "-m", "mindspore_models.kernels"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and f"(looked in: {tmp_path / 'absent.so'})" in out.stderr, out.stdout + out.stderr
    assert "cmake -S . -B build/kernels" in out.stderr and "SGLMS_DISABLE_KERNELS=1" in out.stderr
    out = subprocess.run([sys.executable, "-m", "mindspore_models.kernels"], env={**env, "SGLMS_DISABLE_KERNELS": "1"},
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "KvCacheWrite: fallback: disabled (SGLMS_DISABLE_KERNELS=1)" in out.stdout, out.stderr
