"""The Ascend attention backend end to end on CPU: every architecture through the backend's
exact op calls, executed by the ops' executable spec (attention/reference.py), over SGLang's
real NPU pool classes, in fp16, compared with HF. Then every recorded call is replayed against
the real MindSpore 2.10 primitive, which must accept it (its CPU build ends in "kernel
unregistered" after shape/dtype inference).

What this proves: the backend's inputs (slots, block tables, lengths, masks, layouts, dtypes)
satisfy every documented op contract for prefill, decode, chunked extend and mixed batches,
and the arithmetic the contracts describe gives HF's tokens. What it cannot prove: that the
NPU kernels implement those contracts (see README, "Ascend NPU").
"""
import pytest
import torch
from conftest import hf_greedy

from mindspore_models.attention.ascend import AscendBackend
from mindspore_models.attention.pool import KVPool, sglang_npu_pool as npu_pool
from mindspore_models.attention.reference import ReferenceOps, Recorder
from mindspore_models.runtime.standalone import Sequence, StandaloneRunner

PAGE = 128
PROMPTS = [[5, 17, 33, 2, 99, 100, 7, 8, 250, 11, 12], [40, 41, 42], [7] * 23]
NEW_TOKENS = 8
FP16_ERROR_VS_HF_FP16 = 2.0  # our fp16 error (vs HF fp32) may be at most this many times HF fp16's own


@pytest.fixture
def recorder():
    return Recorder()


def ascend_runner(ckpt, recorder, page_size=PAGE):
    ops = lambda h, hkv, scale: ReferenceOps(h, hkv, scale, recorder)  # noqa: E731
    return StandaloneRunner(str(ckpt), max_tokens=512, page_size=page_size, dtype=torch.float16,
                            make_pool=npu_pool, make_backend=lambda pool: AscendBackend(pool, ops))


def hf_model(ckpt, dtype):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(ckpt, dtype=dtype).eval()


ASCEND_VARIANTS = ["qwen3", "llama-llama3-rope", "qwen2-tied", "qwen3-moe-unaligned", "deepseek-v3-ascend"]


@pytest.fixture(params=ASCEND_VARIANTS)
def checkpoint(request, make_variant):
    return make_variant(request.param)


def test_pool_layout_is_sglangs_npu_layout(checkpoint, recorder, fallbacks_only):
    runner = ascend_runner(checkpoint, recorder)
    pool = runner.pool
    assert pool.keys[0].dim() == 4 and pool.page_size == PAGE and pool.dtype == torch.float16
    if pool.mla:  # split latent | rope buffers, as NPUMLATokenToKVPool keeps them
        assert pool.keys[0].shape[1:] == (PAGE, 1, 512) and pool.values[0].shape[1:] == (PAGE, 1, 64)


def test_prefill_logits_match_hf_fp16(checkpoint, recorder, fallbacks_only):
    """fp16 logits as close to HF fp32 as HF's own fp16 run is (within FP16_ERROR_VS_HF_FP16 times)."""
    runner = ascend_runner(checkpoint, recorder)
    hf32, hf16 = hf_model(checkpoint, torch.float32), hf_model(checkpoint, torch.float16)
    for prompt in PROMPTS:
        with torch.no_grad():
            truth = hf32(torch.tensor([prompt])).logits[0]
            hf_error = (hf16(torch.tensor([prompt])).logits[0].float() - truth).abs().max().item()
        error = (runner.prefill_logits(prompt) - truth).abs().max().item()
        assert error <= FP16_ERROR_VS_HF_FP16 * hf_error, f"prompt len {len(prompt)}: {error} vs HF fp16 {hf_error}"
        assert error <= 1e-2 * truth.abs().max().item()
    assert {c.op for c in recorder.calls} >= {"reshape_and_cache"}


def test_greedy_with_decode_chunked_extend_and_mixed_batch(checkpoint, recorder, fallbacks_only):
    """Prefill, then decode, then an extend over cached pages mixed with decodes: HF's tokens."""
    runner = ascend_runner(checkpoint, recorder)
    hf = hf_model(checkpoint, torch.float32)
    seqs = [Sequence([]) for _ in PROMPTS]
    first = runner.step(seqs[:2], [PROMPTS[0][:6], PROMPTS[1]])  # prefill without prefix
    logits = runner.step(seqs, [PROMPTS[0][6:], [int(first[1].argmax())], PROMPTS[2]])  # extend + decode + prefill
    got = [[] for _ in PROMPTS]
    got[1].append(int(first[1].argmax()))
    for _ in range(NEW_TOKENS):
        nxt = logits.argmax(-1).tolist()
        for out, t in zip(got, nxt):
            out.append(t)
        logits = runner.step(seqs, [[t] for t in nxt])
    for i, prompt in enumerate(PROMPTS):
        want = hf_greedy(hf, prompt, NEW_TOKENS + (i == 1))[: len(got[i])]
        assert got[i] == want, f"prompt {i}"
    ops = {c.op for c in recorder.calls}
    assert ops >= ({"reshape_and_cache", "mla"} if runner.pool.mla
                   else {"reshape_and_cache", "flash_attention", "paged_attention"}), ops


