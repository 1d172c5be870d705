"""One step's attention plan: what every backend needs, computed once on the host in torch.

Device-agnostic: slots, per-request lengths, the key table and the paged block table, and
whether the step is a prefill with no cached prefix (Ascend's FlashAttention case). Each
backend turns a plan into its own step metadata (`backend.prepare(plan)`), so no backend
carries another's fields. Torch on the host because small index ops cost ~2 us there against
~45 us per MindSpore PyNative launch.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch


@dataclass(frozen=True, eq=False)
class StepPlan:
    positions: torch.Tensor  # [T] int64, position of each new token
    slots: torch.Tensor  # [T] int64, KV slot each new token writes (SGLang's out_cache_loc)
    seq_lens: torch.Tensor  # [B] int64, keys per request after this step (prefix + new)
    q_lens: torch.Tensor  # [B] int64, new tokens per request
    token_table: torch.Tensor  # [B, S] int64, KV slot of key j of request b (S = max seq_lens)
    page_size: int
    logits_index: torch.Tensor  # [N] int64, tokens whose logits are returned

    @classmethod
    def build(cls, seq_lens, q_lens, token_table, positions, slots, page_size: int = 1,
              all_logits: bool = False) -> "StepPlan":
        seq_lens, q_lens = seq_lens.to(torch.int64).cpu(), q_lens.to(torch.int64).cpu()
        width = int(seq_lens.max())
        logits_index = torch.arange(int(q_lens.sum())) if all_logits else torch.cumsum(q_lens, 0) - 1
        return cls(positions.to(torch.int64).cpu(), slots.to(torch.int64).cpu(), seq_lens, q_lens,
                   token_table[:, :width].to(torch.int64).cpu(), page_size, logits_index)

    @property
    def batch_size(self) -> int:
        return self.seq_lens.numel()

    @property
    def num_tokens(self) -> int:
        return self.slots.numel()

    @functools.cached_property
    def prefix_lens(self) -> torch.Tensor:
        return self.seq_lens - self.q_lens  # [B]

    @functools.cached_property
    def no_prefix(self) -> bool:
        """A prefill where no request has cached keys: attention needs only this step's K/V."""
        return bool((self.prefix_lens == 0).all())

    @functools.cached_property
    def q_starts(self) -> torch.Tensor:
        return torch.cumsum(self.q_lens, 0) - self.q_lens  # [B] first flat token of each request

    @functools.cached_property
    def block_tables(self) -> torch.Tensor:
        """[B, ceil(S / page)] int32 page ids (SGLang allocates whole pages per request)."""
        return (self.token_table[:, :: self.page_size] // self.page_size).to(torch.int32)
