"""Layouts, lengths and masks the Ascend attention ops take, copied from code that has run on Ascend.

Nothing here was run on an NPU by this project. Each value names the anchor it comes from:
- GLUE: upstream SGLang 0.5.23 `sglang/srt/models/mindspore.py` (in the pinned tree): what it
  prepares for every MindSpore model package (`LowerTriangularMask`, `prepare_inputs`);
- SGLMS: sgl-mindspore 5ee7f2f `sgl_mindspore/layers/attention.py` and `models/qwen3.py`, which
  consume those inputs;
- VLLMMS: vllm-mindspore `model_executor/models/attention_mask.py` (GLUE's mask is adapted from it).

`tests/test_ascend_glue_inputs.py` runs GLUE's own code on the same ForwardBatches and checks
that these functions give what it gives, value and dtype.
"""
from __future__ import annotations

import torch

# FlashAttentionScore (prefill with no cached prefix). SGLMS attention.py: `input_layout="TH"`
# (q/k/v [T, heads*head_dim]), `next_tokens=0`, the other attributes at MindSpore's defaults
# (sparse_mode 0: the internal kernel infer_boost selects says "Only support sparse mode in {0}");
# actual_seq_qlen / actual_seq_kvlen are GLUE's per-request q_seq_lens / batch_valid_length as
# int32 tensors, not cumulative lists.
FA_LAYOUT = "TH"
FA_NEXT_TOKENS = 0
FA_SPARSE_MODE = 0

# GLUE LowerTriangularMask: the prefill mask is a 128x128 strict upper triangle times a
# coefficient that depends on the compute dtype (1.0 for bf16, -10000 otherwise) ...
PREFILL_MASK_SIZE = 128
PREFILL_MASK_VALUE = {torch.bfloat16: 1.0, torch.float16: -10000.0}
# ... and PagedAttention's mask for steps with multi-token requests is rows of a cached
# 8192x8192 strict upper triangle times `decode_mask_coeff = -10000.0` for EVERY dtype (bf16
# included; VLLMMS: "BF16 mask(0/-10000)"), picked by each token's position. Past 8192 keys GLUE
# builds the rows per request instead (`create_mask`). Pure decode gets a [1, 1] zero mask.
DECODE_MASK_ROWS = 8192
DECODE_MASK_VALUE = -10000.0


def prefill_mask(dtype: torch.dtype) -> torch.Tensor:
    """GLUE's FlashAttention mask: `[128, 128]` in the compute dtype, PREFILL_MASK_VALUE above the diagonal."""
    upper = torch.ones(PREFILL_MASK_SIZE, PREFILL_MASK_SIZE).triu(1)
    return (upper * PREFILL_MASK_VALUE[dtype]).to(dtype)


def paged_mask(positions, q_lens, seq_lens, dtype: torch.dtype) -> torch.Tensor:
    """GLUE's PagedAttention mask for a step: `[1, 1]` zeros when every request has one new token;
    else `[T, 8192]` (row i: DECODE_MASK_VALUE at keys after token i's position), or, past 8192
    keys, `[T, max(seq_lens)]` with the rows of single-token requests left zero."""
    q_lens, seq_lens = torch.as_tensor(q_lens), torch.as_tensor(seq_lens)
    if int(q_lens.max()) <= 1:
        return torch.zeros(1, 1, dtype=dtype)
    masked = torch.tensor(DECODE_MASK_VALUE).to(dtype)
    width = int(seq_lens.max())
    if width <= DECODE_MASK_ROWS:
        future = torch.arange(DECODE_MASK_ROWS)[None, :] > torch.as_tensor(positions).long()[:, None]
        return torch.where(future, masked, torch.zeros((), dtype=dtype))
    mask, row = torch.zeros(int(q_lens.sum()), width, dtype=dtype), 0
    for q, kv in zip(q_lens.tolist(), seq_lens.tolist()):
        if q > 1:
            mask[row:row + q][~causal_visible(q, width, kv)] = masked
        row += q
    return mask


def causal_visible(q_len: int, width: int, kv_len: int | None = None) -> torch.Tensor:
    """bool `[q_len, width]`: query i (the last q_len of kv_len tokens) sees keys j <= kv_len-q_len+i."""
    kv_len = width if kv_len is None else kv_len
    rows = torch.arange(q_len).unsqueeze(1) + (kv_len - q_len)
    return torch.arange(width).unsqueeze(0) <= rows