def test_recorded_calls_pass_mindspore_inference(make_variant, recorder, fallbacks_only):
    """Replay one model's whole run (prefill, extend, decode) against the real primitives."""
    from test_ascend_contracts import ms_input, run_on_mindspore, unregistered

    for variant in ("qwen3", "deepseek-v3-ascend"):
        runner = ascend_runner(make_variant(variant), recorder)
        seqs = [Sequence([]), Sequence([])]
        runner.step(seqs, [PROMPTS[0], PROMPTS[1]])
        runner.step(seqs, [[3, 4], [5]])
        runner.step(seqs, [[6], [7]])
    seen = set()
    for call in recorder.calls:
        signature = (call.op, tuple(sorted((k, str(v)[:200]) for k, v in call.inputs.items())))
        if signature in seen:  # layers repeat the same call shapes
            continue
        seen.add(signature)
        inputs = {name: ms_input(spec) for name, spec in call.inputs.items()}
        assert run_on_mindspore(call.op, call.provider, inputs) == unregistered(call.op), call.op
    assert {c.op for c in recorder.calls} == {"reshape_and_cache", "flash_attention", "paged_attention", "mla"}


def test_pool_the_ops_cannot_use_is_an_error_at_load(make_variant, recorder):
    with pytest.raises(ValueError, match="float16 or bfloat16 KV pool"):
        AscendBackend(KVPool([torch.zeros(3, PAGE, 2, 32)], [torch.zeros(3, PAGE, 2, 32)], PAGE, mla=False))
    with pytest.raises(ValueError, match="multiple of 16"):
        AscendBackend(KVPool([torch.zeros(3, 8, 2, 32, dtype=torch.float16)] * 2, [torch.zeros(3, 8, 2, 32)] * 2,
                             8, mla=False))
    with pytest.raises(ValueError, match="kv_lora_rank 512"):
        runner_ckpt = make_variant("deepseek-v3-unaligned")  # latent 16: SGLang's NPU MLA pool, but not the mla op's
        ascend_runner(runner_ckpt, recorder)


def test_the_primitives_compile_and_the_spec_runs_pynative():
    """npu_smoke passes the AscendOps class: its NPU generation must run the compiled forward."""
    from mindspore_models.attention.ascend import real_ops
    from mindspore_models.attention.ascend_ops import AscendOps

    pool = KVPool([torch.zeros(3, PAGE, 2, 32, dtype=torch.float16)] * 2,
                  [torch.zeros(3, PAGE, 2, 32, dtype=torch.float16)] * 2, PAGE, mla=False)
    assert [AscendBackend(pool, ops).compiles for ops in (real_ops, AscendOps, ReferenceOps,
                                                          lambda *a: ReferenceOps(*a))] == [True, True, False, False]


def test_what_the_model_reads_on_device_is_a_parameter_place_parameters_moves(make_variant, recorder):
    """MLA's absorbed w_uk / w_uv included. Known exception: the rope cos/sin tables (shared
    MindSpore Tensors, constants of the compiled graph; README, "What does not work yet")."""
    import mindspore as ms

    model = ascend_runner(make_variant("deepseek-v3-ascend"), recorder).model
    params = {p.name for p in model.get_parameters()}
    assert {f"model.layers.0.self_attn.kv_b_proj.weight.{w}" for w in ("w_uk", "w_uv")} <= params
    plain = [f"{name}.{attr}" for name, cell in model.cells_and_names() for attr, v in vars(cell).items()
             if isinstance(v, ms.Tensor) and not isinstance(v, ms.Parameter)]
    assert plain and all(p.endswith(("rotary.cos", "rotary.sin")) for p in plain), plain


# ---- bf16 and fp16 at the backend level: every step kind, one layer, against float64 attention ----
# MindSpore's CPU kernels cannot run a bf16 model (Gather, MatMul), so bf16 is checked here, on
# the backend's own step (masks, lengths, tables) and the reference ops, which compute in fp32
# from the 16-bit storage; the whole bf16 model is checked by tests/test_ascend_graph.py.

