"""One forward step of a MindSpore model, shared by the SGLang shell and the standalone runner:
plan (torch, host) -> the backend's step metadata -> model(explicit inputs) -> logits (torch)."""
from __future__ import annotations

import torch

from mindspore_models import bridge
from mindspore_models.attention.plan import StepPlan


def step_inputs(backend, plan: StepPlan) -> dict:
    """The model's per-step `construct` arguments besides the token ids (the plan is on the host)."""
    return {"positions": bridge.copy_int32_to_ms(plan.positions),
            "logits_index": bridge.copy_int32_to_ms(plan.logits_index), "step": backend.prepare(plan)}


def forward(model, backend, plan: StepPlan, input_ids: torch.Tensor) -> torch.Tensor:
    logits = model(bridge.copy_int32_to_ms(input_ids.cpu()), **step_inputs(backend, plan))
    return bridge.to_torch(logits)  # [N, V]
