"""The one device switch. Everything that differs between CPU and Ascend NPU is decided here.

`cpu` is the development and CI path and is tested on every commit. `npu` is the production
path on Ascend; it needs torch_npu and CANN, neither of which exists on the CI machines, so
every branch marked NPU below is NOT exercised here.
"""
from __future__ import annotations

import os

import mindspore as ms

SUPPORTED = ("cpu", "npu")
_device: str | None = None


def init(device: str, local_rank: int = 0) -> str:
    """Select the MindSpore backend once per process; later calls must agree."""
    global _device
    device = device.lower()
    if device not in SUPPORTED:
        raise ValueError(f"MindSpore models run on {SUPPORTED}, not on device {device!r}")
    if _device is not None:
        if _device != device:
            raise RuntimeError(f"MindSpore already initialised for {_device}, cannot switch to {device}")
        return _device
    ms.set_context(mode=ms.PYNATIVE_MODE)
    if device == "cpu":
        ms.set_device("CPU")
        # Synchronous launches: on the 2-core CI machines MindSpore's async launch pipeline
        # made a decode step of a 4-layer Qwen3-0.6B ~1.6x slower (140 ms vs 86 ms).
        ms.runtime.launch_blocking()
    else:  # NPU: not exercised on the CI machines
        ms.set_device("Ascend", local_rank)
    _device = device
    return device


def current() -> str:
    if _device is None:
        return init(os.environ.get("SGLMS_DEVICE", "cpu"))
    return _device


def synchronize() -> None:
    """Make MindSpore's results visible to torch before torch reads them."""
    if current() == "npu":  # NOT exercised here
        import torch_npu  # noqa: F401  (registers torch.npu)
        import torch

        torch.npu.synchronize()
    # CPU: DLPack export waits for MindSpore's pending work itself.


def attention_backend(pool):
    """THE choice of attention/KV backend, made once per model: CPU kernels, or Ascend's built-in ops."""
    if current() == "cpu":
        from mindspore_models.attention.cpu import CpuBackend

        return CpuBackend(pool)
    from mindspore_models.attention.ascend import AscendBackend  # NOT exercised here: needs an NPU

    return AscendBackend(pool)


def uses_custom_cpu_kernels() -> bool:
    return current() == "cpu" and os.environ.get("SGLMS_DISABLE_KERNELS", "0") != "1"
