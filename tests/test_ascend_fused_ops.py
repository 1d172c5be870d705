"""The fused Ascend ops outside attention (fused_ops/): norms, and MoE through MoeInitRoutingV2 +
GroupedMatmulV4 + MoeTokenUnpermute, as sgl-mindspore calls them. Like the attention ops: the
executable spec (fused_ops/reference.py) against an independent computation, its constraints,
whole models through it (fp16, over the Ascend attention backend) against HF, every recorded call
replayed against the real MindSpore primitive, and the primitives' signatures pinned.

MindSpore 2.10's CPU build runs the inference of RmsNorm, AddRmsNorm, MoeInitRoutingV2 and
GroupedMatmulV4 and then stops at "kernel unregistered"; MoeTokenUnpermute stops before any
inference ("Not implement exception"), so its calls are checked by the spec alone.
"""
import inspect
import re

import numpy as np
import pytest
import torch
from conftest import hf_greedy
from mindspore.ops.auto_generate import GroupedMatmulV4, MoeInitRoutingV2, MoeTokenUnpermute, add_rms_norm, rms_norm

from mindspore_models import bridge, device, kernels

device.init("cpu")

from mindspore_models.attention.ascend import AscendBackend  # noqa: E402
from mindspore_models.attention.pool import sglang_npu_pool  # noqa: E402
from mindspore_models.attention.reference import ContractError, ReferenceOps  # noqa: E402
from mindspore_models.fused_ops.ascend import AscendFusedOps  # noqa: E402
from mindspore_models.fused_ops.reference import ReferenceFusedOps  # noqa: E402
from mindspore_models.runtime.standalone import Sequence, StandaloneRunner  # noqa: E402

OPS = ("rms_norm", "add_rms_norm", "moe_init_routing", "grouped_matmul", "moe_token_unpermute")
KERNEL = {"rms_norm": "RmsNorm", "add_rms_norm": "AddRmsNorm", "moe_init_routing": "MoeInitRoutingV2",
          "grouped_matmul": "GroupedMatmulV4"}
NO_CPU_INFERENCE = {"moe_token_unpermute": "RuntimeError: Not implement exception"}
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
TOL = {torch.float32: 1e-5, torch.float16: 2e-2, torch.bfloat16: 1e-1}


def rand(*shape, dtype=torch.float32, seed=0):
    return (torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 0.5).to(dtype)


def ms_(t):
    return bridge.to_ms(t)


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
def test_norms_compute_rms_norm_in_fp32(dtype):
    x, delta, gamma = rand(7, 48, dtype=dtype), rand(7, 48, dtype=dtype, seed=1), rand(48, dtype=dtype, seed=2) + 1
    spec = ReferenceFusedOps()
    x64 = x.double()
    want = x64 / np.sqrt((x64 ** 2).mean(-1, keepdim=True) + 1e-6) * gamma.double()
    got = bridge.to_torch(spec.rms_norm(ms_(x), ms_(gamma), 1e-6))
    assert got.dtype == dtype and torch.allclose(got.double(), want, atol=TOL[dtype], rtol=TOL[dtype])
    y, total = spec.add_rms_norm(ms_(delta), ms_(x), ms_(gamma), 1e-6)
    total = bridge.to_torch(total)
    assert torch.equal(total, (delta.float() + x.float()).to(dtype))
    t64 = total.double()
    want = t64 / np.sqrt((t64 ** 2).mean(-1, keepdim=True) + 1e-6) * gamma.double()
    assert torch.allclose(bridge.to_torch(y).double(), want, atol=TOL[dtype], rtol=TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_grouped_moe_equals_every_expert_over_every_token(dtype, fallbacks_only):
    """kernels.moe_swiglu through the spec (only chosen rows, grouped by expert) against the
    fallback that runs every expert densely, weighted 0 where not chosen. Expert 5 gets no rows.
    Not bf16: the SwiGLU between the grouped matmuls is MindSpore's Sigmoid, with no bf16 CPU kernel."""
    t, h, i, e = 9, 32, 24, 6
    x = rand(t, h, dtype=dtype)
    ids = torch.tensor([[0, 2], [1, 2], [3, 0], [2, 1], [0, 3], [4, 1], [4, 0], [1, 3], [2, 4]], dtype=torch.int32)
    weights = torch.rand(t, 2, generator=torch.Generator().manual_seed(3)).to(dtype)
    gate_up, down = rand(e, h, 2 * i, dtype=dtype, seed=4), rand(e, i, h, dtype=dtype, seed=5)
    args = [ms_(a) for a in (x, weights, ids, gate_up, down)]
    want = bridge.to_torch(kernels.moe_swiglu(*[ms_(a.float() if a.is_floating_point() else a)
                                                 for a in (x, weights, ids, gate_up, down)]))
    spec = ReferenceFusedOps()
    with kernels.using_fused_ops(spec):
        got = bridge.to_torch(kernels.moe_swiglu(*args))
    assert got.dtype == dtype and got.shape == (t, h)
    scale = want.abs().max().item()
    assert (got.float() - want).abs().max().item() <= 2 * TOL[dtype] * scale
    counts = [c for c in spec.recorder.calls if c.op == "grouped_matmul"][0].inputs["group_list"][3]
    assert counts == [4, 4, 4, 3, 3, 0]


def test_init_routing_sorts_rows_by_expert_and_unpermute_restores_them():
    x = torch.arange(4 * 3, dtype=torch.float32).reshape(4, 3)
    ids = torch.tensor([[2, 0], [0, 1], [2, 1], [1, 0]], dtype=torch.int32)
    spec = ReferenceFusedOps()
    sorted_x, row_idx, counts = (bridge.to_torch(o) for o in spec.moe_init_routing(ms_(x), ms_(ids), 3))
    assert counts.tolist() == [3, 3, 2] and counts.dtype == row_idx.dtype == torch.int32
    assert sorted_x[:, 0].tolist() == [0, 3, 9, 3, 6, 9, 0, 6]  # expert 0: tokens 0, 1, 3; 1: 1, 2, 3; 2: 0, 2
    assert torch.equal(sorted_x[row_idx.long()], x.repeat_interleave(2, 0))  # row_idx: where each (t, j) went
    probs = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 2.0], [1.0, 1.0]])
    out = bridge.to_torch(spec.moe_token_unpermute(ms_(sorted_x), ms_(row_idx), ms_(probs)))
    assert torch.equal(out, x * probs.sum(1, keepdim=True))


