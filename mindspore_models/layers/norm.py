from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import Parameter, mint, nn


class RMSNorm(nn.Cell):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = Parameter(ms.Tensor(np.ones(dim, np.float32)), name="weight")

    def construct(self, x):
        var = mint.mean(x * x, -1, keepdim=True)
        return x * mint.rsqrt(var + self.eps) * self.weight
