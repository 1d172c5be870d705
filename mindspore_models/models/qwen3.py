"""Qwen3 dense: the shared pre-norm decoder with RMSNorm on q and k per head."""
from __future__ import annotations

from mindspore_models.config import normalize
from mindspore_models.layers.decoder import CausalLM, DecoderModel
from mindspore_models.weights import PACKED_DENSE, load_weights


class Qwen3ForCausalLM(CausalLM):
    def __init__(self, hf_config):
        cfg = normalize(hf_config, qk_norm=True)
        super().__init__(cfg, DecoderModel(cfg))

    def load_weights(self, weights):
        ignore = (r"^lm_head\.weight$",) if self.config.tie_word_embeddings else ()
        load_weights(self, weights, PACKED_DENSE, ignore)
