"""Multi-head latent attention (DeepSeek-V2/V3).

Per token only a compressed latent [kv_lora_rank | rope part] is cached, in SGLang's MLA pool
(one "head" per slot). Attention runs in latent space with kv_b_proj absorbed (as DeepSeek's
inference does): queries are mapped into the latent space per head, attend the cached entries
as one shared KV head, and the latent-space output is mapped to values per head. Cached
latents are never expanded per step. Checkpoints with interleaved rope pairs are
de-interleaved at load time (rows of q_b_proj and kv_a_proj_with_mqa are permuted, the same
permutation for q and k, so q.k is unchanged) and the NeoX rope kernel is used as is.
"""
from __future__ import annotations

import numpy as np
from mindspore import Parameter, mint, nn

from mindspore_models import parallel
from mindspore_models.config import ModelConfig
from mindspore_models.layers.attention import Attention
from mindspore_models.layers.linear import Linear, column_parallel, row_parallel
from mindspore_models.layers.norm import RMSNorm
from mindspore_models.layers.rope import RotaryEmbedding, yarn_mscale


def deinterleave(rope_dim: int) -> np.ndarray:
    """Row order taking (x0, x1), (x2, x3), ... to x0, x2, ..., x1, x3, ..."""
    return np.concatenate([np.arange(0, rope_dim, 2), np.arange(1, rope_dim, 2)])


class MLAttention(nn.Cell):
    def __init__(self, cfg: ModelConfig, layer_id: int):
        super().__init__()
        m = cfg.mla
        # tensor parallel: heads split over ranks (q_b/kv_b column-, o row-parallel); the latent is replicated
        h_start, self.h = parallel.tp().split(cfg.num_heads, "num_attention_heads")
        self.nope, self.rope, self.v, self.lora = m.qk_nope_head_dim, m.qk_rope_head_dim, m.v_head_dim, m.kv_lora_rank
        self.kv_row_shape = (1, self.lora + self.rope)  # SGLang's MLA pool: one latent "head" per token
        qk = self.nope + self.rope
        rope_order = deinterleave(self.rope) if m.rope_interleave else np.arange(self.rope)
        q_rows = np.concatenate([h * qk + np.concatenate([np.arange(self.nope), self.nope + rope_order])
                                 for h in range(cfg.num_heads)])
        q_take = {None: (h_start * qk, self.h * qk)}
        if m.q_lora_rank:
            self.q_a_proj = Linear(cfg.hidden_size, m.q_lora_rank, bias=cfg.qkv_bias)
            self.q_a_layernorm = RMSNorm(m.q_lora_rank, cfg.rms_norm_eps)
            self.q_b_proj = column_parallel(m.q_lora_rank, {None: cfg.num_heads * qk}, take=q_take, row_order=q_rows)
        else:
            self.q_proj = column_parallel(cfg.hidden_size, {None: cfg.num_heads * qk}, take=q_take, row_order=q_rows)
        self.kv_a_proj_with_mqa = Linear(cfg.hidden_size, self.lora + self.rope, bias=cfg.qkv_bias,
                                         row_order=np.concatenate([np.arange(self.lora), self.lora + rope_order]))
        self.kv_a_layernorm = RMSNorm(self.lora, cfg.rms_norm_eps)
        kv_width = self.nope + self.v
        self.kv_b_proj = column_parallel(self.lora, {None: cfg.num_heads * kv_width},
                                         take={None: (h_start * kv_width, self.h * kv_width)})
        self.o_proj = row_parallel(cfg.num_heads * self.v, cfg.hidden_size, bias=cfg.o_bias)
        self.rotary = RotaryEmbedding(self.rope, cfg.max_position, cfg.rope_theta, cfg.rope_scaling)
        self.scale = qk ** -0.5
        scaling = cfg.rope_scaling or {}
        if scaling.get("rope_type") == "yarn" and scaling.get("mscale_all_dim"):
            self.scale *= yarn_mscale(scaling["factor"], scaling["mscale_all_dim"]) ** 2
        self.q_lora = bool(m.q_lora_rank)
        self.attn = Attention(self.h, 1, self.lora + self.rope, layer_id, self.scale, latent=self.lora)

    def construct(self, positions, x, step):
        q = self.q_b_proj(self.q_a_layernorm(self.q_a_proj(x))) if self.q_lora else self.q_proj(x)
        q_nope, q_pe = mint.split(q.reshape(-1, self.h, self.nope + self.rope), [self.nope, self.rope], -1)
        latent, k_pe = mint.split(self.kv_a_proj_with_mqa(x), [self.lora, self.rope], -1)
        latent = self.kv_a_layernorm(latent)
        q_pe, k_pe = self.rotary(positions, q_pe, k_pe.reshape(-1, 1, self.rope))
        q_latent = mint.bmm(q_nope.permute(1, 0, 2), self.w_uk).permute(1, 0, 2)  # [T, H, L]: k_nope absorbed
        entry = mint.cat((latent, k_pe.reshape(-1, self.rope)), -1).reshape(-1, 1, self.lora + self.rope)
        out = self.attn(mint.cat((q_latent, q_pe), -1), entry, step)  # [T, H*L]
        out = mint.bmm(out.reshape(-1, self.h, self.lora).permute(1, 0, 2), self.w_uv)  # [H, T, V]: values absorbed
        return self.o_proj(out.permute(1, 0, 2).reshape(-1, self.h * self.v))

    def process_weights_after_loading(self):
        """Split kv_b_proj per head into the absorbed forms: q_nope @ w_uk scores against the
        latent directly, and the attention output (a mix of latents) @ w_uv gives the values."""
        w = self.kv_b_proj.weight.reshape(self.h, self.nope + self.v, self.lora)  # HF (out, in) layout
        # Parameters, so device.place_parameters moves them with the weights before SGLang sizes its pool
        base = self.kv_b_proj.weight.name
        self.w_uk = Parameter(w[:, : self.nope].contiguous(), f"{base}.w_uk", requires_grad=False)  # [H, nope, L]
        self.w_uv = Parameter(w[:, self.nope:].permute(0, 2, 1).contiguous(), f"{base}.w_uv",
                              requires_grad=False)  # [H, L, V]
