"""Qwen2 / Qwen2.5: the shared pre-norm decoder with biases on q, k and v (not on o)."""
from __future__ import annotations

from mindspore_models.config import normalize
from mindspore_models.layers.decoder import CausalLM, DecoderModel


class Qwen2ForCausalLM(CausalLM):
    def __init__(self, hf_config):
        cfg = normalize(hf_config, qkv_bias=True)
        super().__init__(cfg, DecoderModel(cfg))
