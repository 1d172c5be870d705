from __future__ import annotations

from mindspore import mint, nn


class SiluAndMul(nn.Cell):
    """[.., 2*I] packed gate|up -> silu(gate) * up."""

    def construct(self, x):
        gate, up = mint.chunk(x, 2, -1)
        return mint.nn.functional.silu(gate) * up
