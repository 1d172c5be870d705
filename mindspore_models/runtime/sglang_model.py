"""The SGLang-facing side of a MindSpore model, driven by upstream SGLang's own MindSpore glue
(`sglang/srt/models/mindspore.py`, which our patch series keeps).

SGLang owns scheduling, the radix cache, the KV pool and sampling; upstream's glue owns the
torch module SGLang calls. Per step this class turns the ForwardBatch into a step plan, runs
the registry's model on the attention backend the device switch chose, and returns logits,
which the glue hands to SGLang's sampler. K/V stay in SGLang's pool (shared via DLPack).
"""
from __future__ import annotations

import json
import logging
import os
import time

import torch

from mindspore import nn

from mindspore_models import bridge, device, kernels
from mindspore_models.attention import backend as attention_backend
from mindspore_models.attention.plan import StepPlan
from mindspore_models.attention.pool import KVPool
from mindspore_models.config import check_config_file
from mindspore_models.registry import model_class
from mindspore_models.runtime import step as model_step
from mindspore_models.weights import check_safetensors_files

logger = logging.getLogger(__name__)
_BATCH_LOG = os.environ.get("SGLMS_BATCH_LOG")  # JSON lines of each step's shape, for tests and debugging


def _log_batch(mode, q_lens, seq_lens, run, prev_forward_s) -> None:
    """One JSON line per step: its shape, when it started, how long the previous step's model forward
    took (the rest of a step is SGLang's), and the graphs compiled before it (null: PyNative)."""
    graph = isinstance(run, model_step.CompiledForward)
    with open(_BATCH_LOG, "a") as f:
        f.write(json.dumps({"mode": mode.name, "q_lens": q_lens.tolist(), "seq_lens": seq_lens.tolist(),
                            "t": time.perf_counter(), "prev_forward_s": prev_forward_s,
                            "graphs_compiled": run.compiles if graph else None,
                            "compile_seconds": round(run.compile_seconds, 2) if graph else None}) + "\n")


def padding_hint(hf_config) -> str:
    """Why SGLang's pool may not fit the model: it sizes the pool from its own padded head counts."""
    original = getattr(hf_config, "original_num_attention_heads", None)
    if original in (None, hf_config.num_attention_heads):
        return ""
    return (f": SGLang padded the attention heads for tensor parallelism ({original} -> "
            f"{hf_config.num_attention_heads}); use a --tp that divides the checkpoint's head counts")


def serving_dtype(requested: str, hf_config) -> torch.dtype:
    """--dtype -> the dtype of parameters and K/V. CPU: float32 (the CPU kernels are fp32)."""
    if device.current() == "cpu":
        if requested not in ("float32", "float"):
            raise ValueError(f"MindSpore on CPU computes in float32 only; got --dtype {requested}, pass --dtype float32")
        return torch.float32
    if requested == "auto":  # NOT exercised here: the checkpoint's own dtype, as SGLang resolves it
        requested = str(getattr(hf_config, "dtype", None) or getattr(hf_config, "torch_dtype", "bfloat16"))
    return {"bfloat16": torch.bfloat16, "float16": torch.float16, "half": torch.float16,
            "float32": torch.float32}[requested.removeprefix("torch.")]


def plan_from_batch(fb, positions: torch.Tensor, page_size: int) -> StepPlan:
    """The step plan from SGLang's ForwardBatch, using its host-side copies of the lengths."""
    from sglang.srt.model_executor.forward_context import get_req_to_token_pool

    mode = fb.forward_mode
    if mode.name not in ("EXTEND", "MIXED", "DECODE"):
        raise NotImplementedError(f"forward mode {mode.name} (speculative decoding, split prefill, dLLM) is not supported by the MindSpore impl yet")
    seq_lens = fb.seq_lens_cpu if fb.seq_lens_cpu is not None else fb.seq_lens.cpu()
    if mode.is_extend():
        q_lens = torch.tensor(fb.extend_seq_lens_cpu) if fb.extend_seq_lens_cpu is not None else fb.extend_seq_lens
    else:
        q_lens = torch.ones_like(seq_lens)
    width = int(seq_lens.max())  # req_to_token rows span the whole context length: slice first
    table = get_req_to_token_pool().req_to_token[fb.req_pool_indices, :width]
    return StepPlan.build(seq_lens, q_lens, table, positions, fb.out_cache_loc, page_size)


class SGLangModel(nn.Cell):
    """What upstream's glue drives: built as `arch(config=..., quant_config=...)`, then per step
    `inputs = model.prepare_inputs(forward_batch, upstream_inputs)` and `logits = model(**inputs)`.

    Upstream's inputs (its block tables, Ascend masks and cache lists) are replaced by this
    package's step plan and the backend the device switch chose; the token ids are reused."""

    capture_aux_hidden_states = False  # no EAGLE3 hidden-state capture yet

    def __init__(self, config, quant_config=None):
        super().__init__()
        from sglang.srt.runtime_context import get_server_args

        args = get_server_args()
        if quant_config is not None:
            raise ValueError("the MindSpore model impl does not support quantized checkpoints yet")
        if os.path.isdir(args.model_path):  # a bad checkpoint fails here, with one line naming the file
            check_config_file(args.model_path)
            check_safetensors_files(args.model_path)
        device.init(args.device)
        self.model = model_class(config.architectures)(config)
        dtype = serving_dtype(args.dtype, config)
        self.model.cast(dtype)
        config.param_dtype = bridge.ms_dtype(dtype)  # upstream's glue builds its (unused) masks in it
        self.hf_config = config
        self.backend = None  # bound to SGLang's KV pool on the first step (the pool is made after loading)
        self.run = None  # the model's forward over that pool: a compiled graph where the backend allows
        self.last_forward_s = None  # for the step log
        kernels.log_status()
        logger.info("MindSpore model %s on %s", type(self.model).__name__, device.current())

    def load_weights(self, weights):
        self.model.load_weights(weights)
        device.place_parameters(self.model)  # before SGLang measures free memory for its KV pool

    def _bind_pool(self):
        from sglang.srt.model_executor.forward_context import get_token_to_kv_pool

        cfg = self.model.config
        pool = KVPool.from_sglang(get_token_to_kv_pool(), cfg.num_layers, mla=cfg.mla is not None)
        pool.check(self.model.kv_row_shapes(), self.model.kv_dtype, padding_hint(self.hf_config))
        self.backend = attention_backend.for_device(pool)
        self.run = model_step.bind(self.model, self.backend)

    def prepare_inputs(self, forward_batch, upstream_inputs: dict) -> dict:
        if self.backend is None:
            self._bind_pool()
        plan = plan_from_batch(forward_batch, forward_batch.positions, self.backend.pool.page_size)
        if _BATCH_LOG:
            _log_batch(forward_batch.forward_mode, plan.q_lens, plan.seq_lens, self.run, self.last_forward_s)
        return {"input_ids": upstream_inputs["input_ids"], **model_step.step_inputs(self.backend, plan, upstream_inputs)}

    def construct(self, input_ids, positions, logits_index, step):
        start = time.perf_counter()
        logits = self.run(input_ids, positions, logits_index, step)  # [N, V]
        self.last_forward_s = time.perf_counter() - start
        return logits
