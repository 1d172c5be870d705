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

    def construct(self, x, residual=None):
        """norm(x); or, given the residual stream, the pre-norm step: residual += x, then
        (norm(residual), residual), one fused op on CPU (kernels.add_rms_norm)."""
        if residual is None:
            return kernels.rms_norm(x, self.weight, self.eps)
        return kernels.add_rms_norm(x, residual, self.weight, self.eps)
