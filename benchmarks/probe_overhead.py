"""What a compiled MindSpore graph costs per op and per step here, apart from the compute.

    python benchmarks/probe_overhead.py [--ops 200] [--steps 300] [--layers 28]

1. Per-op launch cost: graphs (ms.jit, dynamic shapes, as the model compiles) of --ops identical
   ops on a 1 x 64 tensor, so the compute is nil: MindSpore's own Add, the RmsNorm custom op,
   AddRmsNorm, and AddRmsNorm followed by an ops.depend node.
2. Fixed cost of a step: the standalone runner over a Qwen3-shaped model with --layers layers of
   hidden size 64 (same op count as Qwen3-0.6B, tiny weights), decode steps at batch 1 and 16.
Medians and minimums in one run; run it alone on the machine.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def time_calls(fn, n: int) -> list[float]:
    fn()  # compiles
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def op_costs(n_ops: int) -> None:
    import mindspore as ms
    from mindspore import nn, ops

    from mindspore_models import device, kernels

    device.init("cpu")
    if not kernels.active("AddRmsNorm"):
        raise SystemExit(f"the custom kernels are not loaded: {kernels.status()}")

    class Chain(nn.Cell):
        def __init__(self, step):
            super().__init__()
            self.step = step

        def construct(self, x, w):
            r = x
            for _ in range(n_ops):
                x, r = self.step(x, r, w)
            return x

    def add(x, r, w):
        return x + w, r

    def rms_norm(x, r, w):
        return kernels.rms_norm(x, w, 1e-6), r

    def add_rms_norm(x, r, w):
        return kernels.add_rms_norm(x, r, w, 1e-6)

    def add_rms_norm_depend(x, r, w):
        h, r = kernels.add_rms_norm(x, r, w, 1e-6)
        return h, ops.depend(r, h)

    x = ms.Tensor(np.random.rand(1, 64).astype(np.float32))
    w = ms.Tensor(np.ones(64, np.float32))
    print(f"per-op cost in a compiled dynamic-shape graph of {n_ops} ops on 1 x 64 (median / min, us):")
    for name, step in [("MindSpore Add", add), ("RmsNorm (custom)", rms_norm), ("AddRmsNorm (custom)", add_rms_norm),
                       ("AddRmsNorm + ops.depend", add_rms_norm_depend)]:
        net = Chain(step)
        net.set_inputs(ms.Tensor(shape=[None, 64], dtype=ms.float32), ms.Tensor(shape=[64], dtype=ms.float32))
        graph = ms.jit(net)
        ts = time_calls(lambda: graph(x, w).asnumpy(), 30)
        print(f"  {name:<26} {statistics.median(ts) / n_ops * 1e6:7.1f} / {min(ts) / n_ops * 1e6:7.1f}", flush=True)


def step_cost(layers: int, steps: int) -> None:
    from mindspore_models.runtime.standalone import Sequence, StandaloneRunner
    from mindspore_models.tools.make_tiny_checkpoint import make_qwen3

    shape = dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                 num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=4096,
                 rms_norm_eps=1e-6, rope_theta=1000000.0)
    with tempfile.TemporaryDirectory(prefix="probe-overhead-") as tmp:
        path = make_qwen3(Path(tmp) / "ckpt", shape=shape, layers=layers, init_std=0.02)
        print(f"fixed cost of a decode step, {layers} layers at hidden size 64 (median / min, ms):")
        for batch in (1, 16):
            runner = StandaloneRunner(str(path), max_tokens=batch * (160 + steps))
            seqs = [Sequence([]) for _ in range(batch)]
            runner.step(seqs, [[5] * 128 for _ in seqs])
            ts = time_calls(lambda: runner.step(seqs, [[11] for _ in seqs]), steps)
            print(f"  batch {batch:<3} {statistics.median(ts) * 1e3:7.2f} / {min(ts) * 1e3:7.2f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ops", type=int, default=200)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--layers", type=int, default=28)
    args = ap.parse_args()
    op_costs(args.ops)
    step_cost(args.layers, args.steps)


if __name__ == "__main__":
    main()
