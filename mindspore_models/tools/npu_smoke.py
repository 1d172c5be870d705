"""Smoke test for an Ascend (Atlas) host: NEVER run in CI, there is no NPU there.

    python -m mindspore_models.tools.npu_smoke [--server] [--dtype float16|bfloat16]
    python -m mindspore_models.tools.npu_smoke --cpu-reference [--dtype ...]   # the script itself, on CPU

It first sets what SGLang sets before a MindSpore model runs (device.init("npu"): the anchors'
kernel-selection environment, infer_boost on, jit_level O0) and prints it.
1. Each Ascend op the backend calls, on the device, against its executable spec
   (attention/reference.py) on the same inputs: outputs and in-place cache writes; PagedAttention
   both for decode and with a lookahead mask (several new tokens per request), MLA included; then
   the fused norms and MoE ops (fused_ops/) against theirs.
2. Greedy generation of a tiny Qwen3 and a tiny DeepSeek-V3 (MLA + MoE) through the Ascend backend over
   SGLang's NPU pool classes, judged by HF transformers on the host (check_generation). On the NPU the
   forward runs compiled, one graph per phase; the row says how many graphs were compiled.
3. With --server: one chat request to `python -m sglang.launch_server --device npu
   --model-impl mindspore` on the tiny Qwen3.
Prints one row per check (PASS, FAIL, or SKIP where only an NPU can run it) and exits non-zero if
any failed. `--cpu-reference` runs steps 1-2 with the spec standing in for the device, to check
the script's own plumbing; in bf16 the generations are SKIP (MindSpore's CPU kernels cannot
compute a bf16 model).
"""
from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from mindspore_models import bridge, device

PAGE = 128
PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
# MindSpore's mla op takes kv_lora_rank 512, rope dim 64 and a multiple of 16 heads
MLA_CHECKPOINT = dict(kv_lora_rank=512, qk_rope_head_dim=64, num_attention_heads=16, num_key_value_heads=16,
                      hidden_size=96, rope_scaling="yarn")


def op_cases(dtype: torch.dtype) -> dict:
    """row label -> (op, provider args, call kwargs with torch tensors); small GQA shapes, 2 requests,
    in the conventions the backend uses (attention/conventions.py)."""
    from mindspore_models.attention import conventions

    g = torch.Generator().manual_seed(0)
    rand = lambda *s: (torch.randn(*s, generator=g) * 0.5).to(dtype)  # noqa: E731
    i32 = lambda v: torch.tensor(v, dtype=torch.int32)  # noqa: E731
    kc, vc = rand(4, PAGE, 2, 64), rand(4, PAGE, 2, 64)
    tables, ctx = i32([[1, 2], [3, 0]]), i32([140, 5])
    lookahead = conventions.paged_mask(i32([137, 138, 139, 3, 4]), [3, 2], [140, 5], dtype)
    return {
        "reshape_and_cache": ("reshape_and_cache", (8, 2, 1.0), dict(
            key=rand(3, 128), value=rand(3, 128), key_cache=kc.clone(), value_cache=vc.clone(),
            slot_mapping=i32([130, 131, 389]))),
        "paged_attention decode": ("paged_attention", (8, 2, 0.125), dict(
            query=rand(2, 8 * 64), key_cache=kc, value_cache=vc, block_tables=tables, context_lens=ctx,
            q_seq_lens=i32([1, 1]), attn_mask=torch.zeros(1, 1, dtype=dtype))),
        "paged_attention lookahead": ("paged_attention", (8, 2, 0.125), dict(
            query=rand(5, 8 * 64), key_cache=kc, value_cache=vc, block_tables=tables, context_lens=ctx,
            q_seq_lens=i32([3, 2]), attn_mask=lookahead)),
        "flash_attention": ("flash_attention", (8, 2, 0.125), dict(
            query=rand(7, 8 * 64), key=rand(7, 2 * 64), value=rand(7, 2 * 64),
            attn_mask=conventions.prefill_mask(dtype), actual_seq_qlen=i32([4, 3]), actual_seq_kvlen=i32([4, 3]))),
        "mla": ("mla", (16, 1, 0.1), dict(
            query=rand(2, 16, 512), q_rope=rand(2, 16, 64), kv_cache=rand(4, PAGE, 1, 512),
            k_rope=rand(4, PAGE, 1, 64), block_tables=tables, context_lens=ctx, q_seq_lens=i32([1, 1]))),
    }


