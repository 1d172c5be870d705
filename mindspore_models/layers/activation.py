from __future__ import annotations

from mindspore import nn

from mindspore_models import kernels


class SiluAndMul(nn.Cell):
    """[.., 2*I] packed gate|up -> silu(gate) * up."""

    def construct(self, x):
        return kernels.silu_mul(x)