VIOLATIONS = {
    "gamma dtype": ("rms_norm", lambda: (rand(3, 8, dtype=torch.float16), rand(8), 1e-6), "gamma must have x's dtype"),
    "gamma length": ("rms_norm", lambda: (rand(3, 8), rand(4), 1e-6), "gamma must be [D]"),
    "add shapes": ("add_rms_norm", lambda: (rand(3, 8), rand(2, 8), rand(8), 1e-6), "x1 and x2 must share"),
    "int64 expert ids": ("moe_init_routing", lambda: (rand(3, 8), torch.zeros(3, 2, dtype=torch.int64), 4),
                         "expert_idx must be int32"),
    "expert id out of range": ("moe_init_routing", lambda: (rand(3, 8), torch.full((3, 2), 4, dtype=torch.int32), 4),
                               "expert ids must be in"),
    "int32 group list": ("grouped_matmul", lambda: (rand(6, 8), rand(3, 8, 4), torch.tensor([2, 2, 2], dtype=torch.int32)),
                         "group_list must be int64"),
    "counts do not sum to rows": ("grouped_matmul", lambda: (rand(6, 8), rand(3, 8, 4), torch.tensor([2, 2, 1])),
                                  "group counts must sum"),
    "weight K": ("grouped_matmul", lambda: (rand(6, 8), rand(3, 4, 8), torch.tensor([2, 2, 2])), "x's K must equal"),
    "int64 sorted indices": ("moe_token_unpermute", lambda: (rand(6, 8), torch.arange(6), rand(3, 2)),
                             "sorted_indices must be int32"),
    "probs dtype": ("moe_token_unpermute", lambda: (rand(6, 8), torch.arange(6, dtype=torch.int32),
                                                    rand(3, 2, dtype=torch.float16)), "probs must have"),
}


@pytest.mark.parametrize("what", VIOLATIONS)
def test_spec_rejects_violation(what):
    op, args, message = VIOLATIONS[what]
    with pytest.raises(ContractError, match=re.escape(message)):
        getattr(ReferenceFusedOps(), op)(*[ms_(a) if isinstance(a, torch.Tensor) else a for a in args()])


# ---- whole models through the spec, then every recorded call against the real primitives ----

PAGE = 128
PROMPTS = [[5, 17, 33, 2, 99, 100, 7, 8, 250, 11, 12], [40, 41, 42]]


