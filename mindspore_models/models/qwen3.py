"""Qwen3 dense: the shared pre-norm decoder with RMSNorm on q and k per head."""
from __future__ import annotations

from mindspore_models.config import normalize
from mindspore_models.layers.decoder import CausalLM, DecoderModel


class Qwen3ForCausalLM(CausalLM):
    def __init__(self, hf_config):
        cfg = normalize(hf_config, qk_norm=True)
        super().__init__(cfg, DecoderModel(cfg))
