"""The custom KV-write kernel against the pure-MindSpore fallback, writing into a torch pool."""
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
            out = kernels.kv_cache_write(buf, bridge.to_ms(slot_t), values, slot_runs(slot_t))
        else:
            out = kv_cache_write_fallback(buf, values, slot_runs(slot_t))
        # the write is visible from MindSpore (ordered after it) and from torch (same memory)
        np.testing.assert_array_equal(out.asnumpy()[slots], values_np)
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
    out = kernels.kv_cache_write(buf, bridge.to_ms(torch.tensor([4])), ms.Tensor(np.ones((1, 1, 2), np.float32)), [(4, 0, 1)])
    with pytest.raises(RuntimeError, match="KvCacheWrite"):
        out.asnumpy()
    assert pool.abs().sum() == 0