def fused_cases(dtype: torch.dtype) -> dict:
    """row label -> (op, (), kwargs) for the fused ops (fused_ops/): norms, and MoE's three ops on
    one routing (5 tokens, top-2 of 4 experts, expert 3 unused)."""
    from mindspore_models.fused_ops.reference import ReferenceFusedOps

    g = torch.Generator().manual_seed(1)
    rand = lambda *s: (torch.randn(*s, generator=g) * 0.5).to(dtype)  # noqa: E731
    x, ids = rand(5, 64), torch.tensor([[0, 2], [1, 2], [2, 0], [1, 0], [0, 1]], dtype=torch.int32)
    sorted_x, row_idx, counts = (bridge.to_torch(t) for t in
                                 ReferenceFusedOps().moe_init_routing(bridge.to_ms(x), bridge.to_ms(ids), 4))
    return {
        "rms_norm": ("rms_norm", (), dict(x=rand(5, 64), gamma=rand(64) + 1, epsilon=1e-6)),
        "add_rms_norm": ("add_rms_norm", (), dict(x1=rand(5, 64), x2=rand(5, 64), gamma=rand(64) + 1, epsilon=1e-6)),
        "moe_init_routing": ("moe_init_routing", (), dict(x=x, expert_idx=ids, expert_num=4)),
        "grouped_matmul": ("grouped_matmul", (), dict(x=sorted_x, weight=rand(4, 64, 32), group_list=counts.long())),
        "moe_token_unpermute": ("moe_token_unpermute", (), dict(
            permuted_tokens=sorted_x, sorted_indices=row_idx, probs=rand(5, 2).abs())),
    }


def on_device(t: torch.Tensor) -> torch.Tensor:
    """A copy where the ops run: the NPU (so in-place cache writes land in device memory), or the host."""
    if device.current() == "npu":  # NOT run in CI
        import torch_npu  # noqa: F401  (registers the npu device)

        return t.clone().to("npu")
    return t.clone()


