"""Custom CPU kernels (kernels/cpu, built by CMake into the wheel) and their pure-MindSpore fallbacks.

Each kernel has one wrapper here. On NPU the norms and MoE go to MindSpore's fused Ascend ops
instead (`fused_ops()`: fused_ops/ascend.py). Which implementation is active is decided once, logged
once, and printable with `python -m mindspore_models.kernels`. On CPU a missing library stops model
load with one line saying where it was looked for and how to get it: the fallbacks are several
times slower, so they run only when asked for (SGLMS_DISABLE_KERNELS=1).
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import mindspore as ms
import numpy as np
import torch
from mindspore import mint, ops

from mindspore_models import bridge, device

logger = logging.getLogger(__name__)
LIB_NAME = "libsglms_cpu_kernels.so"


class KernelLibraryMissing(RuntimeError):
    """No custom CPU kernel library where one was looked for, and the fallbacks were not asked for."""


def library_candidates() -> list[Path]:
    """Where the library is looked for, in order: SGLMS_KERNELS_LIB alone if set; else the wheel's
    copy, then (in a source checkout) the one the by-hand CMake build, and `pip wheel .`, write."""
    env = os.environ.get("SGLMS_KERNELS_LIB")
    if env:
        return [Path(env)]
    package = Path(__file__).resolve().parent
    found = [package / "_lib" / LIB_NAME]
    root = package.parent
    if (root / "CMakeLists.txt").is_file() and (root / "kernels" / "cpu").is_dir():
        found.append(root / "build" / "kernels" / "kernels" / "cpu" / LIB_NAME)
    return found


def library_path() -> Path | None:
    return next((p for p in library_candidates() if p.is_file()), None)


@functools.cache
def status() -> dict[str, str]:
    """Kernel name -> 'custom: PATH' or 'fallback: WHY'."""
    if not device.uses_custom_cpu_kernels():
        why = "disabled (SGLMS_DISABLE_KERNELS=1)" if device.current() == "cpu" else f"device {device.current()}"
        return {k: f"fallback: {why}" for k in KERNELS}
    path = library_path()
    if path is None:
        looked = ", ".join(map(str, library_candidates()))
        raise KernelLibraryMissing(
            f"custom CPU kernel library {LIB_NAME} not found (looked in: {looked}). Install the wheel and run "
            "from outside the source tree, or build it here with `cmake -S . -B build/kernels "
            "-DCMAKE_BUILD_TYPE=Release && cmake --build build/kernels`, or set SGLMS_KERNELS_LIB=PATH; "
            "SGLMS_DISABLE_KERNELS=1 serves with the pure-MindSpore fallbacks instead (several times slower)")
    logger.info("custom CPU kernels from %s", path)
    names = _kernel_list(path)
    found = {k: f"custom: {path}" if k in names else f"fallback: not in {path}" for k in KERNELS}
    if "MatMulNT" in names:
        tiles = ctypes.CDLL(str(path)).SglmsTileMaxM()
        small = f"M <= {tiles}: AVX-512 register tiles; " if tiles > 0 else "no AVX-512 tiles on this CPU; "
        found["MatMulNT"] += f" ({small}larger M: {_use_onednn(path)})"
    return found


def _use_onednn(path: Path) -> str:
    """Points the GEMM kernel at the oneDNN inside the MindSpore wheel (its large-M path)."""
    dnnl = Path(ms.__file__).parent / "lib" / "libdnnl.so.3"
    if ctypes.CDLL(str(path)).SglmsUseOneDnn(str(dnnl).encode()) == 0:
        return f"oneDNN {dnnl}"
    msg = f"oneDNN not usable at {dnnl}; every row count runs the row-dot path"
    if os.environ.get("SGLMS_REQUIRE_KERNELS") == "1":
        raise RuntimeError(msg)
    logger.warning(msg)
    return f"row-dot ({msg})"


def active(name: str) -> bool:
    return status()[name].startswith("custom")


def _kernel_list(path: Path) -> list[str]:
    lib = ctypes.CDLL(str(path))
    lib.SglmsKernelList.restype = ctypes.c_char_p
    return lib.SglmsKernelList().decode().split(",")


def log_status() -> None:
    for name, how in status().items():
        logger.info("MindSpore kernel %s -> %s", name, how)


@dataclass(eq=False)  # hashed by identity: one pool buffer, one wrapper
class KVBuffer:
    """One layer's K or V buffer of SGLang's pool, seen from MindSpore without a copy."""

    torch_view: torch.Tensor  # keeps the pool's storage alive for as long as MindSpore uses it
    view: ms.Tensor  # (slots, heads, head_dim), same memory
    ref: ms.Tensor  # int64 {address, rows}: how the custom kernel reaches the live buffer
    checked: bool = False  # the first write's dtype and row shape were checked
    pair: tuple | None = None  # (V buffer, PagedAttention's pool reference), see _pair_ref

    @classmethod
    def wrap(cls, t: torch.Tensor) -> "KVBuffer":
        if not t.is_contiguous():
            raise ValueError("KV buffer must be contiguous to be shared with MindSpore")
        return cls(t, bridge.to_ms(t), ms.Tensor([t.data_ptr(), t.shape[0]], ms.int64))


KERNELS = ("KvCacheWrite", "PagedAttention", "RmsNorm", "AddRmsNorm", "RopeNeox", "RmsNormRope", "QkNormRopeCache", "MatMulNT", "SiluMul", "MoeSwiGLU")


def _same_as_first(first, *_):
    return first


def _int32(*_):
    return ms.int32


@functools.cache
def op(name: str):
    """The MindSpore custom op for one kernel, built once (construction costs ~1 ms). Output shapes
    come from the library's C++ `{name}InferShape` (kernels/cpu/infer_shapes.cc), which also works
    in compiled graphs with dynamic shapes; the output dtype is the first input's (KvCacheWrite:
    int32). Graph mode looks the op up by `reg_op_name`."""
    dtype = _int32 if name == "KvCacheWrite" else _same_as_first
    custom = ops.Custom(f"{library_path()}:{name}", out_shape=None, out_dtype=dtype, func_type="aot")
    custom.add_prim_attr("reg_op_name", name)
    return custom


def kv_cache_write(buf: KVBuffer, slots: ms.Tensor, values: ms.Tensor, runs: list[tuple[int, int, int]]) -> ms.Tensor:
    """buf[slots[i]] = values[i]. Returns a tensor that readers of the pool take as an input,
    so that they run after the write (the rows-written count, or the fallback's buffer view).

    `runs` are the same slots as (dst_start, src_start, length) contiguous runs, for the fallback.
    """
    if not buf.checked:
        if values.dtype != buf.view.dtype or tuple(values.shape[1:]) != tuple(buf.view.shape[1:]):
            raise ValueError(f"KV write of {values.dtype}{tuple(values.shape)} into cache "
                             f"{buf.view.dtype}{tuple(buf.view.shape)}: dtype or row shape differs")
        buf.checked = True  # the model's K/V rows keep their dtype and shape from step to step
    if active("KvCacheWrite"):
        return op("KvCacheWrite")(buf.ref, slots, values)
    return kv_cache_write_fallback(buf, values, runs)


def pair_ref(k: KVBuffer, v: KVBuffer) -> ms.Tensor:
    """int64 {k_addr, v_addr, rows, heads}, kept on the K buffer (not in a global cache, which
    would keep discarded pools alive)."""
    if k.pair is None or k.pair[0] is not v:
        if k.torch_view.shape != v.torch_view.shape:
            raise ValueError(f"K pool {tuple(k.torch_view.shape)} and V pool {tuple(v.torch_view.shape)} differ")
        rows, heads = k.torch_view.shape[:2]
        k.pair = (v, ms.Tensor([k.torch_view.data_ptr(), v.torch_view.data_ptr(), rows, heads], ms.int64))
    return k.pair[1]


@functools.cache
def _scalar(value: float) -> ms.Tensor:
    return ms.Tensor([value], ms.float32)


def pool_view(buf: KVBuffer, after: ms.Tensor) -> ms.Tensor:
    """The pool as a MindSpore tensor, ordered after `after` (a KV write). MindSpore copies
    a DLPack-shared tensor into each op that reads it: fallback paths only."""
    return ops.depend(buf.view, after)


_fused_override = None


def fused_ops():
    """Where norms and MoE go when no custom CPU kernel takes them: MindSpore's fused Ascend ops on
    NPU (fused_ops/ascend.py), a provider a test or the graph check installs (`using_fused_ops`:
    the executable spec, or the primitives to compile), else None (the pure-MindSpore fallbacks)."""
    if _fused_override is not None:
        return _fused_override
    return _ascend_fused_ops() if device.current() == "npu" else None


@functools.cache
def _ascend_fused_ops():
    from mindspore_models.fused_ops.ascend import AscendFusedOps  # NOT exercised here: needs an NPU

    return AscendFusedOps()


@contextlib.contextmanager
def using_fused_ops(provider):
    """Route norms and MoE to `provider` (ReferenceFusedOps or AscendFusedOps) while models are built and run."""
    global _fused_override
    previous, _fused_override = _fused_override, provider
    try:
        yield provider
    finally:
        _fused_override = previous


def rms_norm(x: ms.Tensor, weight: ms.Tensor, eps: float) -> ms.Tensor:
    if active("RmsNorm"):
        return op("RmsNorm")(x, weight, _scalar(eps))
    fused = fused_ops()
    if fused is not None:
        return fused.rms_norm(x, weight, eps)
    x32 = x if x.dtype == ms.float32 else x.astype(ms.float32)  # accumulate in fp32, as HF does
    var = mint.mean(x32 * x32, -1, keepdim=True)
    return (x32 * mint.rsqrt(var + eps)).astype(x.dtype) * weight


def add_rms_norm(delta: ms.Tensor, residual: ms.Tensor, weight: ms.Tensor, eps: float) -> tuple[ms.Tensor, ms.Tensor]:
    """The pre-norm residual step: residual' = residual + delta; returns (rms_norm(residual'), residual').

    On CPU one op adds in place into `residual`'s memory (an AOT op infers one output), so the
    returned residual' is that same tensor. It must be MindSpore's own tensor, not one shared from
    torch by DLPack (tp > 1 collectives return those): MindSpore hands an AOT op a private copy of
    such an input, and the sum would be lost. Read it only in ops that also (transitively) take
    `normed`, which orders them after the write, as the decoder's next residual step does (its delta
    comes from the sublayer over `normed`). Not ops.depend: a Depend node costs ~0.1 ms per call in
    a compiled dynamic-shape graph here, more than the fusion saves."""
    if active("AddRmsNorm"):
        return op("AddRmsNorm")(delta, residual, weight, _scalar(eps)), residual
    fused = fused_ops()
    if fused is not None:
        return fused.add_rms_norm(delta, residual, weight, eps)
    residual = residual + delta
    return rms_norm(residual, weight, eps), residual


def rope_neox(x: ms.Tensor, positions: ms.Tensor, cos: ms.Tensor, sin: ms.Tensor) -> ms.Tensor:
    """x [T, H, D] rotated by the cos/sin [P, D/2] rows of its positions (NeoX half-rotation)."""
    if active("RopeNeox"):
        return op("RopeNeox")(x, positions, cos, sin)
    c = ops.gather(cos, positions, 0).unsqueeze(1)  # [T, 1, D/2]
    s = ops.gather(sin, positions, 0).unsqueeze(1)
    if x.dtype != ms.float32:  # HF rotates in the activation dtype with cos/sin cast to it
        c, s = c.astype(x.dtype), s.astype(x.dtype)
    x1, x2 = mint.chunk(x, 2, -1)
    return mint.cat((x1 * c - x2 * s, x2 * c + x1 * s), -1)


def rms_norm_rope(x: ms.Tensor, weight: ms.Tensor, eps: float, positions: ms.Tensor, cos: ms.Tensor,
                  sin: ms.Tensor) -> ms.Tensor:
    """rope_neox(rms_norm(x)) per head of x [T, H, D]: Qwen3's q/k norm and rotation, one op on CPU."""
    if active("RmsNormRope"):
        return op("RmsNormRope")(x, weight, _scalar(eps), positions, cos, sin)
    return rope_neox(rms_norm(x, weight, eps), positions, cos, sin)