@pytest.fixture(scope="module")
def model_runs(make_variant):
    """qwen3 (norms), qwen3-moe and deepseek-v3 (MoE) in fp16 through both specs, with the
    fallbacks as on the NPU: prefill, an extend over cached pages with a decode, decodes."""
    spec = ReferenceFusedOps()
    runs = {}
    saved = kernels.status
    kernels.status = lambda: {k: "fallback: as on the NPU" for k in kernels.KERNELS}
    try:
        with kernels.using_fused_ops(spec):
            for variant in ("qwen3", "qwen3-moe-unaligned", "deepseek-v3-ascend"):
                ckpt = make_variant(variant)
                runner = StandaloneRunner(str(ckpt), max_tokens=512, page_size=PAGE, dtype=torch.float16,
                                          make_pool=sglang_npu_pool,
                                          make_backend=lambda pool: AscendBackend(pool, ReferenceOps))
                seqs = [Sequence([]), Sequence([])]
                first = runner.step(seqs, [PROMPTS[0][:6], PROMPTS[1]])
                got = [[], [int(first[1].argmax())]]
                logits = runner.step(seqs, [PROMPTS[0][6:], got[1][-1:]])
                for _ in range(6):
                    nxt = logits.argmax(-1).tolist()
                    for out, t in zip(got, nxt):
                        out.append(t)
                    logits = runner.step(seqs, [[t] for t in nxt])
                runs[variant] = (ckpt, got)
    finally:
        kernels.status = saved
    return spec.recorder, runs


def test_models_through_the_fused_spec_give_hfs_greedy_tokens(model_runs):
    from transformers import AutoModelForCausalLM

    recorder, runs = model_runs
    for variant, (ckpt, got) in runs.items():
        hf = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32).eval()
        for i, prompt in enumerate(PROMPTS):
            assert got[i] == hf_greedy(hf, prompt, len(got[i])), f"{variant} prompt {i}"
    assert {c.op for c in recorder.calls} == set(OPS)


def replay(call) -> str:
    """One recorded call on the real primitive (scalars recorded as the provider's arguments)."""
    from test_ascend_contracts import ms_input, outcome_of

    inputs = {name: ms_input(spec) for name, spec in call.inputs.items()}
    return outcome_of(lambda: getattr(AscendFusedOps(), call.op)(**inputs, **call.provider))


def test_recorded_calls_pass_mindspore_inference(model_runs):
    recorder, _ = model_runs
    seen = set()
    for call in recorder.calls:
        key = (call.op, str(call.provider), tuple(sorted((k, str(v)[:200]) for k, v in call.inputs.items())))
        if key in seen:
            continue
        seen.add(key)
        want = NO_CPU_INFERENCE.get(call.op) or f"RuntimeError: The kernel {KERNEL[call.op]} unregistered."
        assert replay(call) == want, (call.op, call.inputs)


def test_a_wrong_call_fails_mindspore_inference_too():
    """The replay can fail: a K mismatch and int64 expert ids stop at MindSpore's inference."""
    spec = ReferenceFusedOps()
    with pytest.raises(ContractError):
        spec.grouped_matmul(ms_(rand(6, 8)), ms_(rand(3, 4, 8)), ms_(torch.tensor([2, 2, 2])))
    with pytest.raises(ContractError):
        spec.moe_init_routing(ms_(rand(3, 8)), ms_(torch.zeros(3, 2, dtype=torch.int64)), 4)
    outcomes = [replay(c) for c in spec.recorder.calls]
    assert outcomes[0].startswith("ValueError: For 'GroupedMatmulV4'"), outcomes
    assert outcomes[1].startswith("TypeError: For op [MoeInitRoutingV2], the dtype of input expert_idx"), outcomes


PINNED = {
    rms_norm: "(x, gamma, epsilon=1e-06)",
    add_rms_norm: "(x1, x2, gamma, epsilon=1e-06)",
    MoeInitRoutingV2.__call__: "(self, x, expert_idx, active_num, expert_capacity, expert_num, drop_pad_mode, "
                               "expert_tokens_count_or_cumsum_flag, expert_tokens_before_capacity_flag)",
    GroupedMatmulV4.__call__: "(self, x, weight, bias=None, scale=None, offset=None, antiquant_scale=None, "
                              "antiquant_offset=None, pre_token_scale=None, group_list=None, activation_input=None, "
                              "activation_quant_scale=None, activation_quant_offset=None, split_item=0, "
                              "group_type=-1, group_list_type=0, act_type=0, output_dtype=None)",
    MoeTokenUnpermute.__call__: "(self, permuted_tokens, sorted_indices, probs=None, padded_mode=False, "
                                "restore_shape=None)",
}


@pytest.mark.parametrize("fn", list(PINNED), ids=lambda f: f.__qualname__)
def test_signatures_are_pinned(fn):
    assert str(inspect.signature(fn)) == PINNED[fn]


def test_both_providers_have_the_same_interface():
    for method in OPS:
        assert inspect.signature(getattr(AscendFusedOps, method)) == \
            inspect.signature(getattr(ReferenceFusedOps, method)), method
