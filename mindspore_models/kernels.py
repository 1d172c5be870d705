"""Custom CPU kernels (kernels/cpu, built by CMake into the wheel) and their pure-MindSpore fallbacks.

Each kernel has one wrapper here. Which implementation is active is decided once, logged
once, and printable with `python -m mindspore_models.kernels`. A missing library is loud: a
warning at model load, and an error when SGLMS_REQUIRE_KERNELS=1 (CI sets it).
"""
from __future__ import annotations

import ctypes
import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import mindspore as ms
import torch
from mindspore import ops

from mindspore_models import bridge, device

logger = logging.getLogger(__name__)
LIB_NAME = "libsglms_cpu_kernels.so"


def library_path() -> Path | None:
    env = os.environ.get("SGLMS_KERNELS_LIB")
    candidates = [Path(env)] if env else [Path(__file__).parent / "_lib" / LIB_NAME]
    return next((p for p in candidates if p.is_file()), None)


@functools.cache
def status() -> dict[str, str]:
    """Kernel name -> 'custom: PATH' or 'fallback: WHY'."""
    if not device.uses_custom_cpu_kernels():
        why = "disabled (SGLMS_DISABLE_KERNELS=1)" if device.current() == "cpu" else f"device {device.current()}"
        return {"KvCacheWrite": f"fallback: {why}"}
    path = library_path()
    if path is None:
        msg = f"{LIB_NAME} not found (build with CMake or set SGLMS_KERNELS_LIB)"
        if os.environ.get("SGLMS_REQUIRE_KERNELS") == "1":
            raise RuntimeError(f"custom CPU kernels required but {msg}")
        logger.warning("custom CPU kernels inactive: %s; using pure-MindSpore fallbacks", msg)
        return {"KvCacheWrite": f"fallback: {msg}"}
    names = _kernel_list(path)
    return {"KvCacheWrite": f"custom: {path}" if "KvCacheWrite" in names else "fallback: not in library"}


def _kernel_list(path: Path) -> list[str]:
    lib = ctypes.CDLL(str(path))
    lib.SglmsKernelList.restype = ctypes.c_char_p
    return lib.SglmsKernelList().decode().split(",")


def log_status() -> None:
    for name, how in status().items():
        logger.info("MindSpore kernel %s -> %s", name, how)


@dataclass
class KVBuffer:
    """One layer's K or V buffer of SGLang's pool, seen from MindSpore without a copy."""

    torch_view: torch.Tensor  # keeps the pool's storage alive for as long as MindSpore uses it
    view: ms.Tensor  # (slots, heads, head_dim), same memory
    ref: ms.Tensor  # int64 {address, rows}: how the custom kernel reaches the live buffer

    @classmethod
    def wrap(cls, t: torch.Tensor) -> "KVBuffer":
        if not t.is_contiguous():
            raise ValueError("KV buffer must be contiguous to be shared with MindSpore")
        return cls(t, bridge.to_ms(t), ms.Tensor([t.data_ptr(), t.shape[0]], ms.int64))


@functools.cache
def _kv_write_op():
    path = library_path()
    return ops.Custom(f"{path}:KvCacheWrite", out_shape=lambda *s: (1,), out_dtype=lambda *d: ms.int32,
                      func_type="aot")


def kv_cache_write(buf: KVBuffer, slots: ms.Tensor, values: ms.Tensor, runs: list[tuple[int, int, int]]) -> ms.Tensor:
    """buf[slots[i]] = values[i]; returns buf.view ordered after the write.

    `runs` are the same slots as (dst_start, src_start, length) contiguous runs, for the fallback.
    """
    if values.dtype != buf.view.dtype or tuple(values.shape[1:]) != tuple(buf.view.shape[1:]):
        raise ValueError(f"KV write of {values.dtype}{tuple(values.shape)} into cache "
                         f"{buf.view.dtype}{tuple(buf.view.shape)}: dtype or row shape differs")
    if status()["KvCacheWrite"].startswith("custom"):
        done = _kv_write_op()(buf.ref, slots, values)
        return ops.depend(buf.view, done)
    return kv_cache_write_fallback(buf, values, runs)


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
    for k, v in status().items():
        print(f"{k}: {v}")
