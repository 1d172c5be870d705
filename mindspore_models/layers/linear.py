"""Linear layers. Weights keep HF's (out, in) layout: one GEMM path for every layer and the LM
head (kernels.matmul_nt: the MatMulNT kernel, AVX-512 register tiles up to 16 rows and oneDNN's
sgemm above, on this layout; fallback MatMul(transpose_b), ~2.7x faster than mint.matmul on
(in, out) at prefill sizes here).

A packed layer (qkv_proj, gate_up_proj) declares its shards; the weight loader assembles
the HF tensors of all shards, checks every shape, and sets the parameter once complete.

Tensor parallel: a column-parallel layer keeps rows `take[shard]` of each shard's HF weight
(its share of heads or of the intermediate size); a row-parallel layer keeps the columns
`in_take` of the input and all-reduces its output. Checkpoints are always unsharded.
"""
from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import Parameter, nn

from mindspore_models import kernels, parallel


class Linear(nn.Cell):
    def __init__(self, in_features: int, out_features: int, bias: bool = False,
                 shards: dict[str | int, int] | None = None, take: dict | None = None,
                 in_take: tuple[int, int] | None = None, row_order: np.ndarray | None = None):
        """in/out_features: full (unsharded) sizes. shards: shard id -> full HF rows, in order.
        take: shard id -> (start, count) rows this rank keeps (column parallel).
        in_take: (start, count) input columns this rank keeps (row parallel).
        row_order: a permutation of the full output rows applied at load (e.g. de-interleaving rope)."""
        super().__init__()
        self.shards = shards or {None: out_features}
        assert sum(self.shards.values()) == out_features, "shard sizes must add up to out_features"
        self.take = take or {s: (0, n) for s, n in self.shards.items()}
        self.in_take = in_take
        self.row_order = row_order
        self.in_features = in_features
        local_in = in_take[1] if in_take else in_features
        local_out = sum(n for _, n in self.take.values())
        self.weight = Parameter(ms.Tensor(np.zeros((local_out, local_in), np.float32)), name="weight")
        self.bias = Parameter(ms.Tensor(np.zeros(local_out, np.float32)), name="bias") if bias else None
        # row parallel: the bias is added once, by rank 0, before the sum over ranks
        self.add_bias = bias and (in_take is None or parallel.tp().rank == 0)

    def construct(self, x):
        y = kernels.matmul_nt(x, self.weight)
        if self.add_bias:
            y = y + self.bias
        return parallel.all_reduce(y) if self.in_take else y

    def shards_of(self, param: str) -> dict:
        return self.shards

    def expected_shape(self, param: str, shard) -> tuple[int, ...]:
        rows = self.shards[shard]
        return (rows, self.in_features) if param == "weight" else (rows,)

    def assemble(self, param: str, parts: dict) -> np.ndarray:
        """HF tensors of every shard (each (rows, in) or (rows,)) -> this rank's (out, in) part."""
        ordered = {s: p[self.row_order] if self.row_order is not None else p for s, p in parts.items()}
        full = np.concatenate([ordered[s][start: start + n] for s, (start, n) in self.take.items()], axis=0)
        if param != "weight":
            return full
        if self.in_take:
            start, n = self.in_take
            full = full[:, start: start + n]
        return np.ascontiguousarray(full)


def column_parallel(in_features: int, shards: dict, bias: bool = False, take: dict | None = None,
                    row_order: np.ndarray | None = None) -> Linear:
    """Each rank keeps its share of every shard's rows (unless `take` says otherwise): equal when the TP
    size divides them, else within one row (TP.share; the row-parallel layer after it sums over ranks)."""
    tp = parallel.tp()
    take = take or {s: tp.share(n) for s, n in shards.items()}
    return Linear(in_features, sum(shards.values()), bias, shards, take, row_order=row_order)


def row_parallel(in_features: int, out_features: int, bias: bool = False) -> Linear:
    """Each rank keeps its share of the input columns (TP.share, as the column-parallel layer before it);
    outputs are summed over ranks."""
    tp = parallel.tp()
    return Linear(in_features, out_features, bias, in_take=tp.share(in_features) if tp.size > 1 else None)
