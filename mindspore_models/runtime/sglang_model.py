"""The torch.nn.Module SGLang loads for `--model-impl mindspore` (patched sglang/srt/models/mindspore.py).

SGLang owns scheduling, the radix cache, the KV pool and sampling; this shell turns each
ForwardBatch into a ForwardContext, runs the MindSpore model picked by the registry, and
hands the logits back to SGLang's sampler. K/V stay in SGLang's pool (shared via DLPack).
"""
from __future__ import annotations

import json
import logging
import os

import torch

from mindspore_models import bridge, device, kernels
from mindspore_models.kernels import KVBuffer
from mindspore_models.registry import model_class
from mindspore_models.runtime.context import forward_context
from mindspore_models.runtime.inputs import build_context

logger = logging.getLogger(__name__)
_BATCH_LOG = os.environ.get("SGLMS_BATCH_LOG")  # JSON lines of each step's shape, for tests and debugging


def _log_batch(mode, q_lens, seq_lens) -> None:
    with open(_BATCH_LOG, "a") as f:
        f.write(json.dumps({"mode": mode.name, "q_lens": q_lens.tolist(), "seq_lens": seq_lens.tolist()}) + "\n")


def check_pool_layout(pool, expected: list[tuple[int, int]], hf_config) -> None:
    """SGLang sizes its KV pool from its own (possibly padded) config; our model reads the
    checkpoint's head counts. A mismatch would read garbage, so it is an error naming both."""
    for layer, row in enumerate(expected):
        got = tuple(pool.get_key_buffer(layer).shape[-2:])
        if got != tuple(row):
            padded = getattr(hf_config, "original_num_attention_heads", None) not in (None, hf_config.num_attention_heads)
            raise ValueError(
                f"SGLang's KV pool layer {layer} holds rows of shape {got} (heads, dim) but the MindSpore model "
                f"expects {tuple(row)}" + (f": SGLang padded the attention heads for tensor parallelism "
                f"({hf_config.original_num_attention_heads} -> {hf_config.num_attention_heads}); use a --tp "
                "that divides the checkpoint's head counts" if padded else ""))


class MindSporeForCausalLM(torch.nn.Module):
    def __init__(self, config, quant_config=None, prefix: str = ""):
        super().__init__()
        from sglang.srt.runtime_context import get_server_args

        args = get_server_args()
        if quant_config is not None:
            raise ValueError("the MindSpore model impl does not support quantized checkpoints yet")
        device.init(args.device)
        if device.current() == "cpu" and args.dtype not in ("float32", "float"):
            raise ValueError(f"MindSpore on CPU computes in float32 only; got --dtype {args.dtype}, pass --dtype float32")
        self.config = config
        self.model = model_class(config.architectures)(config)
        self._kv: list[tuple[KVBuffer, KVBuffer]] | None = None
        kernels.log_status()
        logger.info("MindSpore model %s on %s", type(self.model).__name__, device.current())

    def load_weights(self, weights):
        self.model.load_weights(weights)

    def _kv_buffers(self) -> list[tuple[KVBuffer, KVBuffer]]:
        # The pool is allocated once and never moves, so it is wrapped once.
        if self._kv is None:
            from sglang.srt.model_executor.forward_context import get_token_to_kv_pool

            pool = get_token_to_kv_pool()
            layers = range(self.model.config.num_layers)
            check_pool_layout(pool, self.model.kv_row_shapes(), self.config)
            if self.model.config.mla:  # MLA pool: one latent per token; "V" is a view of the same entry
                self._kv = [(KVBuffer.wrap(pool.get_key_buffer(i)),) * 2 for i in layers]
            else:
                self._kv = [(KVBuffer.wrap(pool.get_key_buffer(i)), KVBuffer.wrap(pool.get_value_buffer(i)))
                            for i in layers]
        return self._kv

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor, forward_batch, **_):
        from sglang.srt.layers.logits_processor import LogitsProcessorOutput
        from sglang.srt.model_executor.forward_context import get_req_to_token_pool

        fb = forward_batch
        if input_ids.numel() == 0:  # idle batch
            return LogitsProcessorOutput(next_token_logits=torch.empty(0, self.model.config.vocab_size))
        extend = fb.forward_mode.is_extend()
        q_lens = fb.extend_seq_lens if extend else torch.ones_like(fb.seq_lens)
        width = int(fb.seq_lens.max())  # req_to_token rows span the whole context length: slice first
        table = get_req_to_token_pool().req_to_token[fb.req_pool_indices, :width]
        if _BATCH_LOG:
            _log_batch(fb.forward_mode, q_lens, fb.seq_lens)
        ctx = build_context(fb.seq_lens, q_lens, table, positions, fb.out_cache_loc, self._kv_buffers())
        with forward_context(ctx):
            logits = self.model(bridge.copy_to_ms(input_ids.to(torch.int32)))
        return LogitsProcessorOutput(next_token_logits=bridge.to_torch(logits))
