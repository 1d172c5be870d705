"""DeepSeek-V3: MLA attention; dense MLP in the first `first_k_dense_replace` layers, then
sigmoid-routed experts (grouped top-k, score-correction bias) plus shared experts."""
from __future__ import annotations

from mindspore_models.config import normalize
from mindspore_models.layers.decoder import CausalLM, DecoderLayer, DecoderModel, GatedMLP
from mindspore_models.layers.mla import MLAttention
from mindspore_models.layers.moe import SparseMoE, map_expert_name


class DeepseekV3ForCausalLM(CausalLM):
    mappers = (map_expert_name,)

    def __init__(self, hf_config):
        cfg = normalize(hf_config)

        def layer(cfg, i):
            mlp = None
            if i in cfg.moe.sparse_layers:
                moe = cfg.moe
                shared = GatedMLP(cfg.hidden_size, moe.intermediate_size * moe.n_shared_experts) if moe.n_shared_experts else None
                mlp = SparseMoE(cfg.hidden_size, moe, shared)
            return DecoderLayer(cfg, i, mlp=mlp, attention=MLAttention(cfg, i))

        super().__init__(cfg, DecoderModel(cfg, make_layer=layer))
