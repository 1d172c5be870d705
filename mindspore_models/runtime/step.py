"""One forward step of a MindSpore model, shared by the SGLang shell and the standalone runner:
plan (torch, host) -> the backend's step metadata -> model(explicit inputs) -> logits (torch)."""
from __future__ import annotations

import torch

from mindspore_models import bridge
from mindspore_models.attention.plan import StepPlan


def forward(model, backend, plan: StepPlan, input_ids: torch.Tensor) -> torch.Tensor:
    step = backend.prepare(plan)
    as_i32 = lambda t: bridge.copy_to_ms(t.to(torch.int32).cpu())  # noqa: E731
    logits = model(as_i32(input_ids), as_i32(plan.positions), as_i32(plan.logits_index), step)
    return bridge.to_torch(logits)  # [N, V]
