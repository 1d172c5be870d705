"""Prefill and decode throughput of a Qwen3-0.6B-shaped model (random weights) on this CPU.

Side by side, in one run, on one checkpoint:
  mindspore  patched SGLang engine, --model-impl mindspore (this project)
  native     patched SGLang engine, SGLang's own torch model (--model-impl sglang)
  hf         HF transformers generate()

    python benchmarks/bench_qwen3.py [--layers 28] [--prompt-len 128] [--decode-tokens 16] [--batches 1 16]

prefill tok/s = batch*prompt_len / time(generate 1 token)
decode tok/s  = batch*decode_tokens / (time(generate 1+decode_tokens) - time(generate 1 token))
Each measurement is the best of --repeats runs with fresh random prompts (no radix-cache hits).
"""
from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path


def prompts(batch: int, length: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(10, 150000) for _ in range(length)] for _ in range(batch)]


class EngineBench:
    def __init__(self, path: Path, impl: str):
        import sglang as sgl

        self.engine = sgl.Engine(model_path=str(path), model_impl=impl, device="cpu", attention_backend="torch_native",
                                 dtype="float32", disable_cuda_graph=True, disable_radix_cache=True,
                                 max_total_tokens=16384, log_level="error", skip_tokenizer_init=True)

    def timed(self, ids, new_tokens: int) -> float:
        t = time.perf_counter()
        self.engine.generate(input_ids=ids, sampling_params={"temperature": 0, "max_new_tokens": new_tokens,
                                                              "ignore_eos": True})
        return time.perf_counter() - t

    def close(self):
        self.engine.shutdown()


class HFBench:
    def __init__(self, path: Path):
        import torch
        from transformers import AutoModelForCausalLM

        self.torch = torch
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()

    def timed(self, ids, new_tokens: int) -> float:
        x = self.torch.tensor(ids)
        t = time.perf_counter()
        with self.torch.no_grad():
            self.model.generate(x, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
        return time.perf_counter() - t

    def close(self):
        pass


def measure(bench, batch: int, args, seed: int) -> tuple[float, float]:
    bench.timed(prompts(batch, 8, seed), 2)  # warm up
    pre = min(bench.timed(prompts(batch, args.prompt_len, seed + r), 1) for r in range(args.repeats))
    full = min(bench.timed(prompts(batch, args.prompt_len, seed + 100 + r), 1 + args.decode_tokens)
               for r in range(args.repeats))
    prefill = batch * args.prompt_len / pre
    decode = batch * args.decode_tokens / max(full - pre, 1e-9)
    return prefill, decode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=28, help="num_hidden_layers (Qwen3-0.6B has 28)")
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--decode-tokens", type=int, default=16)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--impls", nargs="+", default=["mindspore", "native", "hf"], choices=["mindspore", "native", "hf"])
    args = ap.parse_args()

    from mindspore_models import kernels
    from mindspore_models.tools.make_tiny_checkpoint import QWEN3_0_6B, make_qwen3

    tmp = Path(tempfile.mkdtemp(prefix="bench-qwen3-"))
    print(f"building a Qwen3-0.6B-shaped checkpoint with {args.layers} layers in {tmp} ...", flush=True)
    path = make_qwen3(tmp / "ckpt", shape=QWEN3_0_6B, layers=args.layers, init_std=0.02)
    results: dict[str, dict[int, tuple[float, float]]] = {}
    for impl in args.impls:
        print(f"[{impl}] starting ...", flush=True)
        bench = HFBench(path) if impl == "hf" else EngineBench(path, "sglang" if impl == "native" else impl)
        try:
            results[impl] = {b: measure(bench, b, args, seed=b) for b in args.batches}
        finally:
            bench.close()
        for b, (p, d) in results[impl].items():
            print(f"[{impl}] batch {b}: prefill {p:.1f} tok/s, decode {d:.1f} tok/s", flush=True)
    print_table(results, args)
    print(f"kernels: {kernels.status()}")


def print_table(results, args) -> None:
    print(f"\nQwen3-0.6B shape, {args.layers} layers, fp32, prompt {args.prompt_len}, decode {args.decode_tokens} tokens")
    base = results.get("mindspore")
    print("| impl | batch | prefill tok/s | decode tok/s | prefill vs mindspore | decode vs mindspore |")
    print("|---|---|---|---|---|---|")
    for impl, rows in results.items():
        for b, (p, d) in rows.items():
            rp = f"{p / base[b][0]:.2f}x" if base else "-"
            rd = f"{d / base[b][1]:.2f}x" if base else "-"
            print(f"| {impl} | {b} | {p:.1f} | {d:.1f} | {rp} | {rd} |")


if __name__ == "__main__":
    main()
