from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import Parameter, nn, ops

from mindspore_models import kernels
from mindspore_models.runtime import context


class Embedding(nn.Cell):
    def __init__(self, vocab: int, dim: int):
        super().__init__()
        self.vocab, self.dim = vocab, dim
        self.weight = Parameter(ms.Tensor(np.zeros((vocab, dim), np.float32)), name="weight")

    def construct(self, ids):
        # mint's embedding kernel is not registered on CPU; a row gather is the same thing.
        return ops.gather(self.weight, ids, 0)


class LMHead(nn.Cell):
    """hidden [N, H] -> logits [N, V]; with tied embeddings it reads the embedding's (V, H) table."""

    def __init__(self, vocab: int, dim: int, tied_to: Embedding | None = None):
        super().__init__()
        self.tied_to = tied_to
        if tied_to is None:
            self.weight = Parameter(ms.Tensor(np.zeros((dim, vocab), np.float32)), name="weight")

    def construct(self, x):
        if self.tied_to is not None:
            return kernels.matmul_nt(x, self.tied_to.weight, context.rows_hint(logits=True))
        return kernels.matmul(x, self.weight, context.rows_hint(logits=True))

    def expected_shape(self, param: str, shard) -> tuple[int, ...]:
        return (self.weight.shape[1], self.weight.shape[0])  # HF stores (vocab, hidden)

    def assemble(self, param: str, parts: dict) -> np.ndarray:
        return np.ascontiguousarray(parts[None].T)