def run_op(provider, op: str, kwargs: dict):
    """Run one op on MindSpore copies of the inputs; returns (its outputs, the inputs after the call)."""
    ms_kwargs = {k: bridge.to_ms(on_device(v)) if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
    out = getattr(provider, op)(**ms_kwargs)
    after = {k: bridge.to_torch(v).cpu() for k, v in ms_kwargs.items() if hasattr(v, "asnumpy")}
    outs = [] if out is None else list(out) if isinstance(out, tuple) else [out]
    return [bridge.to_torch(o).float().cpu() for o in outs], after


def check_ops(make_device_ops, make_device_fused, dtype) -> list[tuple[str, str, str]]:
    from mindspore_models.attention.reference import ReferenceOps
    from mindspore_models.fused_ops.reference import ReferenceFusedOps

    cases = [(label, make_device_ops, ReferenceOps, case) for label, case in op_cases(dtype).items()]
    cases += [(label, make_device_fused, ReferenceFusedOps, case) for label, case in fused_cases(dtype).items()]
    rows = []
    for label, make_device, make_spec, (op, args, kwargs) in cases:
        try:
            got, got_in = run_op(make_device(*args), op, kwargs)
            want, want_in = run_op(make_spec(*args), op, copy.deepcopy(kwargs))
            if op == "reshape_and_cache":  # its output only orders later reads; the caches are compared
                got = want = []
            diff = max([0.0] + [(a - b).abs().max().item() for a, b in zip(got, want)])
            diff = max([diff] + [(got_in[k].float() - want_in[k].float()).abs().max().item() for k in want_in])
            rows.append((f"op {label}", PASS if diff < 2e-2 else FAIL, f"max abs diff {diff:.2e}"))
        except Exception as e:  # noqa: BLE001 (a table row per failure)
            rows.append((f"op {label}", FAIL, f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"))
    return rows


def npu_pool_here(cfg, slots: int, page_size: int, dtype: torch.dtype):
    from mindspore_models.attention.pool import sglang_npu_pool

    return sglang_npu_pool(cfg, slots, page_size, dtype, "cpu" if device.current() == "cpu" else "npu")


NEAR_TIE_FACTOR = 1.0  # a token may trail HF fp32's best by at most HF's own 16-bit logit error (times this)


def check_generation(ckpt: Path, make_device_ops, dtype) -> tuple[str, str, str]:
    """Greedy tokens of a tiny model through the Ascend backend, judged by HF transformers in fp32
    along our own tokens: each must be HF's best or trail it by at most NEAR_TIE_FACTOR times HF's
    own error in the same dtype (random tiny models have near-ties that 16-bit noise flips; a
    wrong cache or mask puts tokens far behind). On the NPU the forward runs compiled (one graph
    per phase); with the spec standing in on CPU it runs PyNative."""
    from transformers import AutoModelForCausalLM

    from mindspore_models.attention.ascend import AscendBackend
    from mindspore_models.runtime.standalone import StandaloneRunner
    from mindspore_models.runtime.step import CompiledForward

    name = f"tiny {ckpt.name} greedy vs HF"
    if device.current() == "cpu" and dtype == torch.bfloat16:
        return (name, SKIP, "NPU only: MindSpore's CPU kernels cannot compute a bf16 model (Gather, MatMul)")
    prompt, n = [5, 17, 33, 2, 99, 100, 7, 8], 8
    try:
        runner = StandaloneRunner(str(ckpt), max_tokens=256, page_size=PAGE, dtype=dtype, make_pool=npu_pool_here,
                                  make_backend=lambda pool: AscendBackend(pool, make_device_ops))
        got = runner.greedy([prompt], n)[0]
        ours = torch.tensor([prompt + got])
        with torch.no_grad():
            hf32, hf16 = (AutoModelForCausalLM.from_pretrained(ckpt, dtype=d).eval() for d in (torch.float32, dtype))
            want = hf32.generate(torch.tensor([prompt]), max_new_tokens=n, do_sample=False,
                                 min_new_tokens=n)[0, len(prompt):].tolist()
            at = slice(len(prompt) - 1, -1)  # the logits that chose each generated token
            l32, l16 = hf32(ours).logits[0, at], hf16(ours).logits[0, at].float()
        gap = (l32.max(-1).values - l32.gather(-1, torch.tensor(got)[:, None])[:, 0]).max().item()
        noise = (l16 - l32).abs().max().item()
        run = runner.run
        how = (f"compiled, {run.compiles} graph(s) in {run.compile_seconds:.1f} s" if isinstance(run, CompiledForward)
               else "PyNative")
        ok = got == want or gap <= NEAR_TIE_FACTOR * noise
        return (name, PASS if ok else FAIL, f"{how}; got {got}, HF fp32 {want}; worst gap to HF fp32's best "
                f"{gap:.3f} (HF {str(dtype)[6:]} error {noise:.3f})")
    except Exception as e:  # noqa: BLE001
        return (name, FAIL, f"{type(e).__name__}: {str(e).splitlines()[0][:120]}")


def check_server(ckpt: Path, dtype: str) -> tuple[str, str, str]:
    import requests

    port = 30517
    cmd = [sys.executable, "-m", "sglang.launch_server", "--model-path", str(ckpt), "--model-impl", "mindspore",
           "--device", "npu", "--dtype", dtype, "--page-size", str(PAGE), "--port", str(port)]
    proc = subprocess.Popen(cmd)
    try:
        for _ in range(600):
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(1)
        r = requests.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=120,
                          json={"model": "default", "max_tokens": 8,
                                "messages": [{"role": "user", "content": "Hello"}]})
        return ("server chat request", PASS if r.ok else FAIL, f"HTTP {r.status_code}: {r.text[:100]}")
    except Exception as e:  # noqa: BLE001
        return ("server chat request", FAIL, f"{type(e).__name__}: {e}")
    finally:
        proc.terminate()
        proc.wait(60)


def context_lines() -> list[str]:
    """The MindSpore context this run reproduces: what to send back with the table."""
    import mindspore as ms

    env = device.set_ascend_kernel_env() if device.current() == "npu" else {
        k: os.environ.get(k, f"(unset; {v} on npu)") for k, v in device.ASCEND_KERNEL_ENV.items()}
    lines = [f"{k}={v}" for k, v in env.items()]
    lines.append("context: " + ", ".join(f"{k}={ms.get_context(k)!r}" for k in device.ASCEND_CONTEXT))
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu-reference", action="store_true", help="run on CPU with the spec standing in for the NPU")
    ap.add_argument("--dtype", choices=["float16", "bfloat16"], default="float16")
    ap.add_argument("--server", action="store_true", help="also start launch_server --device npu and send a request")
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype)
    if args.cpu_reference:  # the layers' pure-MindSpore paths, as on the NPU (the CPU kernels are fp32 host code)
        os.environ["SGLMS_DISABLE_KERNELS"] = "1"
    device.init("cpu" if args.cpu_reference else "npu")  # npu: the kernel-selection env and SGLang's context
    from mindspore_models import kernels

    if args.cpu_reference:
        from mindspore_models.attention.reference import ReferenceOps as device_ops
        from mindspore_models.fused_ops.reference import ReferenceFusedOps as device_fused
    else:  # NOT run in CI: needs an Ascend NPU and CANN
        from mindspore_models.attention.ascend_ops import AscendOps as device_ops
        from mindspore_models.fused_ops.ascend import AscendFusedOps as device_fused
    from mindspore_models.tools.make_tiny_checkpoint import make_checkpoint

    folder = Path(tempfile.mkdtemp())
    ckpts = [make_checkpoint(folder / "qwen3", "qwen3"),
             make_checkpoint(folder / "deepseek-v3-mla", "deepseek_v3", **MLA_CHECKPOINT)]
    rows = check_ops(device_ops, device_fused, dtype)
    with kernels.using_fused_ops(device_fused()):  # on the NPU what kernels.fused_ops() picks anyway
        rows += [check_generation(c, device_ops, dtype) for c in ckpts]
    if args.server and not args.cpu_reference:
        rows.append(check_server(ckpts[0], args.dtype))
    print("\n".join(context_lines()))
    width = max(len(name) for name, _, _ in rows)
    print(f"{'check':<{width}}  result  detail")
    for name, result, detail in rows:
        print(f"{name:<{width}}  {result:<6}  {detail}")
    if args.cpu_reference:
        print("CPU reference: the spec stood in for the NPU, so no row above says anything about Ascend kernels.")
    else:
        print("Send back this whole output (the environment lines included) with the host's CANN and MindSpore versions.")
    sys.exit(0 if all(result != FAIL for _, result, _ in rows) else 1)


if __name__ == "__main__":
    main()