STEP_KINDS = [  # (name, per request: (cached tokens, new tokens)); requests a, b, c
    ("prefill", [(0, 5), (0, 130)]),
    ("extend over cached pages", [(5, 4), (130, 0)]),
    ("mixed decode + extend + new", [(9, 1), (130, 1), (0, 3)]),
    ("decode", [(10, 1), (131, 1), (3, 1)]),
]


def run_step_kinds(dtype, mla: bool):
    """Drives one attention layer of the backend through STEP_KINDS; yields (kind, got, want)."""
    from types import SimpleNamespace

    import numpy as np

    from mindspore_models import bridge, device
    from mindspore_models.attention.plan import StepPlan
    from mindspore_models.layers.attention import AttentionSpec

    device.current()  # MindSpore's device is chosen before its first op
    heads, kv_heads, dim = (16, 1, 576) if mla else (8, 2, 64)
    cfg = SimpleNamespace(num_layers=1, num_kv_heads=kv_heads, head_dim=dim,
                          mla=SimpleNamespace(kv_lora_rank=512, qk_rope_head_dim=64) if mla else None)
    backend = AscendBackend(npu_pool(cfg, 6 * PAGE, PAGE, dtype), lambda h, hkv, s: ReferenceOps(h, hkv, s))
    spec = AttentionSpec(0, heads, kv_heads, dim, dim ** -0.5, latent=512 if mla else None)
    layer = backend.attention(spec)
    pages = {0: [1], 1: [2, 3], 2: [4]}
    history = {0: [], 1: [], 2: []}  # per request: (k, v) rows written so far, float64
    g = torch.Generator().manual_seed(0)
    for kind, requests in STEP_KINDS:
        live = [(r, cached, new) for r, (cached, new) in enumerate(requests) if new]
        q_lens = torch.tensor([new for _, _, new in live])
        seq_lens = torch.tensor([cached + new for _, cached, new in live])
        table = torch.zeros(len(live), int(seq_lens.max()), dtype=torch.int64)
        for i, (r, _, _) in enumerate(live):
            slots = [p * PAGE + o for p in pages[r] for o in range(PAGE)][: table.shape[1]]
            table[i, : len(slots)] = torch.tensor(slots)  # the rest: padding slot 0, as SGLang's table
        positions = torch.cat([torch.arange(cached, cached + new) for _, cached, new in live])
        new_slots = torch.cat([table[i, cached:cached + new] for i, (_, cached, new) in enumerate(live)])
        plan = StepPlan.build(seq_lens, q_lens, table, positions, new_slots, PAGE)
        t = int(q_lens.sum())
        rand = lambda *s: torch.randn(*s, generator=g).to(dtype)  # noqa: E731
        q = rand(t, heads, dim)
        if mla:
            entry = rand(t, 1, dim)
            out = layer(bridge.to_ms(q), bridge.to_ms(entry), backend.prepare(plan))
            k, v = entry, entry[..., :512]
        else:
            k, v = rand(t, kv_heads, dim), rand(t, kv_heads, dim)
            out = layer(bridge.to_ms(q), bridge.to_ms(k), bridge.to_ms(v), backend.prepare(plan))
        got = bridge.to_torch(out).double().reshape(t, heads, -1)
        want, row = [], 0
        for r, cached, new in live:
            for j in range(new):
                history[r].append((k[row + j].double(), v[row + j].double()))
            keys = torch.stack([kk for kk, _ in history[r]])  # [S, Hkv, D]
            values = torch.stack([vv for _, vv in history[r]])
            for j in range(new):
                seen = cached + j + 1
                qq = q[row + j].double().reshape(kv_heads, heads // kv_heads, dim)
                scores = torch.einsum("hgd,shd->hgs", qq, keys[:seen]) * dim ** -0.5
                want.append(torch.einsum("hgs,shd->hgd", scores.softmax(-1), values[:seen]).reshape(heads, -1))
            row += new
        yield kind, got, torch.stack(want)


@pytest.mark.parametrize("mla", [False, True], ids=["mha", "mla"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_every_step_kind_in_16_bit(dtype, mla):
    """Fails on a mask that crosses through numpy (bf16) and on a bf16 mask value the glue does not use."""
    tol = 3e-2 if dtype == torch.bfloat16 else 4e-3
    kinds = []
    for kind, got, want in run_step_kinds(dtype, mla):
        err = (got - want).abs().max().item()
        assert err <= tol * max(1.0, want.abs().max().item()), f"{kind}: max error {err}"
        kinds.append(kind)
    assert kinds == [k for k, _ in STEP_KINDS]
