"""The MatMulNT kernel's paths side by side, per row count, on this CPU (no MindSpore launch cost).

    python benchmarks/probe_gemm.py [--lib build/.../libsglms_cpu_kernels.so] [--repeats 20]

For each (M, K, N) of a Qwen3-0.6B layer and its LM head, the row-dot loop, oneDNN's sgemm and
the AVX-512 register tiles (where the CPU has them) are timed on the same data (best of
--repeats, the paths interleaved within each repeat, cache-cold weights: the copies outsize
the L3, each repeat reads the next) and printed
with GB/s (weights read) and GFLOP/s. The kernel's thresholds (kTileMaxM, kRowDotMaxM in
kernels/cpu/matmul_nt.cc) come from where each path wins here.
Run it alone on the machine: the OpenMP kernels slow down several-fold when the cores are shared.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import time

import numpy as np

SHAPES = [(1024, 3072), (1024, 4096), (3072, 1024), (1024, 151936)]  # (K, N): qkv, gate_up, down, LM head
ROWS = [1, 2, 4, 8, 16, 32, 64, 128, 2048]


def main() -> None:
    import mindspore as ms

    from mindspore_models import kernels

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", default=str(kernels.library_path()))
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    lib = ctypes.CDLL(args.lib)
    dnnl = os.path.join(os.path.dirname(ms.__file__), "lib", "libdnnl.so.3")
    if lib.SglmsUseOneDnn(dnnl.encode()) != 0:
        raise SystemExit(f"cannot open oneDNN at {dnnl}")
    default = lib.SglmsRowDotMaxM(), lib.SglmsTileMaxM()
    paths = {"row-dot": (1 << 30, 0), "oneDNN": (0, 0)}  # path: (row-dot max M, tiles max M)
    if default[1] > 0:
        paths["tiles"] = (0, 1 << 30)
    else:
        print("this CPU has no AVX-512: the register-tile path is not measured")
    print(f"kernel defaults: row-dot max M = {default[0]}, tiles max M = {default[1]}; "
          f"OMP threads = {os.environ.get('OMP_NUM_THREADS', 'all')}")
    print(f"{'K':>5} {'N':>7} {'M':>4} | " + " | ".join(f"{p + ' ms':>11} {'GB/s':>6} {'GFLOP/s':>8}" for p in paths)
          + " | fastest")
    for k, n in SHAPES:
        # more copies than the L3 (300 MB here) holds, so each repeat streams its weights from memory
        copies = [np.random.rand(n, k).astype(np.float32) for _ in range(max(2, -(-400_000_000 // (n * k * 4))))]
        for m in ROWS:
            if m > 128 and n > 100_000:
                continue  # a 2048-row LM head is never computed (only the last token of each prompt is)
            x = np.random.rand(m, k).astype(np.float32)
            # paths interleaved within each repeat, so that a slow spell of the machine hits all of them
            runs = {p: v for p, v in paths.items() if not (p == "row-dot" and m > 128)}  # row-dot: minutes, loses long before
            times = {p: float("inf") for p in runs}
            order = list(runs)
            for r in range(args.repeats):
                order = order[1:] + order[:1]  # each path leads in turn
                for i, path in enumerate(order):
                    row_dot_m, tiles_m = runs[path]
                    w = copies[(r * len(order) + i) % len(copies)]  # a copy no other call just read
                    lib.SglmsSetRowDotMaxM(ctypes.c_int64(row_dot_m))
                    lib.SglmsSetTileMaxM(ctypes.c_int64(tiles_m))
                    y = np.empty((m, n), np.float32)
                    times[path] = min(times[path], _call(lib, x, w, y))
                    if r == 0:
                        np.testing.assert_allclose(y, x @ w.T, rtol=1e-3, atol=1e-2 * max(1, k / 1024))
            row = [f"{k:>5} {n:>7} {m:>4}"]
            for path in paths:
                t = times.get(path)
                if t is None:
                    row.append(f"{'-':>11} {'-':>6} {'-':>8}")
                    continue
                row.append(f"{t * 1e3:>11.2f} {n * k * 4 / t / 1e9:>6.1f} {2 * m * n * k / t / 1e9:>8.1f}")
            print(" | ".join(row) + f" | {min(times, key=times.get)}")
    lib.SglmsSetRowDotMaxM(ctypes.c_int64(default[0]))
    lib.SglmsSetTileMaxM(ctypes.c_int64(default[1]))


def _call(lib, x, w, y) -> float:
    params = (ctypes.c_void_p * 3)(x.ctypes.data, w.ctypes.data, y.ctypes.data)
    ndims = (ctypes.c_int * 3)(2, 2, 2)
    shapes = [(ctypes.c_int64 * 2)(*a.shape) for a in (x, w, y)]
    shape_ptrs = (ctypes.POINTER(ctypes.c_int64) * 3)(*[ctypes.cast(s, ctypes.POINTER(ctypes.c_int64)) for s in shapes])
    dtypes = (ctypes.c_char_p * 3)(b"float32", b"float32", b"float32")
    t = time.perf_counter()
    rc = lib.MatMulNT(3, params, ndims, shape_ptrs, dtypes, None, None)
    dt = time.perf_counter() - t
    if rc != 0:
        raise RuntimeError(f"MatMulNT returned {rc}")
    return dt


if __name__ == "__main__":
    main()
