"""Smoke test for an Ascend (Atlas) host: NEVER run in CI, there is no NPU there.

    python -m mindspore_models.tools.npu_smoke [--server] [--dtype float16|bfloat16]
    python -m mindspore_models.tools.npu_smoke --cpu-reference      # the script itself, on CPU

1. Each Ascend op the backend calls, on the device, against its executable spec
   (attention/reference.py) on the same inputs: outputs and in-place cache writes.
2. One tiny-model generation through the Ascend backend over SGLang's NPU pool class, against
   HF transformers' greedy tokens on the host.
3. With --server: one chat request to `python -m sglang.launch_server --device npu
   --model-impl mindspore` on the tiny model.
Prints one table row per check and exits non-zero if any failed. `--cpu-reference` runs steps
1-2 with the spec standing in for the device, to check the script's own plumbing.
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


def op_cases(dtype: torch.dtype) -> dict:
    """op name -> (provider args, call kwargs with torch tensors); small GQA shapes, 2 requests."""
    g = torch.Generator().manual_seed(0)
    rand = lambda *s: (torch.randn(*s, generator=g) * 0.5).to(dtype)  # noqa: E731
    i32 = lambda v: torch.tensor(v, dtype=torch.int32)  # noqa: E731
    kc, vc = rand(4, PAGE, 2, 64), rand(4, PAGE, 2, 64)
    tables, ctx = i32([[1, 2], [3, 0]]), i32([140, 5])
    return {
        "reshape_and_cache": ((8, 2, 1.0), dict(key=rand(3, 128), value=rand(3, 128), key_cache=kc.clone(),
                                                  value_cache=vc.clone(), slot_mapping=i32([130, 131, 389]))),
        "paged_attention": ((8, 2, 0.125), dict(query=rand(2, 8, 64), key_cache=kc, value_cache=vc,
                                                 block_tables=tables, context_lens=ctx)),
        "flash_attention": ((8, 2, 0.125), dict(query=rand(7, 8, 64), key=rand(7, 2, 64), value=rand(7, 2, 64),
                                                 actual_seq_qlen=[4, 7], actual_seq_kvlen=[4, 7])),
        "mla": ((16, 1, 0.1), dict(query=rand(2, 16, 512), q_rope=rand(2, 16, 64), kv_cache=rand(4, PAGE, 1, 512),
                                   k_rope=rand(4, PAGE, 1, 64), block_tables=tables, context_lens=ctx,
                                   q_seq_lens=i32([1, 1]))),
    }


def on_device(t: torch.Tensor) -> torch.Tensor:
    """A copy where the ops run: the NPU (so in-place cache writes land in device memory), or the host."""
    if device.current() == "npu":  # NOT run in CI
        import torch_npu  # noqa: F401  (registers the npu device)

        return t.clone().to("npu")
    return t.clone()


def run_op(provider, op: str, kwargs: dict):
    """Run one op on MindSpore copies of the inputs; returns (output, the inputs after the call)."""
    ms_kwargs = {k: bridge.to_ms(on_device(v)) if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
    out = getattr(provider, op)(**ms_kwargs)
    after = {k: bridge.to_torch(v).cpu() for k, v in ms_kwargs.items() if hasattr(v, "asnumpy")}
    return (None if out is None else bridge.to_torch(out).float().cpu()), after


def check_ops(make_device_ops, dtype) -> list[tuple[str, bool, str]]:
    from mindspore_models.attention.reference import ReferenceOps

    rows = []
    for op, (args, kwargs) in op_cases(dtype).items():
        try:
            got, got_in = run_op(make_device_ops(*args), op, kwargs)
            want, want_in = run_op(ReferenceOps(*args), op, copy.deepcopy(kwargs))
            diff = 0.0 if got is None else (got - want).abs().max().item()
            diff = max([diff] + [(got_in[k].float() - want_in[k].float()).abs().max().item() for k in want_in])
            rows.append((f"op {op}", diff < 2e-2, f"max abs diff {diff:.2e}"))
        except Exception as e:  # noqa: BLE001 (a table row per failure)
            rows.append((f"op {op}", False, f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"))
    return rows


def npu_pool_here(cfg, slots: int, page_size: int, dtype: torch.dtype):
    from mindspore_models.attention.pool import sglang_npu_pool

    return sglang_npu_pool(cfg, slots, page_size, dtype, "cpu" if device.current() == "cpu" else "npu")


def check_generation(ckpt: Path, make_device_ops, dtype) -> tuple[str, bool, str]:
    from transformers import AutoModelForCausalLM

    from mindspore_models.attention.ascend import AscendBackend
    from mindspore_models.runtime.standalone import StandaloneRunner

    prompt, n = [5, 17, 33, 2, 99, 100, 7, 8], 8
    try:
        runner = StandaloneRunner(str(ckpt), max_tokens=256, page_size=PAGE, dtype=dtype, make_pool=npu_pool_here,
                                  make_backend=lambda pool: AscendBackend(pool, make_device_ops))
        got = runner.greedy([prompt], n)[0]
        hf = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32).eval()
        with torch.no_grad():
            want = hf.generate(torch.tensor([prompt]), max_new_tokens=n, do_sample=False,
                               min_new_tokens=n)[0, len(prompt):].tolist()
        return ("tiny Qwen3 greedy vs HF", got == want, f"got {got}, HF {want}")
    except Exception as e:  # noqa: BLE001
        return ("tiny Qwen3 greedy vs HF", False, f"{type(e).__name__}: {str(e).splitlines()[0][:120]}")


def check_server(ckpt: Path, dtype: str) -> tuple[str, bool, str]:
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
        return ("server chat request", r.ok, f"HTTP {r.status_code}: {r.text[:100]}")
    except Exception as e:  # noqa: BLE001
        return ("server chat request", False, f"{type(e).__name__}: {e}")
    finally:
        proc.terminate()
        proc.wait(60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu-reference", action="store_true", help="run on CPU with the spec standing in for the NPU")
    ap.add_argument("--dtype", choices=["float16", "bfloat16"], default="float16")
    ap.add_argument("--server", action="store_true", help="also start launch_server --device npu and send a request")
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype)
    if args.cpu_reference:  # the layers' pure-MindSpore paths, as on the NPU (the CPU kernels are fp32 host code)
        os.environ["SGLMS_DISABLE_KERNELS"] = "1"
    device.init("cpu" if args.cpu_reference else "npu")
    if args.cpu_reference:
        from mindspore_models.attention.reference import ReferenceOps as device_ops
    else:  # NOT run in CI: needs an Ascend NPU and CANN
        from mindspore_models.attention.ascend_ops import AscendOps as device_ops
    from mindspore_models.tools.make_tiny_checkpoint import make_checkpoint

    ckpt = make_checkpoint(Path(tempfile.mkdtemp()) / "tiny-qwen3", "qwen3")
    rows = check_ops(device_ops, dtype) + [check_generation(ckpt, device_ops, dtype)]
    if args.server and not args.cpu_reference:
        rows.append(check_server(ckpt, args.dtype))
    width = max(len(name) for name, _, _ in rows)
    print(f"{'check':<{width}}  result  detail")
    for name, ok, detail in rows:
        print(f"{name:<{width}}  {'PASS' if ok else 'FAIL':<6}  {detail}")
    sys.exit(0 if all(ok for _, ok, _ in rows) else 1)


if __name__ == "__main__":
    main()
