"""CPU attention backend: the custom kernels of kernels/cpu, or pure-MindSpore fallbacks.

K/V rows are written into SGLang's pool in place (token-major view, any page size). With the
kernels, `KernelAttention` writes them with KvCacheWrite and the PagedAttention kernel reads
each request's keys in place through the slot table: every input is a tensor, so the model
compiles into one graph (`compiles`). Without them, each request's keys are gathered into a
padded [B, S] batch and attended with one masked batched matmul (GQA groups share a KV head
without repeating it), in PyNative. MLA attends in latent space over the joint
[latent | rope] entries, one KV "head" shared by every query head (gathered path, PyNative).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import mindspore as ms
import numpy as np
import torch
from mindspore import mint, nn, ops

from mindspore_models import bridge, kernels, parallel
from mindspore_models.attention.backend import EagerAttention
from mindspore_models.attention.plan import StepPlan
from mindspore_models.attention.pool import KVPool
from mindspore_models.kernels import KVBuffer

MASKED = -1e30  # finite, so fully masked padding rows give no NaN


@dataclass(eq=False)
class CpuStep:
    """One step's metadata for the CPU fallback paths (MindSpore tensors, built once per step)."""

    slots: ms.Tensor  # [T] int64, KV slot each new token writes
    slot_runs: list[tuple[int, int, int]]  # the same slots as contiguous runs (fallback KV write)
    seq_lens: ms.Tensor  # [B] int32
    q_starts: ms.Tensor  # [B] int32, first flat token of each request
    q_lens: ms.Tensor  # [B] int32
    kv_slots: ms.Tensor  # [B, S] int32, KV slot of key j of request b (padding -> slot 0)
    q_index: ms.Tensor  # [B, Lq] int32, flat token of query i of request b (padding -> 0)
    out_index: ms.Tensor  # [T] int32, row of each flat token in the padded [B*Lq] layout
    mask_inputs: tuple  # (q_pos [B, Lq] torch, S, dtype): the mask is built only if a path needs it

    @functools.cached_property
    def mask(self) -> ms.Tensor:
        """[B, 1, 1, Lq, S] additive causal + length mask for the gathered paths. O(B*Lq*S):
        never built when the PagedAttention kernel does the attention."""
        q_pos, s, dtype = self.mask_inputs
        allowed = torch.arange(s)[None, None, :] <= q_pos[:, :, None]  # [B, Lq, S]
        mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, MASKED)
        return bridge.copy_to_ms(mask[:, None, None])


class KernelAttention(nn.Cell):
    """One layer over the pool with the custom kernels; step = (slots [T] int64, kv_slots [B, S],
    seq_lens [B], q_starts [B], q_lens [B]) int32. Pure tensor ops: compiles."""

    def __init__(self, k: KVBuffer, v: KVBuffer, spec):
        super().__init__()
        self.k_ref, self.v_ref, self.pair_ref = k.ref, v.ref, kernels.pair_ref(k, v)
        self.scale = ms.Tensor([spec.scale], ms.float32)
        self.write, self.paged_attention = kernels.op("KvCacheWrite"), kernels.op("PagedAttention")
        # the attention prologue (q/k norm where the model has it, rope) fused with the KV write;
        # float32 pools only: the op writes float rows
        self.fused_qkv = kernels.active("QkNormRopeCache") and k.view.dtype == ms.float32
        self.q_heads = ms.Tensor(np.zeros(spec.heads, np.int32))  # its shape tells the fused op's infer Hq

    def qkv(self, qkv, positions, q_norm, k_norm, eps, cos, sin, step):
        slots, kv_slots, seq_lens, q_starts, q_lens = step
        q = kernels.qk_norm_rope_cache(qkv, self.q_heads, q_norm, k_norm, eps, positions, cos, sin, self.pair_ref,
                                       slots)  # [T, Hq, D], this step's K/V rows written
        return self.paged_attention(q, self.pair_ref, kv_slots, seq_lens, q_starts, q_lens, self.scale, q, q)

    def construct(self, q, k, v, step):
        slots, kv_slots, seq_lens, q_starts, q_lens = step
        k_written, v_written = self.write(self.k_ref, slots, k), self.write(self.v_ref, slots, v)
        return self.paged_attention(q, self.pair_ref, kv_slots, seq_lens, q_starts, q_lens, self.scale, k_written,
                                    v_written)  # after both writes: they are its inputs


KERNEL_STEP = (ms.int64, ms.int32, ms.int32, ms.int32, ms.int32)  # dtypes of KernelAttention's step
GRAPH_KERNELS = ("KvCacheWrite", "PagedAttention", "RmsNorm", "RopeNeox", "MatMulNT", "SiluMul")