def qk_norm_rope_cache(qkv: ms.Tensor, q_heads: ms.Tensor, q_norm, k_norm, eps: float, positions: ms.Tensor,
                       cos: ms.Tensor, sin: ms.Tensor, kv_pair: ms.Tensor, slots: ms.Tensor) -> ms.Tensor:
    """Packed qkv [T, (Hq+2Hkv)*D] -> q [T, Hq, D] normed (by q_norm [D]; None: no q/k norm) and
    rotated, with k (normed, rotated) and v written into the float32 pools of `kv_pair` (pair_ref)
    at `slots` [T] int64. Only the shape of q_heads [Hq] is read. CPU kernel only: callers check
    active("QkNormRopeCache")."""
    if q_norm is None:
        q_norm = k_norm = _no_weight()
    return op("QkNormRopeCache")(qkv, q_heads, q_norm, k_norm, _scalar(eps), positions, cos, sin, kv_pair, slots)


@functools.cache
def _no_weight() -> ms.Tensor:
    return ms.Tensor(np.zeros(0, np.float32))


def silu_mul(x: ms.Tensor) -> ms.Tensor:
    """[T, 2I] packed gate|up -> silu(gate) * up [T, I]."""
    if active("SiluMul"):
        return op("SiluMul")(x)
    gate, up = mint.chunk(x, 2, -1)
    return mint.nn.functional.silu(gate) * up


