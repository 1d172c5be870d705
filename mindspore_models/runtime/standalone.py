"""Run a MindSpore model without SGLang: a flat KV pool and per-request slot lists.

For parity tests against HF transformers and for benchmarks; SGLang's scheduler is not
involved, but the same ForwardContext, layers and kernels are.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from mindspore_models import bridge, device
from mindspore_models.kernels import KVBuffer
from mindspore_models.registry import model_class
from mindspore_models.runtime.context import forward_context
from mindspore_models.runtime.inputs import build_context
from mindspore_models.weights import iter_safetensors


@dataclass
class Sequence:
    tokens: list[int]
    slots: list[int] = field(default_factory=list)  # KV slot of each token already in the pool


class StandaloneRunner:
    def __init__(self, model_dir: str, max_tokens: int = 4096, hf_config=None):
        """hf_config: the config to build the model from (default: the checkpoint's config.json)."""
        from transformers import AutoConfig

        device.init("cpu")
        hf = hf_config or AutoConfig.from_pretrained(model_dir)
        self.model = model_class(hf.architectures)(hf)
        self.model.load_weights(iter_safetensors(model_dir))
        cfg = self.model.config
        if cfg.mla:  # one latent per token, like SGLang's MLA pool; V is read from the same entry
            shape = (max_tokens + 1, 1, cfg.mla.kv_lora_rank + cfg.mla.qk_rope_head_dim)
            self.pool = [(torch.zeros(shape),) * 2 for _ in range(cfg.num_layers)]
        else:
            shape = (max_tokens + 1, cfg.num_kv_heads, cfg.head_dim)  # slot 0 is padding, as in SGLang
            self.pool = [(torch.zeros(shape), torch.zeros(shape)) for _ in range(cfg.num_layers)]
        self.kv = [(KVBuffer.wrap(k), KVBuffer.wrap(v)) for k, v in self.pool]
        self.next_slot = 1
        self.capacity = max_tokens

    def step(self, seqs: list[Sequence], new: list[list[int]], all_logits: bool = False) -> torch.Tensor:
        """Append `new[i]` to `seqs[i]` and run them as one batch; returns logits [N, V]."""
        positions, slots, ids = [], [], []
        for seq, toks in zip(seqs, new):
            start = len(seq.slots)
            fresh = list(range(self.next_slot, self.next_slot + len(toks)))
            self.next_slot += len(toks)
            if self.next_slot > self.capacity + 1:
                raise RuntimeError("standalone KV pool is full")
            seq.tokens += toks
            seq.slots += fresh
            positions += range(start, start + len(toks))
            slots += fresh
            ids += toks
        width = max(len(s.slots) for s in seqs)
        table = torch.zeros(len(seqs), width, dtype=torch.int64)
        for i, s in enumerate(seqs):
            table[i, : len(s.slots)] = torch.tensor(s.slots)
        ctx = build_context(
            seq_lens=torch.tensor([len(s.slots) for s in seqs]), q_lens=torch.tensor([len(t) for t in new]),
            token_table=table, positions=torch.tensor(positions), out_cache_loc=torch.tensor(slots),
            kv=self.kv, all_logits=all_logits,
        )
        with forward_context(ctx):
            logits = self.model(bridge.copy_to_ms(torch.tensor(ids, dtype=torch.int32)))
        return bridge.to_torch(logits).clone()

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
