"""SGLang's KV pool as the attention backends see it: per-layer torch buffers, checked once.

SGLang keeps K/V per layer in one of these layouts (all share the same memory order, slot =
page * page_size + offset):
- CPU MHA pool: token-major `[slots, heads, dim]` for K and for V, any page size;
- NPU MHA pool (`NPUMHATokenToKVPool`): page-major `[pages, page_size, heads, dim]`;
- CPU MLA pool: one token-major `[slots, 1, latent + rope]` buffer;
- NPU MLA pool (`NPUMLATokenToKVPool`): latent `[pages, page_size, 1, latent]` and rope
  `[pages, page_size, 1, rope]` in two buffers.
`KVPool` records which one it holds and hands each backend the view it needs, without copies.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class KVPool:
    keys: list[torch.Tensor]  # per layer: K (MHA), the latent or the joint latent+rope (MLA)
    values: list[torch.Tensor | None]  # per layer: V (MHA), the rope part (split MLA pool), None (joint MLA)
    page_size: int
    mla: bool

    @classmethod
    def from_sglang(cls, pool, num_layers: int, mla: bool) -> "KVPool":
        keys = [pool.get_key_buffer(i) for i in range(num_layers)]
        if mla:
            split = keys[0].dim() == 4  # the NPU MLA pool keeps the rope part in the "value" buffer
            values = [pool.get_value_buffer(i) if split else None for i in range(num_layers)]
        else:
            values = [pool.get_value_buffer(i) for i in range(num_layers)]
        return cls(keys, values, int(getattr(pool, "page_size", 1) or 1), mla)

    @property
    def dtype(self) -> torch.dtype:
        return self.keys[0].dtype

    def check(self, rows: list[tuple[int, int]], dtype: torch.dtype, hint: str = "") -> None:
        """`rows`: per layer the (heads, dim) of one token's K row the model reads (MLA: (1, latent + rope))."""
        if self.dtype != dtype:
            raise ValueError(f"SGLang's KV pool is {self.dtype} but the model computes K/V in {dtype}: "
                             "pass the same --dtype to both (--kv-cache-dtype auto)")
        for layer, row in enumerate(rows):
            got = self.row_shape(layer)
            if got != tuple(row):
                raise ValueError(f"SGLang's KV pool layer {layer} holds rows of shape {got} (heads, dim) but the "
                                 f"MindSpore model expects {tuple(row)}{hint}")

    def row_shape(self, layer: int) -> tuple[int, int]:
        k, v = self.keys[layer], self.values[layer]
        if self.mla and v is not None:  # split latent | rope buffers
            return (1, k.shape[-1] + v.shape[-1])
        return tuple(k.shape[-2:])

    def token_major(self, t: torch.Tensor) -> torch.Tensor:
        """[slots, heads, dim] view of a buffer, whichever layout SGLang chose."""
        return t.reshape(-1, *t.shape[-2:])

    def page_major(self, t: torch.Tensor) -> torch.Tensor:
        """[pages, page_size, heads, dim] view (what Ascend's paged ops take)."""
        if t.dim() == 4:
            return t
        if t.shape[0] % self.page_size:
            raise ValueError(f"KV buffer of {t.shape[0]} slots is not a whole number of {self.page_size}-token pages")
        return t.reshape(-1, self.page_size, *t.shape[-2:])


def sglang_npu_pool(cfg, slots: int, page_size: int, dtype: torch.dtype, device: str = "cpu") -> KVPool:
    """SGLang's own NPU pool classes (`NPUMHATokenToKVPool`, `NPUMLATokenToKVPool`) for a model config
    (`config.ModelConfig`): the layout the Ascend backend reads. They instantiate on CPU too, which
    the CPU checks of the Ascend path use; SGLang adds one padding page to `slots - page_size`."""
    from sglang.srt.hardware_backend.npu import memory_pool_npu as npu

    size = slots - page_size
    if cfg.mla:
        from sglang.srt.runtime_context import get_parallel

        with get_parallel().override(attn_dcp_size=1, attn_dcp_rank=0):
            pool = npu.NPUMLATokenToKVPool(size, page_size, dtype, cfg.mla.kv_lora_rank, cfg.mla.qk_rope_head_dim,
                                           cfg.num_layers, device, False)
    else:
        pool = npu.NPUMHATokenToKVPool(size, page_size, dtype, cfg.num_kv_heads, cfg.head_dim, cfg.num_layers,
                                       device, False)
    return KVPool.from_sglang(pool, cfg.num_layers, mla=cfg.mla is not None)
