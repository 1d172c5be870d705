"""Attention over SGLang's KV pool, as a layer: what the backend needs to know about it.

The layer only describes itself (`AttentionSpec`); once SGLang's pool exists, the backend the
device switch chose builds the Cell that writes this layer's K/V rows into the pool and attends
(`bind`). The step's inputs reach it as an explicit argument.
"""
from __future__ import annotations

from dataclasses import dataclass

from mindspore import mint, nn


@dataclass(frozen=True)
class AttentionSpec:
    layer_id: int
    heads: int  # query heads on this rank
    kv_heads: int  # KV heads on this rank (1 for MLA's shared latent)
    head_dim: int  # query/key width (MLA: latent + rope)
    scale: float
    latent: int | None = None  # MLA: kv_lora_rank; values are the first `latent` columns of each entry

    @property
    def group(self) -> int:
        return self.heads // self.kv_heads


class Attention(nn.Cell):
    """(q [T, Hq, D], k/v [T, Hkv, D], step) -> [T, Hq*D]; MLA (latent=L): (q [T, H, L+R], entry
    [T, 1, L+R], step) -> [T, H*L]."""

    def __init__(self, num_heads: int, num_kv_heads: int, head_dim: int, layer_id: int,
                 scale: float | None = None, latent: int | None = None):
        super().__init__()
        assert num_heads % num_kv_heads == 0, "query heads must be a multiple of KV heads"
        self.spec = AttentionSpec(layer_id, num_heads, num_kv_heads, head_dim,
                                  head_dim ** -0.5 if scale is None else scale, latent)
        self.impl = None
        self.fused_qkv = False  # set at bind: the backend also takes the packed qkv (see `packed`)

    def bind(self, backend) -> None:
        self.impl = backend.attention(self.spec)
        self.fused_qkv = bool(getattr(self.impl, "fused_qkv", False))

    def packed(self, qkv, positions, q_norm, k_norm, rotary, step):
        """The layer's prologue and attention from the packed projection [T, (Hq+2Hkv)*D] -> [T, Hq*D]:
        q and k RMS-normalised per head (q_norm, k_norm: RMSNorm cells, or None for no q/k norm) and
        rotated by `rotary`, K/V written, attended. Where the backend fuses the prologue
        (`fused_qkv`), that is its one op on the packed qkv; otherwise split, norm + rope, attend."""
        if self.fused_qkv:
            if q_norm is None:
                return self.impl.qkv(qkv, positions, None, None, 0.0, rotary.cos, rotary.sin, step)
            return self.impl.qkv(qkv, positions, q_norm.weight, k_norm.weight, q_norm.eps, rotary.cos, rotary.sin, step)
        spec = self.spec
        q, k, v = mint.split(qkv, [spec.heads * spec.head_dim, spec.kv_heads * spec.head_dim,
                                   spec.kv_heads * spec.head_dim], -1)
        q = q.reshape(-1, spec.heads, spec.head_dim)  # [T, Hq, D]
        k = k.reshape(-1, spec.kv_heads, spec.head_dim)
        v = v.reshape(-1, spec.kv_heads, spec.head_dim)
        if q_norm is not None:  # per-head norm then rope: one op on CPU (kernels.rms_norm_rope)
            q = rotary.normed(positions, q, q_norm.weight, q_norm.eps)
            k = rotary.normed(positions, k, k_norm.weight, k_norm.eps)
        else:
            q, k = rotary(positions, q, k)
        return self.impl(q, k, v, step)

    def construct(self, *inputs):
        if self.impl is None:
            raise RuntimeError("attention layer used before the model was bound to a KV pool (model.bind(backend))")
        return self.impl(*inputs)
