"""The dense pre-norm decoder shared by Llama-family models; differences are flags on the config."""
from __future__ import annotations

import torch
from mindspore import nn, ops

from mindspore_models import bridge, parallel
from mindspore_models.config import ModelConfig
from mindspore_models.layers.activation import SiluAndMul
from mindspore_models.layers.attention import Attention
from mindspore_models.layers.embedding import Embedding, LMHead
from mindspore_models.layers.linear import column_parallel, row_parallel
from mindspore_models.layers.norm import RMSNorm
from mindspore_models.layers.rope import RotaryEmbedding
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
        self.attn = Attention(self.hq, self.hkv, self.d, layer_id)
        self.kv_row_shape = (self.hkv, d)  # one token's K (and V) row in this rank's pool

    def construct(self, positions, x, step):
        return self.o_proj(self.attn.packed(self.qkv_proj(x), positions, self.q_norm, self.k_norm, self.rotary, step))


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

    def construct(self, positions, x, residual, step):
        """x: the previous layer's output, added into the residual stream here; at the first layer
        x is the embeddings and residual None. Returns (this layer's output, the residual stream)."""
        if residual is None:  # the stream is updated in place from here on (kernels.add_rms_norm):
            h, residual = self.input_layernorm(x), x + 0  # a new tensor: x may be a DLPack view of torch memory
        else:
            h, residual = self.input_layernorm(x, residual)
        h, residual = self.post_attention_layernorm(self.self_attn(positions, h, step), residual)
        return self.mlp(h), residual


class DecoderModel(nn.Cell):
    def __init__(self, cfg: ModelConfig, make_layer=DecoderLayer):
        super().__init__()
        self.embed_tokens = Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.CellList([make_layer(cfg, i) for i in range(cfg.num_layers)])
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def construct(self, input_ids, positions, step):
        x, residual = self.embed_tokens(input_ids), None  # [T, H]
        for layer in self.layers:
            x, residual = layer(positions, x, residual, step)
        return self.norm(x, residual)[0]


class CausalLM(nn.Cell):
    """Decoder + LM head: (token ids, positions, logits_index, the backend's step) -> logits [N, V].

    Every per-step input is an explicit argument: no globals are read inside `construct`."""

    packed = PACKED_DENSE  # HF projection name -> (packed parameter, shard)
    mappers: tuple = ()  # extra HF name mappers (e.g. per-expert weights), tried first

    def __init__(self, cfg: ModelConfig, model: nn.Cell):
        super().__init__()
        self.config = cfg
        self.model = model
        tied = model.embed_tokens if cfg.tie_word_embeddings else None
        self.lm_head = LMHead(cfg.vocab_size, cfg.hidden_size, tied_to=tied)

    def construct(self, input_ids, positions, logits_index, step):
        hidden = self.model(input_ids, positions, step)
        return self.lm_head(ops.gather(hidden, logits_index, 0))  # [N, V]

    kv_dtype = torch.float32  # K/V rows (and parameters) after cast()

    def cast(self, dtype: torch.dtype) -> None:
        """Keep parameters (and so activations and K/V) in `dtype`; call before load_weights.
        Norms, rope and softmax still accumulate in float32 inside their ops."""
        if dtype == self.kv_dtype:
            return
        for p in self.get_parameters():
            p.set_dtype(bridge.ms_dtype(dtype))
        self.kv_dtype = dtype

    def bind(self, backend) -> None:
        """Each attention layer gets the backend's Cell over its own pool buffers (once the pool exists)."""
        for _, cell in list(self.cells_and_names()):
            if isinstance(cell, Attention):
                cell.bind(backend)

    def kv_row_shapes(self) -> list[tuple[int, int]]:
        """Per layer, the (heads, dim) of one token's K row in SGLang's pool that this model reads."""
        return [layer.self_attn.kv_row_shape for layer in self.model.layers]

    def load_weights(self, weights):
        # a tied checkpoint may still carry lm_head.weight (a copy of the embedding): not loaded
        ignore = (r"^lm_head\.weight$",) if self.config.tie_word_embeddings else ()
        load_weights(self, weights, self.packed, ignore, self.mappers)
        for _, cell in self.cells_and_names():
            if hasattr(cell, "process_weights_after_loading"):
                cell.process_weights_after_loading()
