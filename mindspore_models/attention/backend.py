"""The attention/KV backend interface, and THE choice of backend (`for_device(pool)`), once per
model from the device `device.init` selected; layers never name a device.

`AttentionBackend` declares what every backend provides (`cpu.CpuBackend`, `ascend.AscendBackend`).
`EagerAttention` is a helper for backends whose attention is Python methods (PyNative only).
"""
from __future__ import annotations

from typing import Protocol

from mindspore import nn

from mindspore_models.attention.plan import StepPlan
from mindspore_models.attention.pool import KVPool


def for_device(pool: KVPool):
    """The backend for the selected device: CPU kernels (or their fallbacks), or Ascend's built-in ops."""
    from mindspore_models import device

    if device.current() == "cpu":
        from mindspore_models.attention.cpu import CpuBackend

        return CpuBackend(pool)
    from mindspore_models.attention.ascend import AscendBackend  # NOT exercised here: needs an NPU

    return AscendBackend(pool)


class AttentionBackend(Protocol):
    pool: KVPool  # SGLang's KV pool, wrapped once when the backend is built
    compiles: bool  # the whole forward may run as compiled MindSpore graphs on this backend
    jit_level: str | None  # passed to mindspore.jit (None: MindSpore's default)

    def attention(self, spec) -> nn.Cell:
        """One layer's attention (`layers.attention.AttentionSpec`), called as (q, k, v, step) ->
        [T, Hq*Dv], or for MLA (q, entry, step) -> [T, H*L]; it writes this step's K/V rows into
        the pool, then attends."""

    def prepare(self, plan: StepPlan, upstream: dict | None = None):
        """The step: this backend's per-step inputs from the host-side plan (and, under SGLang,
        what SGLang's MindSpore glue prepared). The model passes it to every layer as an explicit
        `construct` argument."""

    def split_step(self, step) -> tuple:
        """(phase, graph inputs): one graph is compiled per phase; phase None when there is one."""

    def step_signature(self, phase) -> tuple:
        """Dynamic-shape declarations of the graph inputs of `split_step`, for `set_inputs`."""


class EagerAttention(nn.Cell):
    """One layer's attention as the backend's Python methods (`attend`, `attend_latent`): PyNative
    only, the step may be any Python object."""

    def __init__(self, backend, spec):
        super().__init__()
        self.backend, self.spec = backend, spec

    def construct(self, q, *rest):
        if self.spec.latent is not None:
            entry, step = rest
            return self.backend.attend_latent(self.spec, q, entry, step)
        k, v, step = rest
        return self.backend.attend(self.spec, q, k, v, step)
