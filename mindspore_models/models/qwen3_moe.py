"""Qwen3-MoE: Qwen3 attention; the MLP of the sparse layers is a top-k routed mixture of experts."""
from __future__ import annotations

from mindspore_models.config import normalize
from mindspore_models.layers.decoder import CausalLM, DecoderLayer, DecoderModel
from mindspore_models.layers.moe import SparseMoE, map_expert_name


class Qwen3MoeForCausalLM(CausalLM):
    mappers = (map_expert_name,)

    def __init__(self, hf_config):
        cfg = normalize(hf_config, qk_norm=True)

        def layer(cfg, i):
            sparse = i in cfg.moe.sparse_layers
            return DecoderLayer(cfg, i, mlp=SparseMoE(cfg.hidden_size, cfg.moe) if sparse else None)

        super().__init__(cfg, DecoderModel(cfg, make_layer=layer))
