"""Conventions shared by the Ascend op wrappers and their executable spec.

Chosen once here so the backend, the real ops and the reference agree:

* FlashAttentionScore runs in the documented "TND" layout: query `[T1, N1, D]`,
  key/value `[T2, N2, D]`, `actual_seq_qlen`/`actual_seq_kvlen` are CUMULATIVE host lists
  (e.g. lengths [4, 2] -> [4, 6]), sparse_mode 3 (right-down causal) with the compressed
  2048x2048 uint8 mask (1 = discard). Why not sgl-mindspore's "TH" layout with per-request
  lengths and a float 128x128 mask: "TH" is marked experimental and its length and mask
  conventions are not documented in MindSpore 2.10, so nothing here could check them.
* PagedAttention gets, when any request has more than one query token, a lookahead mask
  `[T, max(context_lens)]` in the query dtype: 0 where a token may attend, MASKED_VALUE
  where it may not (fp16: a large negative additive value, bf16: 1), the values used by
  SGLang's Ascend backend and upstream's MindSpore glue. The value itself is unverified
  here; the reference checks the mask's zero pattern.
"""
from __future__ import annotations

import torch

FA_MASK_SIZE = 2048  # sparse_mode 2/3/4 take a compressed (2048, 2048) mask
FA_SPARSE_MODE = 3  # rightDownCausal
FA_LAYOUT = "TND"
MASKED_VALUE = {torch.float16: -10000.0, torch.bfloat16: 1.0}


def fa_compressed_mask() -> torch.Tensor:
    """uint8 `[2048, 2048]`, 1 strictly above the diagonal (= discard)."""
    ones = torch.ones(FA_MASK_SIZE, FA_MASK_SIZE, dtype=torch.uint8)
    return torch.triu(ones, diagonal=1)


def cumulative(lengths) -> list[int]:
    """Per-request lengths -> the cumulative list TND expects."""
    out, total = [], 0
    for n in lengths:
        total += int(n)
        out.append(total)
    return out


def causal_visible(q_len: int, kv_len: int) -> torch.Tensor:
    """bool `[q_len, kv_len]`: query i (the last q_len tokens of kv_len) sees j <= kv_len-q_len+i."""
    rows = torch.arange(q_len).unsqueeze(1) + (kv_len - q_len)
    return torch.arange(kv_len).unsqueeze(0) <= rows


def paged_lookahead_mask(q_seq_lens, context_lens, dtype: torch.dtype) -> torch.Tensor:
    """`[sum(q_seq_lens), max(context_lens)]` mask for PagedAttention with q_seq_lens."""
    q_lens, kv_lens = [int(n) for n in q_seq_lens], [int(n) for n in context_lens]
    width = max(kv_lens)
    mask = torch.zeros(sum(q_lens), width, dtype=dtype)
    row = 0
    for q, kv in zip(q_lens, kv_lens):
        hidden = torch.ones(q, width, dtype=torch.bool)
        hidden[:, :kv] = ~causal_visible(q, kv)
        mask[row:row + q][hidden] = MASKED_VALUE[dtype]
        row += q
    return mask
