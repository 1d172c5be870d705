"""Run a MindSpore model without SGLang: its own KV pool and per-request page lists.

For parity tests against HF transformers and for benchmarks; SGLang's scheduler is not
involved, but the same plan, backends, layers and kernels are. Slots are handed out in
whole pages per request, as SGLang's paged allocator does, so `page_size=128` exercises the
same block tables as SGLang's NPU pool.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from mindspore_models import device, kernels
from mindspore_models.attention import backend as attention_backend
from mindspore_models.attention.plan import StepPlan
from mindspore_models.attention.pool import KVPool
from mindspore_models.config import check_config_file
from mindspore_models.registry import model_class
from mindspore_models.runtime import step as model_step
from mindspore_models.weights import check_safetensors_files, iter_safetensors


@dataclass
class Sequence:
    tokens: list[int]
    slots: list[int] = field(default_factory=list)  # KV slot of each token already in the pool


def default_pool(cfg, slots: int, page_size: int, dtype: torch.dtype) -> KVPool:
    """A pool shaped like SGLang's CPU pools: token-major, slot 0 padding (MLA: one joint entry)."""
    if cfg.mla:
        shape = (slots, 1, cfg.mla.kv_lora_rank + cfg.mla.qk_rope_head_dim)
        return KVPool([torch.zeros(shape, dtype=dtype) for _ in range(cfg.num_layers)],
                      [None] * cfg.num_layers, page_size, mla=True)
    shape = (slots, cfg.num_kv_heads, cfg.head_dim)
    return KVPool([torch.zeros(shape, dtype=dtype) for _ in range(cfg.num_layers)],
                  [torch.zeros(shape, dtype=dtype) for _ in range(cfg.num_layers)], page_size, mla=False)


class StandaloneRunner:
    def __init__(self, model_dir: str, max_tokens: int = 4096, hf_config=None, page_size: int = 1,
                 make_pool: Callable | None = None, make_backend: Callable | None = None,
                 dtype: torch.dtype = torch.float32):
        """hf_config: the config to build the model from (default: the checkpoint's config.json).
        make_pool(model_config, slots, page_size, dtype) -> KVPool; make_backend(pool) -> backend
        (defaults: SGLang-CPU-shaped pool, the device switch's backend). dtype: parameters and K/V."""
        from transformers import AutoConfig

        device.current()  # SGLMS_DEVICE (default cpu) unless the caller chose already
        kernels.status()  # a missing CPU kernel library stops here, before anything is built
        if hf_config is None:
            check_config_file(model_dir)
        check_safetensors_files(model_dir)
        hf = hf_config or AutoConfig.from_pretrained(model_dir)
        self.model = model_class(hf.architectures)(hf)
        self.model.cast(dtype)
        self.model.load_weights(iter_safetensors(model_dir))
        self.page_size = page_size
        pages = -(-max_tokens // page_size) + 1  # page 0 is padding, as in SGLang
        self.pool = (make_pool or default_pool)(self.model.config, pages * page_size, page_size, self.model.kv_dtype)
        self.pool.check(self.model.kv_row_shapes(), self.model.kv_dtype)
        self.backend = (make_backend or attention_backend.for_device)(self.pool)
        self.run = model_step.bind(self.model, self.backend)  # the compiled graph where the backend allows
        self.free_pages = list(range(pages - 1, 0, -1))

    def _slots_for(self, seq: Sequence, n: int) -> list[int]:
        """Slots for the next n tokens of seq: the rest of its last page, then fresh pages."""
        fresh, page = [], (seq.slots[-1] // self.page_size if seq.slots else None)
        for pos in range(len(seq.slots), len(seq.slots) + n):
            if pos % self.page_size == 0:
                if not self.free_pages:
                    raise RuntimeError("standalone KV pool is full")
                page = self.free_pages.pop()
            fresh.append(page * self.page_size + pos % self.page_size)
        return fresh

    def step(self, seqs: list[Sequence], new: list[list[int]], all_logits: bool = False) -> torch.Tensor:
        """Append `new[i]` to `seqs[i]` and run them as one batch; returns logits [N, V]."""
        positions, slots, ids = [], [], []
        for seq, toks in zip(seqs, new):
            fresh = self._slots_for(seq, len(toks))
            positions += range(len(seq.slots), len(seq.slots) + len(toks))
            seq.tokens += toks
            seq.slots += fresh
            slots += fresh
            ids += toks
        table = torch.zeros(len(seqs), max(len(s.slots) for s in seqs), dtype=torch.int64)
        for i, s in enumerate(seqs):
            table[i, : len(s.slots)] = torch.tensor(s.slots)
        plan = StepPlan.build(torch.tensor([len(s.slots) for s in seqs]), torch.tensor([len(t) for t in new]),
                              table, torch.tensor(positions), torch.tensor(slots), self.page_size, all_logits)
        logits = model_step.forward(self.run, self.backend, plan, torch.tensor(ids))
        return logits.float().clone()

    def prefill_logits(self, prompt: list[int]) -> torch.Tensor:
        return self.step([Sequence([])], [list(prompt)], all_logits=True)

    def greedy(self, prompts: list[list[int]], max_new_tokens: int) -> list[list[int]]:
        seqs = [Sequence([]) for _ in prompts]
        logits = self.step(seqs, [list(p) for p in prompts])
        out = [[] for _ in prompts]
        for _ in range(max_new_tokens):
            nxt = logits.argmax(-1).tolist()
            for o, t in zip(out, nxt):
                o.append(t)
            logits = self.step(seqs, [[t] for t in nxt])
        return out
