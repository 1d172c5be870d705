"""Token embedding and LM head, both split over the vocabulary across tensor-parallel ranks.

A vocabulary the TP size does not divide is padded (`TP.vocab`): every rank holds the same number
of rows, the padding rows are zeros, and the gathered logits are cut back to the real vocabulary."""
from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import Parameter, nn, ops

from mindspore_models import kernels, parallel


class Embedding(nn.Cell):
    def __init__(self, vocab: int, dim: int):
        super().__init__()
        self.vocab, self.dim = vocab, dim
        self.start, self.count, self.rows = parallel.tp().vocab(vocab)
        self.sharded = self.rows != vocab
        self.weight = Parameter(ms.Tensor(np.zeros((self.rows, dim), np.float32)), name="weight")

    def construct(self, ids):
        # mint's embedding kernel is not registered on CPU; a row gather is the same thing.
        if not self.sharded:
            return ops.gather(self.weight, ids, 0)
        local = ids - self.start
        mine = ((local >= 0) & (local < self.rows)).astype(self.weight.dtype).unsqueeze(-1)
        rows = ops.gather(self.weight, ops.clip_by_value(local, 0, self.rows - 1), 0)
        return parallel.all_reduce(rows * mine)  # each token's row comes from the rank that holds it

    def expected_shape(self, param: str, shard) -> tuple[int, ...]:
        return (self.vocab, self.dim)

    def assemble(self, param: str, parts: dict) -> np.ndarray:
        return _padded_rows(parts[None][self.start: self.start + self.count], self.rows)


class LMHead(nn.Cell):
    """hidden [N, H] -> logits [N, V]; with tied embeddings it reads the embedding's (V, H) table."""

    def __init__(self, vocab: int, dim: int, tied_to: Embedding | None = None):
        super().__init__()
        self.tied_to = tied_to
        self.vocab, self.dim = vocab, dim
        self.start, self.count, self.rows = parallel.tp().vocab(vocab)
        self.padded = self.rows * parallel.tp().size != vocab
        self.gathered = parallel.tp().size > 1
        if tied_to is None:
            self.weight = Parameter(ms.Tensor(np.zeros((self.rows, dim), np.float32)), name="weight")  # HF (V, H)

    def construct(self, x):
        weight = self.tied_to.weight if self.tied_to is not None else self.weight
        logits = kernels.matmul_nt(x, weight)
        if self.gathered:
            logits = parallel.all_gather_last(logits)  # [N, rows * tp]
        return logits[:, : self.vocab] if self.padded else logits  # [N, V]

    def expected_shape(self, param: str, shard) -> tuple[int, ...]:
        return (self.vocab, self.dim)  # HF stores (vocab, hidden)

    def assemble(self, param: str, parts: dict) -> np.ndarray:
        return _padded_rows(parts[None][self.start: self.start + self.count], self.rows)


def _padded_rows(part: np.ndarray, rows: int) -> np.ndarray:
    """This rank's vocabulary rows (HF layout), zero rows appended up to the padded share."""
    if part.shape[0] == rows:
        return np.ascontiguousarray(part)
    return np.concatenate([part, np.zeros((rows - part.shape[0],) + part.shape[1:], part.dtype)])
