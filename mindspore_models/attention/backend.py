"""The attention/KV backend interface. One backend is chosen per model by the device switch
(`device.attention_backend(pool)`); layers never name a device.

A backend is built once over SGLang's KV pool (`pool.KVPool`) and provides:
- `attention(spec) -> nn.Cell`: one layer's attention (`layers.attention.AttentionSpec`), called
  as (q, k, v, step) -> [T, Hq*Dv], or for MLA (q, entry, step) -> [T, H*L]; it writes this
  step's K/V rows into the pool, then attends;
- `prepare(plan) -> step`: its per-step inputs from the host-side `plan.StepPlan`. The model
  passes the step to every layer as an explicit `construct` argument;
- `compiles`: True when the whole forward can run as one compiled MindSpore graph on this
  backend; its step is then a tuple of tensors and `step_signature()` describes it.
"""
from __future__ import annotations

from mindspore import nn


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
