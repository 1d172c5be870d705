"""Prefill and decode throughput of a Qwen3-0.6B-shaped model (random weights) on this CPU.

Side by side, in one run, on one checkpoint, each implementation in its own process:
  mindspore        patched SGLang engine, --model-impl mindspore (this project)
  native           patched SGLang engine, SGLang's own torch model (--model-impl sglang)
  hf               HF transformers generate()
  mindspore-model  the MindSpore model alone (standalone runner, no scheduler): decode steps only

    python benchmarks/bench_qwen3.py [--layers 28] [--prompt-len 128] [--decode-tokens 16] [--batches 1 16]
                                     [--repeats 2] [--rounds 2]

prefill tok/s = batch*prompt_len / time(generate 1 token)
decode tok/s  = tokens generated after every request had its first one / the time they took, from the
                arrival times of a streamed generation of 1+decode_tokens tokens (SGLang: the engine's
                batched stream; HF: a generate() streamer). Subtracting two whole generations' times
                instead carried the prefill's noise into decode: at batch 16 the prefill is 2/3 of
                the time and varies by +-10% between identical runs here.
Each measurement is the best of --repeats runs with fresh random prompts (no radix-cache hits).
The implementations run in turn, --rounds times (one process each per round), and each cell is
the best over the rounds: this machine has slow and fast spells lasting minutes, so one pass
would hand each implementation whatever spell it ran in. Every round's numbers are printed too.
The machine's read bandwidth and fp32 GEMM peak are measured each round (best kept); each row is printed as a
share of its roofline (decode: the weights read once per step; prefill: 2 FLOP per parameter
per token). A row is marked BUSY when other processes used more than 10% of a core meanwhile.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TARGETS = [  # (label, impl, other impl, batch, phase, minimum ratio): issue 9's goals
    ("decode b1 >= 1.5x native", "mindspore", "native", 1, "decode", 1.5),
    ("decode b1 >= 1.0x hf", "mindspore", "hf", 1, "decode", 1.0),
    ("decode b16 >= 1.5x hf", "mindspore", "hf", 16, "decode", 1.5),
    ("decode b16 >= 2x native", "mindspore", "native", 16, "decode", 2.0),
    ("prefill b1 >= 1.0x hf", "mindspore", "hf", 1, "prefill", 1.0),
    ("prefill b16 >= 1.0x hf", "mindspore", "hf", 16, "prefill", 1.0),
]


def prompts(batch: int, length: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(10, 150000) for _ in range(length)] for _ in range(batch)]


class CpuWatch:
    """CPU seconds used by the whole machine vs by this process tree, and the tree's peak RSS."""

    def __init__(self):
        import psutil

        self.psutil, self.me = psutil, psutil.Process()
        self.peak_rss, self._stop = 0, threading.Event()
        threading.Thread(target=self._sample_rss, daemon=True).start()

    def _tree(self):
        return [self.me, *self.me.children(recursive=True)]

    def _sample_rss(self):
        while not self._stop.wait(0.2):
            try:
                self.peak_rss = max(self.peak_rss, sum(p.memory_info().rss for p in self._tree()))
            except self.psutil.Error:
                pass

    def cpu(self) -> tuple[float, float]:
        busy = self.psutil.cpu_times()
        machine = busy.user + busy.system + busy.nice + getattr(busy, "irq", 0) + getattr(busy, "softirq", 0)
        mine = 0.0
        for p in self._tree():
            try:
                t = p.cpu_times()
                mine += t.user + t.system
            except self.psutil.Error:
                pass
        return machine, mine + self.me.cpu_times().children_user + self.me.cpu_times().children_system


