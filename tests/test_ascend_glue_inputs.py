"""Differential test against upstream SGLang's own MindSpore glue (`sglang/srt/models/mindspore.py`
in the pinned tree): for the same ForwardBatches, what our Ascend backend hands the ops equals, in
value and dtype, what the glue prepares for every MindSpore model package (the inputs sgl-mindspore's
models pass to the same ops on Ascend). The glue's code runs here as it is (patch 0002 only lets it
import off NPU); the ForwardBatches carry the fields it and `plan_from_batch` read.

Deliberate differences, named:
- positions: the glue passes int64 position_ids; our model takes int32 (its own rope, not an Ascend op).
- MLA: the glue prepares per-request tables and lengths; our MLA path passes MindSpore's `mla` op
  one "request" per token (its request's block table row, context = position + 1, q_seq_len 1)
  and a [1, 1] zero mask it does not read (attention/ascend.py says why).
"""
import functools
from types import SimpleNamespace
from unittest import mock

import mindspore as ms
import numpy as np
import pytest
import torch

from mindspore_models import bridge, device
from mindspore_models.attention.ascend import AscendBackend
from mindspore_models.attention.pool import sglang_npu_pool
from mindspore_models.attention.reference import ReferenceOps

PAGE = 128
SLOTS = 12 * PAGE
# per request: (cached tokens, new tokens); SGLang lays out MIXED batches with decodes as 1-token extends
BATCHES = {
    "prefill": ("EXTEND", [(0, 5), (0, 130), (0, 1)]),
    "extend over cached pages": ("EXTEND", [(128, 7), (5, 3)]),
    "mixed decode + extend": ("MIXED", [(9, 1), (130, 1), (64, 70)]),
    "mixed decode + new prefill": ("MIXED", [(9, 1), (0, 12)]),
    "decode": ("DECODE", [(10, 1), (131, 1), (300, 1)]),
    "extend past the glue's 8192-row mask": ("EXTEND", [(8190, 4), (3, 2)]),
}


