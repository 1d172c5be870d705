"""The attention/KV backend interface. One backend is chosen per model by the device switch
(`device.attention_backend(pool)`); layers never name a device.

A backend is built once over SGLang's KV pool (`pool.KVPool`) and provides:
- `prepare(plan) -> Step`: its own per-step metadata from the host-side `plan.StepPlan`;
- `attend(layer, q, k, v, step) -> [T, Hq*Dv]`: write this step's K/V rows into the pool, attend;
- `attend_latent(layer, q, entry, step) -> [T, H*L]`: the same for MLA's joint latent entries.
The step reaches every layer as an explicit `construct` argument; layers call `step.attend(...)`.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(eq=False)
class Step:
    """Base of each backend's per-step metadata."""

    backend: object
    num_tokens: int  # T, known on the host: reading a MindSpore tensor's shape costs a sync
    num_logits: int  # N, rows the LM head computes

    def attend(self, layer, q, k, v):
        return self.backend.attend(layer, q, k, v, self)

    def attend_latent(self, layer, q, entry):
        return self.backend.attend_latent(layer, q, entry, self)