class EngineBench:
    def __init__(self, path: Path, impl: str, max_total_tokens: int):
        import sglang as sgl

        self.step_log = None
        if impl == "mindspore":  # the scheduler process logs each step and its compiled-graph count
            self.step_log = path.parent / "engine-steps.jsonl"  # removed with the checkpoint's folder
            os.environ["SGLMS_BATCH_LOG"] = str(self.step_log)

        self.engine = sgl.Engine(model_path=str(path), model_impl=impl, device="cpu", attention_backend="torch_native",
                                 dtype="float32", disable_cuda_graph=True, disable_radix_cache=True,
                                 max_total_tokens=max_total_tokens, log_level="error", skip_tokenizer_init=True)

    def generate(self, ids, new_tokens: int, stream: bool = False):
        return self.engine.generate(input_ids=ids, stream=stream, sampling_params={
            "temperature": 0, "max_new_tokens": new_tokens, "ignore_eos": True})

    def timed(self, ids, new_tokens: int) -> float:
        t = time.perf_counter()
        self.generate(ids, new_tokens)
        return time.perf_counter() - t

    def graph(self) -> dict | None:
        """Compiled graphs and compile time over every step the engine ran (its step log)."""
        if self.step_log is None or not self.step_log.exists():
            return None
        steps = [json.loads(line) for line in self.step_log.read_text().splitlines()]
        return {"compiles": steps[-1]["graphs_compiled"], "seconds": steps[-1]["compile_seconds"], "steps": len(steps),
                "model_share": self.model_share(steps)}

    @staticmethod
    def model_share(steps) -> dict:
        """Per decode batch size: the model forward's share of a decode step (step = start to next start)."""
        shares = {}
        for a, b in zip(steps, steps[1:]):
            if a["mode"] == b["mode"] == "DECODE" and len(a["q_lens"]) == len(b["q_lens"]) and b["prev_forward_s"]:
                shares.setdefault(len(a["q_lens"]), []).append(b["prev_forward_s"] / (b["t"] - a["t"]))
        return {batch: sorted(s)[len(s) // 2] for batch, s in shares.items()}  # median

    def decode_rate(self, ids, new_tokens: int) -> float:
        arrivals = DecodeClock(len(ids))
        for chunk in self.generate(ids, new_tokens, stream=True):
            arrivals.saw(chunk["index"], chunk["meta_info"]["completion_tokens"])
        return arrivals.rate(new_tokens)

    def close(self):
        self.engine.shutdown()


class DecodeClock:
    """Decode throughput from token arrival times: the tokens that arrived after every request had
    its first token (the prefill), over the time from that moment to the last arrival."""

    def __init__(self, requests: int, clock=time.perf_counter):
        self.counts, self.start, self.start_count, self.end = [0] * requests, None, 0, None
        self.clock = clock

    def saw(self, request: int, tokens_so_far: int) -> None:
        now = self.clock()
        self.counts[request] = max(self.counts[request], tokens_so_far)
        if self.start is None and min(self.counts) >= 1:
            self.start, self.start_count = now, sum(self.counts)
        self.end = now

    def rate(self, new_tokens: int) -> float:
        if self.counts != [new_tokens] * len(self.counts):
            raise RuntimeError(f"streamed {self.counts} tokens per request, expected {new_tokens} each")
        if self.start is None or self.end <= self.start:
            raise RuntimeError("the stream gave no decode tokens after the prefill")
        return (sum(self.counts) - self.start_count) / (self.end - self.start)


class HFBench:
    def __init__(self, path: Path, *_):
        import torch
        from transformers import AutoModelForCausalLM

        self.torch = torch
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()

    def generate(self, x, new_tokens: int, streamer=None) -> None:
        with self.torch.no_grad():
            self.model.generate(x, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                                streamer=streamer)

    def timed(self, ids, new_tokens: int) -> float:
        x = self.torch.tensor(ids)
        t = time.perf_counter()
        self.generate(x, new_tokens)
        return time.perf_counter() - t

    def decode_rate(self, ids, new_tokens: int) -> float:
        from transformers.generation.streamers import BaseStreamer

        arrivals = DecodeClock(len(ids))

        class Clock(BaseStreamer):
            puts = 0

            def put(self, value):  # first call: the prompt; then one call per step with [batch] new ids
                if self.puts:
                    for i in range(len(ids)):
                        arrivals.saw(i, self.puts)
                self.puts += 1

            def end(self):
                pass

        self.generate(self.torch.tensor(ids), new_tokens, streamer=Clock())
        return arrivals.rate(new_tokens)

    def close(self):
        pass


class ModelOnlyBench:
    """The MindSpore model without SGLang's scheduler: only decode steps are timed."""

    def __init__(self, path: Path, *_):
        self.path = path
        self.compiles, self.compile_seconds, self.steps = 0, 0.0, 0

    def graph(self) -> dict | None:
        return {"compiles": self.compiles, "seconds": round(self.compile_seconds, 2), "steps": self.steps}

    def decode_step_seconds(self, batch: int, prompt_len: int, steps: int, seed: int) -> float:
        from mindspore_models.runtime.standalone import Sequence, StandaloneRunner
        from mindspore_models.runtime.step import CompiledForward

        runner = StandaloneRunner(str(self.path), max_tokens=batch * (prompt_len + steps + 1))
        seqs = [Sequence([]) for _ in range(batch)]
        runner.step(seqs, prompts(batch, prompt_len, seed))
        best = float("inf")
        for _ in range(steps):
            t = time.perf_counter()
            runner.step(seqs, [[11] for _ in seqs])
            best = min(best, time.perf_counter() - t)
        self.steps += steps + 1
        if isinstance(runner.run, CompiledForward):  # one runner (and graph) per batch size here
            self.compiles += runner.run.compiles
            self.compile_seconds += runner.run.compile_seconds
        return best


def measure(bench, batch: int, args, seed: int) -> tuple[float, float]:
    bench.timed(prompts(batch, 8, seed), 2)  # warm up
    pre = min(bench.timed(prompts(batch, args.prompt_len, seed + r), 1) for r in range(args.repeats))
    decode = max(bench.decode_rate(prompts(batch, args.prompt_len, seed + 100 + r), 1 + args.decode_tokens)
                 for r in range(args.repeats))
    return batch * args.prompt_len / pre, decode


def worker(args) -> None:
    """One implementation in this process; prints one JSON line."""
    watch = CpuWatch()
    path, impl = Path(args.ckpt), args.worker
    rows = {}
    if impl == "mindspore-model":
        bench = ModelOnlyBench(path)
        for b in args.batches:
            t, (m0, c0) = time.perf_counter(), watch.cpu()
            step = bench.decode_step_seconds(b, args.prompt_len, args.decode_tokens, seed=b)
            (m1, c1), t = watch.cpu(), time.perf_counter() - t
            rows[b] = dict(prefill=None, decode=b / step, others=(m1 - m0) - (c1 - c0), seconds=t)
        graph = bench.graph()
    else:
        cls = HFBench if impl == "hf" else EngineBench
        bench = cls(path, "sglang" if impl == "native" else impl, args.max_total_tokens)
        try:
            for b in args.batches:
                t, (m0, c0) = time.perf_counter(), watch.cpu()
                p, d = measure(bench, b, args, seed=b)
                (m1, c1), t = watch.cpu(), time.perf_counter() - t
                rows[b] = dict(prefill=p, decode=d, others=(m1 - m0) - (c1 - c0), seconds=t)
        finally:
            graph = bench.graph() if isinstance(bench, EngineBench) else None
            bench.close()
    print("RESULT " + json.dumps({"rows": rows, "peak_rss": watch.peak_rss, "graph": graph}), flush=True)


def machine_roofline() -> tuple[float, float]:
    """(read bandwidth bytes/s, fp32 GEMM FLOP/s), best of 3, measured here."""
    import torch

    a = torch.ones(128 * 2**20)  # 512 MiB, summed by all of torch's threads
    bw = max(a.numel() * 4 / _seconds(lambda: a.sum()) for _ in range(3))
    x = torch.randn(2048, 2048)
    flops = max(2 * 2048**3 / _seconds(lambda: x @ x) for _ in range(3))
    return bw, flops


def _seconds(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def run_worker(impl: str, ckpt: Path, args) -> dict:
    cmd = [sys.executable, __file__, "--worker", impl, "--ckpt", str(ckpt), "--batches", *map(str, args.batches),
           "--prompt-len", str(args.prompt_len), "--decode-tokens", str(args.decode_tokens),
           "--repeats", str(args.repeats), "--max-total-tokens", str(args.max_total_tokens)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"[{impl}] failed:\n{out.stderr[-3000:]}")
    data = json.loads(line.removeprefix("RESULT "))
    data["rows"] = {int(b): r for b, r in data["rows"].items()}
    return data


def param_count(layers: int) -> int:
    """Parameters every token multiplies (decoder layers + LM head; embedding rows are only gathered)."""
    from mindspore_models.tools.make_tiny_checkpoint import QWEN3_0_6B as s

    h, i, d, v = s["hidden_size"], s["intermediate_size"], s["head_dim"], s["vocab_size"]
    attn = h * d * (s["num_attention_heads"] * 2 + s["num_key_value_heads"] * 2)
    return layers * (attn + 3 * h * i) + v * h


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=28, help="num_hidden_layers (Qwen3-0.6B has 28)")
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--decode-tokens", type=int, default=16)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2, help="passes over all implementations; best per cell")
    ap.add_argument("--max-total-tokens", type=int, default=16384, help="KV pool size (same for both engines)")
    ap.add_argument("--impls", nargs="+", default=["mindspore", "native", "hf", "mindspore-model"],
                    choices=["mindspore", "native", "hf", "mindspore-model"])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--ckpt", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)

    from mindspore_models.tools.make_tiny_checkpoint import QWEN3_0_6B, make_qwen3

    bw = flops = 0.0
    with tempfile.TemporaryDirectory(prefix="bench-qwen3-") as tmp:  # 28 layers: ~2.9 GB, gone on any exit
        print(f"building a Qwen3-0.6B-shaped checkpoint with {args.layers} layers in {tmp} ...", flush=True)
        path = make_qwen3(Path(tmp) / "ckpt", shape=QWEN3_0_6B, layers=args.layers, init_std=0.02)
        results = {}
        for r in range(1, args.rounds + 1):
            round_bw, round_flops = machine_roofline()
            bw, flops = max(bw, round_bw), max(flops, round_flops)
            print(f"round {r}/{args.rounds}: machine read {round_bw / 1e9:.1f} GB/s, fp32 GEMM "
                  f"{round_flops / 1e9:.0f} GFLOP/s (torch, {os.cpu_count()} cores)", flush=True)
            for impl in args.impls:
                data = run_worker(impl, path, args)
                print(f"  [{impl}] own process: " + "; ".join(
                    f"b{b} prefill {fmt(row['prefill'])} decode {fmt(row['decode'])} tok/s"
                    for b, row in data["rows"].items()), flush=True)
                results[impl] = merge_rounds(results.get(impl), data)
    print_table(results, args, bw, flops, param_count(args.layers))


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def merge_rounds(best: dict | None, new: dict) -> dict:
    """Per cell, the faster of two rounds; BUSY if either round's row was; the higher peak RSS;
    graph counts summed over rounds (a recompile in any round shows)."""
    if best is None:
        return new
    for b, row in new["rows"].items():
        old = best["rows"].setdefault(b, row)
        for phase in ("prefill", "decode"):
            if row[phase] is not None and (old[phase] is None or row[phase] > old[phase]):
                old[phase] = row[phase]
        old["others"], old["seconds"] = max(old["others"], row["others"]), min(old["seconds"], row["seconds"])
    best["peak_rss"] = max(best["peak_rss"], new["peak_rss"])
    if best.get("graph") and new.get("graph"):
        graph, g = best["graph"], new["graph"]
        graph["compiles"] += g["compiles"]
        graph["seconds"] = round(graph["seconds"] + g["seconds"], 2)
        graph["steps"] += g["steps"]
        graph["model_share"] = g.get("model_share") or graph.get("model_share")
        graph["rounds"] = graph.get("rounds", 1) + 1
    return best


def roofline(phase: str, batch: int, params: int, bw: float, flops: float) -> float:
    compute = flops / (2 * params)  # tokens/s if GEMMs ran at the peak
    if phase == "prefill":
        return compute
    return min(batch * bw / (4 * params), compute)  # decode: fp32 weights read once per step


def print_table(results, args, bw, flops, params) -> None:
    print(f"\nQwen3-0.6B shape, {args.layers} layers ({params / 1e6:.0f}M params in GEMMs), fp32, prompt {args.prompt_len}, "
          f"decode {args.decode_tokens} tokens; machine read {bw / 1e9:.1f} GB/s, GEMM {flops / 1e9:.0f} GFLOP/s")
    base = results.get("mindspore", {}).get("rows", {})
    print("| impl | batch | prefill tok/s | decode tok/s | prefill vs mindspore | decode vs mindspore "
          "| prefill % roofline | decode % roofline | peak RSS |")
    print("|---|---|---|---|---|---|---|---|---|")
    for impl, data in results.items():
        for b, r in data["rows"].items():
            cells = [impl + (" BUSY" if r["others"] > 0.1 * r["seconds"] else ""), str(b)]
            for phase in ("prefill", "decode"):
                cells.append("-" if r[phase] is None else f"{r[phase]:.1f}")
            for phase in ("prefill", "decode"):
                ours = base.get(b, {}).get(phase)
                cells.append(f"{r[phase] / ours:.2f}x" if r[phase] and ours else "-")
            for phase in ("prefill", "decode"):
                cells.append("-" if r[phase] is None else f"{100 * r[phase] / roofline(phase, b, params, bw, flops):.0f}%")
            cells.append(f"{data['peak_rss'] / 2**30:.2f} GiB")
            print("| " + " | ".join(cells) + " |")
    print("\nissue 9 targets (ratios from this run):")
    for label, impl, other, b, phase, need in TARGETS:
        try:
            ratio = results[impl]["rows"][b][phase] / results[other]["rows"][b][phase]
            print(f"  {'PASS' if ratio >= need else 'FAIL'}  {label}: {ratio:.2f}x")
        except (KeyError, TypeError, ZeroDivisionError):
            print(f"  n/a   {label}: not measured")
    if "mindspore" in results and "native" in results:
        ratio = results["mindspore"]["peak_rss"] / results["native"]["peak_rss"]
        print(f"  {'PASS' if ratio <= 1.1 else 'FAIL'}  peak RSS mindspore <= native + 10%: {ratio:.2f}x")
    model_b1 = results.get("mindspore-model", {}).get("rows", {}).get(1, {}).get("decode")
    if model_b1:
        share = model_b1 / roofline("decode", 1, params, bw, flops)
        print(f"  {'PASS' if share >= 0.85 else 'FAIL'}  model-only decode b1 >= 85% of the bandwidth roofline: {100 * share:.0f}%")
    for impl in ("mindspore", "mindspore-model"):
        graph = results.get(impl, {}).get("graph")
        if graph and graph["compiles"] is not None:
            per = "engine" if impl == "mindspore" else f"{len(args.batches)} runners, one per batch size"
            rounds = graph.get("rounds", 1)
            each = graph["seconds"] / graph["compiles"] if graph["compiles"] else 0.0
            print(f"  graph mode [{impl}]: {graph['compiles']} graph(s) compiled in {graph['seconds']} s, "
                  f"{each:.2f} s per graph (target < 5 s), then {graph['steps']} steps without a recompile "
                  f"({per}; {rounds} round(s), one process each)")
        if graph and graph.get("model_share"):
            shares = ", ".join(f"batch {b}: {100 * s:.0f}%" for b, s in sorted(graph["model_share"].items(), key=lambda x: int(x[0])))
            print(f"  engine decode step = model forward + SGLang's own work; the forward's median share: {shares}")
        if graph and graph["compiles"] is None:
            print(f"  graph mode [{impl}]: off (PyNative: SGLMS_GRAPH=0 or a backend that does not compile)")


if __name__ == "__main__":
    main()