class CpuBackend:
    jit_level = None  # MindSpore's default

    def __init__(self, pool: KVPool):
        self.pool = pool
        # The pool is allocated once and never moves, so it is wrapped once.
        self.kv = [(KVBuffer.wrap(pool.token_major(k)), KVBuffer.wrap(pool.token_major(v)) if v is not None else None)
                   for k, v in zip(pool.keys, pool.values)]
        if pool.mla and any(v is not None for v in pool.values):
            raise ValueError("the CPU backend reads MLA entries as one [latent | rope] row (SGLang's CPU MLA pool), "
                             "not the NPU pool's split buffers")
        self.paged = not pool.mla and kernels.active("KvCacheWrite") and kernels.active("PagedAttention")
        # One graph per model: every kernel has a C++ shape function; collectives (tp > 1) cross into
        # torch and MLA's gathered path reads the pool as a host tensor, so those stay PyNative.
        self.compiles = self.paged and parallel.tp().size == 1 and all(kernels.active(k) for k in GRAPH_KERNELS)

    def attention(self, spec) -> nn.Cell:
        if self.paged:
            return KernelAttention(*self.kv[spec.layer_id], spec)
        return EagerAttention(self, spec)

    @staticmethod
    def split_step(step) -> tuple:
        """(the graph phase, the step's graph inputs): one phase, one graph."""
        return None, step

    def step_signature(self, phase=None) -> tuple:
        """The compiled graph's step input: dynamic-shape tensors (one compile for every batch)."""
        return tuple(ms.Tensor(shape=[None] * (2 if i == 1 else 1), dtype=d) for i, d in enumerate(KERNEL_STEP))

    def prepare(self, plan: StepPlan, upstream: dict | None = None):
        """`upstream` (what SGLang's glue prepared) is not used: the CPU kernels take their own layout."""
        if self.paged:
            i32 = bridge.copy_int32_to_ms
            return (bridge.copy_to_ms(plan.slots), i32(plan.token_table), i32(plan.seq_lens), i32(plan.q_starts),
                    i32(plan.q_lens))
        return self.prepare_gathered(plan)

    def prepare_gathered(self, plan: StepPlan) -> CpuStep:
        b, s, lq = plan.batch_size, int(plan.seq_lens.max()), int(plan.q_lens.max())
        i = torch.arange(lq)
        q_valid = i[None, :] < plan.q_lens[:, None]  # [B, Lq]
        q_index = torch.where(q_valid, plan.q_starts[:, None] + i[None, :], 0)
        out_index = (torch.arange(b)[:, None] * lq + i[None, :])[q_valid]  # [T], request-major like the batch
        q_pos = plan.prefix_lens[:, None] + i[None, :]  # [B, Lq] absolute position of each query
        key_valid = torch.arange(s)[None, :] < plan.seq_lens[:, None]
        kv_slots = torch.where(key_valid, plan.token_table[:, :s], 0)
        i32 = bridge.copy_int32_to_ms
        return CpuStep(bridge.copy_to_ms(plan.slots),
                       kernels.slot_runs(plan.slots), i32(plan.seq_lens), i32(plan.q_starts), i32(plan.q_lens),
                       i32(kv_slots), i32(q_index), i32(out_index), (q_pos, s, torch.float32))

    def attend(self, spec, q, k, v, step: CpuStep):
        """Gathered path: q [T, Hq, D], k/v [T, Hkv, D] -> [T, Hq*D]; K/V rows are written into the pool first."""
        k_buf, v_buf = self.kv[spec.layer_id]
        k_done = kernels.kv_cache_write(k_buf, step.slots, k, step.slot_runs)
        v_done = kernels.kv_cache_write(v_buf, step.slots, v, step.slot_runs)
        keys = ops.gather(kernels.pool_view(k_buf, k_done), step.kv_slots, 0)  # [B, S, Hkv, D]
        values = ops.gather(kernels.pool_view(v_buf, v_done), step.kv_slots, 0)
        return padded_attention(q, keys, values, step, spec.group, spec.scale)

    def attend_latent(self, spec, q, entry, step: CpuStep):
        """MLA: q [T, H, L+R] against every cached entry [L+R] (values: its first L) -> [T, H*L]."""
        buf = self.kv[spec.layer_id][0]
        done = kernels.kv_cache_write(buf, step.slots, entry, step.slot_runs)
        cached = ops.gather(kernels.pool_view(buf, done), step.kv_slots, 0)  # [B, S, 1, L+R]
        values = cached[..., : spec.latent]
        return padded_attention(q, cached, values, step, spec.heads, spec.scale)


def padded_attention(q, keys, values, step: CpuStep, group: int, scale: float):
    """q [T, Hkv*G, Dk] with each request's keys/values [B, S, Hkv, Dk|Dv] -> [T, Hkv*G*Dv].

    Queries are padded to [B, Lq]; the step's mask hides future and padding keys."""
    b, s, hkv, dk = keys.shape
    dv = values.shape[-1]
    lq = step.q_index.shape[1]
    queries = ops.gather(q, step.q_index, 0)  # [B, Lq, Hq, Dk]
    queries = queries.reshape(b, lq, hkv, group, dk).permute(0, 2, 3, 1, 4).reshape(b, hkv, group * lq, dk)
    scores = mint.matmul(queries, keys.permute(0, 2, 3, 1)) * scale  # [B, Hkv, G*Lq, S]
    scores = scores.reshape(b, hkv, group, lq, s).astype(ms.float32) + step.mask  # softmax in fp32, as HF
    probs = mint.softmax(scores, -1).astype(values.dtype).reshape(b, hkv, group * lq, s)
    out = mint.matmul(probs, values.permute(0, 2, 1, 3))  # [B, Hkv, G*Lq, Dv]
    out = out.reshape(b, hkv, group, lq, dv).permute(0, 3, 1, 2, 4).reshape(b * lq, hkv * group * dv)
    return ops.gather(out, step.out_index, 0)  # [T, Hq*Dv]
