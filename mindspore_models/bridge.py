"""The one place where tensors cross between torch and MindSpore: DLPack, zero-copy both ways."""
from __future__ import annotations

import mindspore as ms
import torch

from mindspore_models import device


def to_ms(t: torch.Tensor | None) -> ms.Tensor | None:
    if t is None:
        return None
    return ms.utils.dlpack.from_dlpack(torch.utils.dlpack.to_dlpack(t.contiguous()))


def to_torch(x: ms.Tensor | None) -> torch.Tensor | None:
    if x is None:
        return None
    out = torch.utils.dlpack.from_dlpack(ms.utils.dlpack.to_dlpack(x))
    device.synchronize()
    return out