def forward_batch(mode_name, requests):
    """A ForwardBatch-like record with SGLang's fields, and the req_to_token table behind it."""
    from sglang.srt.model_executor.forward_batch_info import ForwardMode

    mode = getattr(ForwardMode, mode_name)
    width = max(c + n for c, n in requests)
    req_to_token = torch.zeros(len(requests) + 2, width + PAGE, dtype=torch.int32)  # rows past the batch: other requests
    page, positions, out_loc = 1, [], []
    for r, (cached, new) in enumerate(requests):
        pages = -(-(cached + new) // PAGE)
        slots = torch.cat([torch.arange(PAGE) + (page + p) * PAGE for p in range(pages)])
        req_to_token[r + 1, : slots.numel()] = slots[: req_to_token.shape[1]]
        page += pages
        positions += range(cached, cached + new)
        out_loc.append(slots[cached:cached + new])
    seq_lens = torch.tensor([c + n for c, n in requests])
    extend = mode.is_extend()
    fb = SimpleNamespace(
        forward_mode=mode, batch_size=len(requests), req_pool_indices=torch.arange(1, len(requests) + 1),
        seq_lens=seq_lens, seq_lens_cpu=seq_lens, out_cache_loc=torch.cat(out_loc).long(),
        positions=torch.tensor(positions), spec_info=None,
        extend_seq_lens=torch.tensor([n for _, n in requests]) if extend else None,
        extend_seq_lens_cpu=[n for _, n in requests] if extend else None,
        extend_prefix_lens=torch.tensor([c for c, _ in requests]) if extend else None)
    return fb, req_to_token, page


@functools.cache
def glue_mask(dtype):
    """The glue's LowerTriangularMask (it builds an 8192 x 8192 table: once per dtype)."""
    import sglang.srt.models.mindspore as glue

    glue._import_mindspore()
    return glue.LowerTriangularMask(bridge.ms_dtype(dtype), 40960)


class GlueStub:
    """The glue's MindSporeForCausalLM with only what prepare_inputs reads (the model is never built)."""

    def __init__(self, dtype, mla):
        import sglang.srt.models.mindspore as glue

        glue._import_mindspore()
        self.glue, self.use_mla = glue, mla
        self.causal_mask = glue_mask(dtype)

    def get_kvcache(self, forward_batch):
        return None if self.use_mla else (None, None)  # the caches are compared separately (the same buffers)

    def prepare(self, fb):
        cls = self.glue.MindSporeForCausalLM
        self._is_prefill = cls._is_prefill.__get__(self)
        with mock.patch.object(self.causal_mask, "create_mask", self.create_mask_in_torch):
            return cls.prepare_inputs(self, torch.zeros(fb.positions.numel(), dtype=torch.int64), fb.positions, fb)

    def create_mask_in_torch(self, query_lens_np, seq_lens_np):
        """The glue's own create_mask (past 8192 keys) writes with in-place slice kernels MindSpore's CPU
        build lacks (InplaceMaskedFillScalar): its code runs here on torch tensors instead of mint's."""
        torch_dtype = {ms.bfloat16: torch.bfloat16, ms.float16: torch.float16}[self.causal_mask.dtype]
        mask = self.causal_mask
        with mock.patch.object(self.glue, "mint", torch):
            out = type(mask).create_mask(SimpleNamespace(dtype=torch_dtype, decode_mask_coeff=mask.decode_mask_coeff),
                                         query_lens_np, seq_lens_np)
        return bridge.copy_to_ms(out)


@pytest.fixture(scope="module")
def contexts():
    device.current()
    return {}


_ms_gather = ms.ops.gather


def row_pick(table, rows, axis):
    """The glue picks its extend-mask rows with ops.gather off NPU (index_select on NPU). MindSpore's CPU
    Gather has no bf16 kernel, so bf16 rows of the glue's own bf16 table are picked by torch here."""
    if table.dtype != ms.bfloat16:
        return _ms_gather(table, rows, axis)
    return bridge.to_ms(value(table).index_select(axis, value(rows).long()).contiguous())


def ours_and_glue(name, dtype, mla):
    from sglang.srt.model_executor.forward_context import ForwardContext, forward_context

    from mindspore_models.runtime.sglang_model import plan_from_batch

    fb, req_to_token, _ = forward_batch(*BATCHES[name])
    cfg = SimpleNamespace(num_layers=1, num_kv_heads=2, head_dim=64,
                          mla=SimpleNamespace(kv_lora_rank=512, qk_rope_head_dim=64) if mla else None)
    pool = sglang_npu_pool(cfg, SLOTS * 8, PAGE, dtype)
    sglang_pools = SimpleNamespace(token_to_kv_pool=SimpleNamespace(page_size=PAGE),
                                   req_to_token_pool=SimpleNamespace(req_to_token=req_to_token))
    with forward_context(ForwardContext(attn_backend=sglang_pools)), mock.patch.object(ms.ops, "gather", row_pick):
        glue = GlueStub(dtype, mla).prepare(fb)
        plan = plan_from_batch(fb, fb.positions, PAGE)
    backend = AscendBackend(pool, lambda h, hkv, s: ReferenceOps(h, hkv, s))
    return backend.prepare(plan), glue, plan


def value(x):
    return torch.utils.dlpack.from_dlpack(ms.utils.dlpack.to_dlpack(x)) if isinstance(x, ms.Tensor) else x


def assert_same(ours, theirs, what):
    a, b = value(ours), value(theirs)
    assert a.dtype == b.dtype, f"{what}: dtype {a.dtype} vs the glue's {b.dtype}"
    assert a.shape == b.shape, f"{what}: shape {tuple(a.shape)} vs the glue's {tuple(b.shape)}"
    assert torch.equal(a, b), f"{what}: values differ from the glue's"


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("name", list(BATCHES))
def test_backend_inputs_equal_the_glues(contexts, name, dtype):
    step, glue, _ = ours_and_glue(name, dtype, mla=False)
    prefill, slots, tables, context_lens, q_lens, mask = step[:6]
    assert prefill is glue["is_prefill"], name
    assert_same(slots, glue["out_cache_loc"], "slot_mapping")
    assert_same(tables, glue["block_tables"], "block_tables")
    assert_same(context_lens, glue["batch_valid_length"], "context_lens (batch_valid_length)")
    assert_same(q_lens, glue["q_seq_lens"], "q_seq_lens")
    assert_same(mask, glue["attention_mask"], "attention mask")


@pytest.mark.parametrize("name", ["prefill", "mixed decode + extend", "decode"])
def test_mla_differs_from_the_glue_only_where_named(contexts, name):
    step, glue, plan = ours_and_glue(name, torch.bfloat16, mla=True)
    prefill, slots, tables, context_lens, q_lens, mask = step[:6]
    assert prefill is False  # every MLA step is the mla op's
    assert_same(slots, glue["out_cache_loc"], "slot_mapping")
    request = torch.repeat_interleave(torch.arange(plan.batch_size), plan.q_lens)
    assert_same(tables, value(glue["block_tables"])[request], "per-token block tables")
    assert torch.equal(value(context_lens), value(glue["position_ids"]).to(torch.int32) + 1)
    assert torch.equal(value(q_lens), torch.ones(plan.num_tokens, dtype=torch.int32))
    assert value(mask).shape == (1, 1) and not value(mask).any()


def test_glue_mask_is_used_as_is_when_given(contexts):
    """Under SGLang the backend takes the glue's mask (already on the device) instead of building it."""
    step, glue, plan = ours_and_glue("mixed decode + extend", torch.float16, mla=False)
    backend_step = AscendBackend(sglang_npu_pool(SimpleNamespace(num_layers=1, num_kv_heads=2, head_dim=64, mla=None),
                                                 SLOTS, PAGE, torch.float16),
                                 lambda h, hkv, s: ReferenceOps(h, hkv, s)).prepare(plan, glue)
    assert backend_step[5] is glue["attention_mask"]
    assert np.array_equal(value(step[5]).float().numpy(), value(glue["attention_mask"]).float().numpy())
