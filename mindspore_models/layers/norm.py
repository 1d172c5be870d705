from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import Parameter, nn

from mindspore_models import kernels


class RMSNorm(nn.Cell):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = Parameter(ms.Tensor(np.ones(dim, np.float32)), name="weight")

    def construct(self, x):
        return kernels.rms_norm(x, self.weight, self.eps)