def moe_swiglu(x: ms.Tensor, weights: ms.Tensor, ids: ms.Tensor, gate_up: ms.Tensor, down: ms.Tensor) -> ms.Tensor:
    """Routed SwiGLU experts: x [T, H], top-k weights/ids [T, k], gate_up [E, H, 2I], down [E, I, H]."""
    if active("MoeSwiGLU"):
        return op("MoeSwiGLU")(x, weights, ids, gate_up, down)
    fused = fused_ops()
    if fused is not None:
        return _grouped_moe_swiglu(fused, x, weights, ids, gate_up, down)
    # fallback: every expert over every token, weighted by its routing weight (0 if not chosen)
    out = x * 0
    for e in range(gate_up.shape[0]):
        w = (weights * (ids == e).astype(weights.dtype)).sum(-1, keepdims=True)  # [T, 1]
        gate, up = mint.chunk(mint.matmul(x, gate_up[e]), 2, -1)
        out = out + w * mint.matmul(mint.nn.functional.silu(gate) * up, down[e])
    return out


def _grouped_moe_swiglu(fused, x, weights, ids, gate_up, down):
    """Only the chosen experts' rows, as sgl-mindspore's run_tp_moe (fused_ops/ascend.py): sort the
    (token, choice) rows by expert, one grouped matmul per projection, SwiGLU between them
    (unfused, as there), then sum each token's rows weighted by its routing weights."""
    sorted_x, row_idx, counts = fused.moe_init_routing(x, ids, gate_up.shape[0])
    groups = counts.astype(ms.int64)
    hidden = silu_mul(fused.grouped_matmul(sorted_x, gate_up, groups))
    out = mint.nan_to_num(fused.grouped_matmul(hidden, down, groups), 0.0, 0.0, 0.0)  # as sgl-mindspore, off 310P
    return fused.moe_token_unpermute(out, row_idx, weights)


