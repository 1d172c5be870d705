"""The dense pre-norm decoder shared by Llama-family models; differences are flags on the config."""
from __future__ import annotations

from mindspore import mint, nn, ops

from mindspore_models import parallel
from mindspore_models.config import ModelConfig
from mindspore_models.layers.activation import SiluAndMul
from mindspore_models.layers.attention import PagedAttention
from mindspore_models.layers.embedding import Embedding, LMHead
from mindspore_models.layers.linear import column_parallel, row_parallel
from mindspore_models.layers.norm import RMSNorm
from mindspore_models.layers.rope import RotaryEmbedding
from mindspore_models.runtime import context
from mindspore_models.weights import PACKED_DENSE, load_weights


class SelfAttention(nn.Cell):
    """Heads are split over tensor-parallel ranks (KV heads replicated when fewer than ranks)."""

    def __init__(self, cfg: ModelConfig, layer_id: int):
        super().__init__()
        tp = parallel.tp()
        d = self.d = cfg.head_dim
        q_start, self.hq = tp.split(cfg.num_heads, "num_attention_heads")
        kv_start, self.hkv = tp.kv_heads(cfg.num_kv_heads)
        q, kv = cfg.num_heads * d, cfg.num_kv_heads * d
        take = {"q": (q_start * d, self.hq * d), "k": (kv_start * d, self.hkv * d), "v": (kv_start * d, self.hkv * d)}
        self.qkv_proj = column_parallel(cfg.hidden_size, {"q": q, "k": kv, "v": kv}, cfg.qkv_bias, take)
        self.o_proj = row_parallel(q, cfg.hidden_size, bias=cfg.o_bias)
        self.q_norm = RMSNorm(self.d, cfg.rms_norm_eps) if cfg.qk_norm else None
        self.k_norm = RMSNorm(self.d, cfg.rms_norm_eps) if cfg.qk_norm else None
        self.rotary = RotaryEmbedding(self.d, cfg.max_position, cfg.rope_theta, cfg.rope_scaling)
        self.attn = PagedAttention(self.hq, self.hkv, self.d, layer_id)
        self.split = [self.hq * d, self.hkv * d, self.hkv * d]
        self.kv_row_shape = (self.hkv, d)  # one token's K (and V) row in this rank's pool

    def construct(self, positions, x):
        q, k, v = mint.split(self.qkv_proj(x), self.split, -1)
        q = q.reshape(-1, self.hq, self.d)  # [T, Hq, D]
        k = k.reshape(-1, self.hkv, self.d)
        v = v.reshape(-1, self.hkv, self.d)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = self.rotary(positions, q, k)
        return self.o_proj(self.attn(q, k, v))


class GatedMLP(nn.Cell):
    """gate/up split by intermediate columns over ranks, down by input rows (outputs summed)."""

    def __init__(self, hidden: int, intermediate: int):
        super().__init__()
        self.gate_up_proj = column_parallel(hidden, {0: intermediate, 1: intermediate})
        self.act = SiluAndMul()
        self.down_proj = row_parallel(intermediate, hidden)

    def construct(self, x):
        return self.down_proj(self.act(self.gate_up_proj(x)))


class DecoderLayer(nn.Cell):
    def __init__(self, cfg: ModelConfig, layer_id: int, mlp: nn.Cell | None = None,
                 attention: nn.Cell | None = None):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = attention or SelfAttention(cfg, layer_id)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = mlp or GatedMLP(cfg.hidden_size, cfg.intermediate_size)

    def construct(self, positions, x):
        x = x + self.self_attn(positions, self.input_layernorm(x))
        return x + self.mlp(self.post_attention_layernorm(x))


class DecoderModel(nn.Cell):
    def __init__(self, cfg: ModelConfig, make_layer=DecoderLayer):
        super().__init__()
        self.embed_tokens = Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.CellList([make_layer(cfg, i) for i in range(cfg.num_layers)])
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def construct(self, input_ids, positions):
        x = self.embed_tokens(input_ids)  # [T, H]
        for layer in self.layers:
            x = layer(positions, x)
        return self.norm(x)


class CausalLM(nn.Cell):
    """Decoder + LM head; returns logits of the tokens the forward context asks for."""

    packed = PACKED_DENSE  # HF projection name -> (packed parameter, shard)
    mappers: tuple = ()  # extra HF name mappers (e.g. per-expert weights), tried first

    def __init__(self, cfg: ModelConfig, model: nn.Cell):
        super().__init__()
        self.config = cfg
        self.model = model
        tied = model.embed_tokens if cfg.tie_word_embeddings else None
        self.lm_head = LMHead(cfg.vocab_size, cfg.hidden_size, tied_to=tied)

    def construct(self, input_ids):
        ctx = context.get()
        hidden = self.model(input_ids, ctx.positions)
        return self.lm_head(ops.gather(hidden, ctx.logits_index, 0))  # [N, V]

    def kv_row_shapes(self) -> list[tuple[int, int]]:
        """Per layer, the (heads, dim) of one token's K row in SGLang's pool that this model reads."""
        return [layer.self_attn.kv_row_shape for layer in self.model.layers]

    def load_weights(self, weights):
        # a tied checkpoint may still carry lm_head.weight (a copy of the embedding): not loaded
        ignore = (r"^lm_head\.weight$",) if self.config.tie_word_embeddings else ()
        load_weights(self, weights, self.packed, ignore, self.mappers)
