"""The one device switch: which device this process runs on (`current`, `init`), decided once.
Everything that differs between CPU and Ascend NPU keys on it; this module imports none of the
modules that do (attention/backend.for_device picks the attention/KV backend, parallel.collectives
the tensor-parallel collectives, kernels.fused_ops the fused Ascend ops). Decided here:

- which MindSpore device a process uses (`init`), and never a second `set_device`; on NPU the
  kernel-selection environment and context the anchors run with (`ASCEND_KERNEL_ENV`, `ASCEND_CONTEXT`);
- where parameters live after loading (`place_parameters`), so SGLang sizes its KV pool
  from the memory that is really left;
- how MindSpore results become visible to torch (`synchronize`);
- on CPU, which cores a rank's threads use (`bind_rank_threads`).

`cpu` is the development and CI path and is tested on every commit. `npu` is the production
path on Ascend; it needs torch_npu and CANN, neither of which exists on the CI machines, so
every branch marked NPU below is NOT exercised here.
"""
from __future__ import annotations

import logging
import os

import mindspore as ms

SUPPORTED = ("cpu", "npu")
_device: str | None = None

# Which Ascend kernels MindSpore picks: sgl-mindspore's models set these before they build
# (5ee7f2f models/qwen3.py, llama.py, qwen3_moe.py, deepseekv3.py), vllm-mindspore in utils.py.
# Its attention conventions (attention/conventions.py) assume the kernels this environment selects.
ASCEND_KERNEL_ENV = {
    "MS_INTERNAL_DISABLE_CUSTOM_KERNEL_LIST": "FlashAttentionScore,PagedAttention",
    "MS_DISABLE_INTERNAL_KERNELS_LIST": "RmsNorm",
}
# What SGLang's runner sets before any MindSpore model is built (model_executor/mindspore_runner.py,
# init_ms_distributed); the standalone runner and npu_smoke set the same.
ASCEND_CONTEXT = {"infer_boost": "on", "jit_level": "O0"}


def init(device: str) -> str:
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
        bind_rank_threads()
    else:  # NPU: not exercised on the CI machines
        set_ascend_kernel_env()
        _use_ascend_device()
    _device = device
    return device


def set_ascend_kernel_env() -> dict[str, str]:
    """Sets ASCEND_KERNEL_ENV where the user has not; returns the values in force. A value the user
    chose differently is kept, with a warning: the attention conventions assume the anchors' one."""
    for name, value in ASCEND_KERNEL_ENV.items():
        current = os.environ.setdefault(name, value)
        if current != value:
            logging.getLogger(__name__).warning("%s=%r kept; sgl-mindspore runs with %r", name, current, value)
    return {name: os.environ[name] for name in ASCEND_KERNEL_ENV}


def _use_ascend_device() -> None:
    """Under SGLang, upstream's mindspore_runner already called set_device("Ascend", <this rank's
    device>) before the model is built, and a second call with another id raises: keep it. Only a
    process nobody set up (the standalone runner) picks a device, from DEVICE_ID (default 0)."""
    from mindspore.device_manager import DeviceManagerConf

    if DeviceManagerConf.get_instance().is_device_enable():
        target = ms.get_current_device().device_target
        if target != "Ascend":
            raise RuntimeError(f"MindSpore is already set to device {target}, not Ascend")
        return
    ms.set_context(**ASCEND_CONTEXT)
    ms.set_device("Ascend", int(os.environ.get("DEVICE_ID", "0")))


def parse_cpu_list(text: str) -> set[int]:
    """"0-3,8" -> {0, 1, 2, 3, 8} (the Linux cpulist format SGLang's bind variable uses)."""
    cores = set()
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        cores.update(range(int(lo), int(hi or lo) + 1))
    return cores


def bind_rank_threads() -> set[int] | None:
    """CPU: give this SGLang rank the cores SGLANG_CPU_OMP_THREADS_BIND names for it ("0|1": rank 0 on
    core 0, rank 1 on core 1; "0|1|0|1" for 4 ranks on 2 cores). SGLang's generic CPU path accepts the
    variable but does not apply it (the binding is an sgl_kernel op), so every rank would run full-width
    thread teams on all cores and the ranks would oversubscribe them. Here every thread of the process
    is pinned to the rank's cores, and torch, OpenMP (the custom kernels, launched from this thread)
    and MindSpore's CPU kernels get one thread per core. Unset, or outside an SGLang scheduler: no change.
    The entry is picked as SGLang picks it (numa_utils.init_threads_binding): by the rank's gpu_id."""
    spec = os.environ.get("SGLANG_CPU_OMP_THREADS_BIND", "")
    if not spec or spec == "all":
        return None
    try:
        from sglang.srt.runtime_context import get_device

        index = get_device().gpu_id
    except Exception:  # not inside an SGLang scheduler process (standalone runner, tests)
        return None
    cores = parse_cpu_list(spec.split("|")[index])
    if not cores <= os.sched_getaffinity(0):
        raise ValueError(f"SGLANG_CPU_OMP_THREADS_BIND={spec!r} gives this rank (gpu_id {index}) cores {sorted(cores)}, "
                         f"but this process may only run on {sorted(os.sched_getaffinity(0))}")
    for task in os.listdir("/proc/self/task"):  # threads made later inherit their creator's mask
        try:
            os.sched_setaffinity(int(task), cores)
        except ProcessLookupError:  # a thread that just exited
            pass
    import ctypes

    import torch

    torch.set_num_threads(len(cores))
    try:  # the kernels' OpenMP runtime: already initialised at import with one thread per visible core
        ctypes.CDLL("libgomp.so.1").omp_set_num_threads(len(cores))
    except OSError:
        pass
    try:
        ms.device_context.cpu.op_tuning.threads_num(len(cores))
    except RuntimeError:  # set already (it can be set once per process)
        pass
    logging.getLogger(__name__).info("rank with gpu_id %d: threads pinned to cores %s, %d per team", index,
                                     sorted(cores), len(cores))
    return cores


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


def place_parameters(cell) -> None:
    """Move every parameter to the device once loaded (NPU; NOT exercised here). MindSpore keeps
    host data until first use, and SGLang sizes its KV pool from free device memory right after
    loading: without this the pool would claim memory the weights need."""
    if current() == "cpu":
        return
    for p in cell.get_parameters():
        p.set_data(p.move_to("Ascend"))


def uses_custom_cpu_kernels() -> bool:
    return current() == "cpu" and os.environ.get("SGLMS_DISABLE_KERNELS", "0") != "1"