def matmul_nt(x: ms.Tensor, w: ms.Tensor) -> ms.Tensor:
    """x [M, K] @ w[N, K]^T: every Linear and the LM head (HF's (out, in) layout). The kernel picks
    its path from M itself (kernels/cpu/matmul_nt.cc). Fallback: MatMul(transpose_b), which at
    M=128, K=1024, N=3072 ran ~2.7x faster than mint.matmul on the (in, out) layout here."""
    if active("MatMulNT"):
        return op("MatMulNT")(x, w)
    return _matmul_nt()(x, w)


@functools.cache
def _matmul_nt():
    return ops.MatMul(transpose_b=True)


def kv_cache_write_fallback(buf: KVBuffer, values: ms.Tensor, runs: list[tuple[int, int, int]]) -> ms.Tensor:
    # MindSpore's indexed setitem copies on CPU; a slice setitem writes through to the shared
    # buffer, so the fallback writes one slice per contiguous run of slots.
    for dst, src, n in runs:
        buf.view[dst: dst + n] = values[src: src + n]
    return buf.view


def slot_runs(slots: torch.Tensor) -> list[tuple[int, int, int]]:
    """Contiguous runs of a slot list: [(dst_start, src_start, length), ...]."""
    s = slots.tolist()
    runs = []
    start = 0
    for i in range(1, len(s) + 1):
        if i == len(s) or s[i] != s[i - 1] + 1:
            runs.append((s[start], start, i - start))
            start = i
    return runs


if __name__ == "__main__":
    device.init(os.environ.get("SGLMS_DEVICE", "cpu"))
    try:
        for k, v in status().items():
            print(f"{k}: {v}")
    except KernelLibraryMissing as e:
        raise SystemExit(f"error: {e}") from None
