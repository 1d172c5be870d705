"""The one place where tensors cross between torch and MindSpore.

Large tensors that both sides must see (the KV pool, logits) cross zero-copy by DLPack.
Small per-step metadata is copied instead: on CPU, MindSpore re-imports a DLPack-shared
tensor in every op that reads it (~0.5 ms each), far more than one small copy costs.
"""
from __future__ import annotations

import mindspore as ms
import torch

from mindspore_models import device


def to_ms(t: torch.Tensor | None) -> ms.Tensor | None:
    if t is None:
        return None
    return ms.utils.dlpack.from_dlpack(torch.utils.dlpack.to_dlpack(t.contiguous()))


def copy_to_ms(t: torch.Tensor) -> ms.Tensor:
    """A MindSpore-owned copy, for small per-step tensors (indices, positions, masks). numpy has no
    bfloat16, so a bf16 tensor crosses as float32 (exact: every bf16 value is a float32 value) and
    MindSpore stores it back in bf16."""
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        return ms.Tensor(t.float().numpy(), dtype=ms.bfloat16)
    return ms.Tensor(t.numpy())


def copy_int32_to_ms(t: torch.Tensor) -> ms.Tensor:
    """An index or length tensor as the int32 MindSpore copy the kernels and Ascend ops take."""
    return copy_to_ms(t.to(torch.int32))


def to_torch(x: ms.Tensor | None) -> torch.Tensor | None:
    if x is None:
        return None
    out = torch.utils.dlpack.from_dlpack(ms.utils.dlpack.to_dlpack(x))
    device.synchronize()
    return out


_MS_DTYPES = {torch.float32: ms.float32, torch.float16: ms.float16, torch.bfloat16: ms.bfloat16}


def ms_dtype(dtype: torch.dtype):
    if dtype not in _MS_DTYPES:
        raise ValueError(f"MindSpore models compute in {sorted(map(str, _MS_DTYPES))}, not {dtype}")
    return _MS_DTYPES[dtype]
