"""Decode attention's two paths side by side: the AVX-512 register path and the portable loop.

    python benchmarks/probe_attention.py [--batch 16] [--keys 150] [--repeats 20] [--lib PATH]

Calls the PagedAttention kernel directly (no MindSpore launch cost) for one decode step of a
Qwen3-0.6B-shaped model: --batch query tokens, 16 query heads over 8 KV heads of 128, about
--keys keys per request, 28 layers with a KV pool each (together larger than the L3, as in the
engine), and slots laid out as SGLang hands them out (each prompt's rows contiguous, then decode
rows interleaved across the batch). The two paths (SglmsSetDecodeSimd) alternate within each
repeat; prints per-step milliseconds (all 28 layers), min and median, and checks that both paths
agree. Run it alone on the machine.
"""
from __future__ import annotations

import argparse
import ctypes
import time

import numpy as np

LAYERS, HQ, HKV, D = 28, 16, 8, 128
DTYPES = [b"float32", b"int64", b"int32", b"int32", b"int32", b"int32", b"float32", b"float32", b"float32",
          b"float32"]


class Step:
    """One decode step's PagedAttention arguments for every layer."""

    def __init__(self, batch: int, keys: int, prompt: int = 128):
        rng = np.random.default_rng(0)
        prompt = min(prompt, keys)
        self.S = keys + batch  # the table's width
        decode_rows = self.S - prompt
        rows = batch * self.S + 1
        self.pools = [(rng.standard_normal((rows, HKV, D), dtype=np.float32),
                       rng.standard_normal((rows, HKV, D), dtype=np.float32)) for _ in range(LAYERS)]
        self.refs = [np.array([k.ctypes.data, v.ctypes.data, rows, HKV], np.int64) for k, v in self.pools]
        self.slots = np.zeros((batch, self.S), np.int32)
        for b in range(batch):
            self.slots[b, :prompt] = b * prompt + np.arange(prompt)
            self.slots[b, prompt:] = batch * prompt + b + batch * np.arange(decode_rows)
        self.seq = (keys + np.arange(batch) % 8).astype(np.int32)
        self.q = rng.standard_normal((batch, HQ, D), dtype=np.float32)
        self.rest = [np.arange(batch, dtype=np.int32), np.ones(batch, np.int32), np.array([D ** -0.5], np.float32),
                     np.zeros(1, np.float32), np.zeros(1, np.float32)]
        self.out = np.zeros((batch, HQ * D), np.float32)

    def run(self, lib, layer: int) -> None:
        arrays = [self.q, self.refs[layer], self.slots, self.seq, *self.rest, self.out]
        params = (ctypes.c_void_p * 10)(*[a.ctypes.data for a in arrays])
        ndims = (ctypes.c_int * 10)(*[a.ndim for a in arrays])
        dims = [(ctypes.c_int64 * a.ndim)(*a.shape) for a in arrays]
        shapes = (ctypes.POINTER(ctypes.c_int64) * 10)(*[ctypes.cast(d, ctypes.POINTER(ctypes.c_int64)) for d in dims])
        rc = lib.PagedAttention(10, params, ndims, shapes, (ctypes.c_char_p * 10)(*DTYPES), None, None)
        if rc != 0:
            raise SystemExit(f"PagedAttention returned {rc}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", help="kernel library (default: the one mindspore_models loads)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--keys", type=int, default=150)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    if args.lib is None:
        from mindspore_models import kernels

        args.lib = str(kernels.library_path())
    lib = ctypes.CDLL(args.lib)
    default = lib.SglmsDecodeSimd()
    paths = {"avx512": 1, "portable": 0}
    step = Step(args.batch, args.keys)
    outs = {}
    for name, on in paths.items():
        lib.SglmsSetDecodeSimd(on)
        step.run(lib, 0)
        outs[name] = step.out.copy()
    diff = float(np.abs(outs["avx512"] - outs["portable"]).max())
    times = {name: [] for name in paths}
    for _ in range(args.repeats):
        for name, on in paths.items():  # alternated, so a slow spell of the machine hits both
            lib.SglmsSetDecodeSimd(on)
            t = time.perf_counter()
            for layer in range(LAYERS):
                step.run(lib, layer)
            times[name].append(1e3 * (time.perf_counter() - t))
    lib.SglmsSetDecodeSimd(default)
    print(f"decode attention, batch {args.batch}, ~{args.keys} keys, {HQ}/{HKV} heads x {D}, {LAYERS} layers; "
          f"paths agree to {diff:.1e}")
    for name, t in times.items():
        t.sort()
        print(f"  {name:8s} min {t[0]:6.1f} ms  median {t[len(t) // 2]:6.1f} ms per step")
    if diff > 1e-4:
        raise SystemExit("the two paths disagree")


if __name__ == "__main__":
    main()
