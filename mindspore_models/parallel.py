"""Tensor parallelism: this rank's place in the TP group, and the collectives layers call.

Rank and size come from SGLang's parallel state when running inside SGLang, else (0, 1).
`simulate(rank, size)` pretends to be one rank of a group inside a single process, for the
sharding tests: collectives then return this rank's partial result and the test combines
the ranks the way the collective would. Real multi-rank collectives (size > 1 outside a
simulation) need several devices and are NOT exercised on the CI machines.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

from mindspore import ops


@dataclass(frozen=True)
class TP:
    rank: int = 0
    size: int = 1

    def split(self, total: int, what: str) -> tuple[int, int]:
        """(start, count) of this rank's equal share of `total` rows/columns/heads."""
        if total % self.size:
            raise ValueError(f"{what} = {total} does not divide by tensor-parallel size {self.size}")
        count = total // self.size
        return self.rank * count, count

    def kv_heads(self, total: int) -> tuple[int, int]:
        """KV heads of this rank: an equal share, or one replicated head when there are fewer than ranks."""
        if total >= self.size:
            return self.split(total, "num_key_value_heads")
        if self.size % total:
            raise ValueError(f"{self.size} ranks cannot share {total} KV heads evenly")
        return self.rank * total // self.size, 1


_simulated: TP | None = None


def tp() -> TP:
    if _simulated is not None:
        return _simulated
    try:
        from sglang.srt.runtime_context import get_parallel

        p = get_parallel()
        return TP(p.tp_rank, p.tp_size)
    except Exception:  # outside SGLang (tests, standalone runner): one rank
        return TP()


@contextmanager
def simulate(rank: int, size: int):
    global _simulated
    prev, _simulated = _simulated, TP(rank, size)
    try:
        yield _simulated
    finally:
        _simulated = prev


def all_reduce(x):
    """Sum of x over the TP group."""
    if tp().size == 1 or _simulated is not None:
        return x
    return ops.AllReduce()(x)  # NOT exercised here: needs several devices


def all_gather_last(x):
    """Concatenation of x over the TP group along the last dim."""
    if tp().size == 1 or _simulated is not None:
        return x
    gathered = ops.AllGather()(x.swapaxes(0, -1))  # NOT exercised here: needs several devices
    return gathered.swapaxes(0, -1)
