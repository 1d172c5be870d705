"""One forward step of a MindSpore model, shared by the SGLang shell and the standalone runner:
plan (torch, host) -> the backend's step inputs -> model(explicit inputs) -> logits (torch).

Where the backend allows it (`backend.compiles`) the forward runs as a compiled MindSpore graph
with dynamic shapes, one per phase of the backend's step (CPU: one; Ascend: prefill and paged):
compiled when the pool is bound (a one-token warm-up step) or when a phase is first met, reused
for every batch size, prompt length and mix after that. SGLMS_GRAPH=0 runs the same model in PyNative instead.
"""
from __future__ import annotations

import logging
import os
import time

import mindspore as ms
import torch
from mindspore import nn
from mindspore.graph.api import ms_compile_cache  # the jit executor's record of compiled phases

from mindspore_models import bridge
from mindspore_models.attention.plan import StepPlan

logger = logging.getLogger(__name__)


def graph_mode_requested() -> bool:
    value = os.environ.get("SGLMS_GRAPH", "1")
    if value not in ("0", "1"):
        raise ValueError(f"SGLMS_GRAPH must be 0 (PyNative) or 1 (compiled graph where the backend allows), got {value!r}")
    return value == "1"


class _FlatStep(nn.Cell):
    """The model with its step passed as separate graph inputs; `phase` (None, or a constant the
    backend's step starts with, such as Ascend's is_prefill) is fixed per graph."""

    def __init__(self, model, phase):
        super().__init__()
        self.model, self.step_phase = model, phase

    def construct(self, input_ids, positions, logits_index, *step):
        if self.step_phase is None:
            return self.model(input_ids, positions, logits_index, step)
        return self.model(input_ids, positions, logits_index, (self.step_phase,) + step)


class CompiledForward:
    """model(input_ids, positions, logits_index, step) as one graph per phase of the backend's step,
    dynamic in every size. `compiles` / `compile_seconds`: graphs compiled so far and the time of the
    calls that compiled (the warm-up's: compile plus a one-token forward)."""

    def __init__(self, model, backend):
        self.model, self.backend, self.graphs = model, backend, {}
        self.compiles = 0  # graphs compiled so far: one per phase in steady state
        self.compile_seconds = 0.0

    def graph(self, phase):
        if phase not in self.graphs:
            dyn = ms.Tensor(shape=[None], dtype=ms.int32)
            flat = _FlatStep(self.model, phase)
            flat.set_inputs(dyn, dyn, dyn, *self.backend.step_signature(phase))
            self.graphs[phase] = ms.jit(flat, jit_level=self.backend.jit_level) if self.backend.jit_level else ms.jit(flat)
        return self.graphs[phase]

    def __call__(self, *inputs):
        *head, step = inputs
        phase, step = self.backend.split_step(step)
        before, start = len(ms_compile_cache), time.perf_counter()
        out = self.graph(phase)(*head, *step)
        new = len(ms_compile_cache) - before
        if new:
            self.compiles += new
            self.compile_seconds += time.perf_counter() - start
            logger.info("compiled the MindSpore forward graph (%d so far, %.1f s)", self.compiles, self.compile_seconds)
        return out


def bind(model, backend):
    """Binds the model's attention layers to the backend's pool; returns what runs a step's forward:
    the compiled graph where the backend allows it (and SGLMS_GRAPH is not 0), else the model."""
    model.bind(backend)
    if not (backend.compiles and graph_mode_requested()):
        return model
    run = CompiledForward(model, backend)
    warm_up(run, backend)
    return run


def warm_up(run, backend) -> None:
    """Compiles the graph on a one-token step that writes only the pool's padding slot 0 (reserved
    in SGLang's pools and the standalone one), so the first request does not wait for the compile."""
    one = torch.zeros(1, dtype=torch.int64)
    plan = StepPlan.build(one + 1, one + 1, one[None], one, one, backend.pool.page_size)
    forward(run, backend, plan, one)


def step_inputs(backend, plan: StepPlan, upstream: dict | None = None) -> dict:
    """The model's per-step `construct` arguments besides the token ids (the plan is on the host).
    `upstream`: what SGLang's glue prepared for this step, for a backend that reuses some of it."""
    return {"positions": bridge.copy_int32_to_ms(plan.positions),
            "logits_index": bridge.copy_int32_to_ms(plan.logits_index), "step": backend.prepare(plan, upstream)}


def forward(run, backend, plan: StepPlan, input_ids: torch.Tensor) -> torch.Tensor:
    """run: what `bind` returned."""
    inputs = step_inputs(backend, plan)
    logits = run(bridge.copy_int32_to_ms(input_ids.cpu()), inputs["positions"], inputs["logits_index"], inputs["step"])
    return bridge.to_torch(logits)  # [N, V]
