"""Llama (2, 3, 3.1+): the shared pre-norm decoder; attention_bias and rope scaling come from the config."""
from __future__ import annotations

from mindspore_models.config import normalize
from mindspore_models.layers.decoder import CausalLM, DecoderModel


class LlamaForCausalLM(CausalLM):
    def __init__(self, hf_config):
        cfg = normalize(hf_config)
        super().__init__(cfg, DecoderModel(cfg))
