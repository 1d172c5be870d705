"""Tensor parallelism: this rank's place in the TP group, and the collectives layers call.

Rank and size come from SGLang's parallel state when running inside SGLang, else (0, 1).
`simulate(rank, size)` pretends to be one rank of a group inside a single process, for the
sharding tests: collectives then return this rank's partial result and the test combines
the ranks the way the collective would. Real collectives go where the device switch says
(`collectives()`): SGLang's torch group on CPU, the matching MindSpore HCCL group on NPU.
"""
from __future__ import annotations

import functools
from contextlib import contextmanager
from dataclasses import dataclass

from mindspore import ops

from mindspore_models import bridge, device


@dataclass(frozen=True)
class TP:
    rank: int = 0
    size: int = 1

    def split(self, total: int, what: str) -> tuple[int, int]:
        """(start, count) of this rank's equal share of `total` heads (or rows that must split evenly)."""
        if total % self.size:
            sizes = ", ".join(str(n) for n in range(1, total + 1) if total % n == 0)
            raise ValueError(f"{what} = {total} does not divide by tensor-parallel size {self.size} "
                             f"(tensor-parallel sizes that divide it: {sizes})")
        count = total // self.size
        return self.rank * count, count

    def share(self, total: int) -> tuple[int, int]:
        """(start, count) of this rank's share of `total` columns whose partial results are summed over
        ranks (an MLP's intermediate size): equal when the TP size divides `total`, else within one."""
        start, end = self.rank * total // self.size, (self.rank + 1) * total // self.size
        return start, end - start

    def vocab(self, total: int) -> tuple[int, int, int]:
        """(start, count, rows) of this rank's vocabulary slice: the vocabulary is padded to a multiple
        of the TP size (as SGLang's VocabParallelEmbedding does), every rank holds `rows` = the padded
        share, of which the first `count` are real tokens (the last rank may hold fewer; the rest are zeros)."""
        rows = -(-total // self.size)
        start = min(self.rank * rows, total)
        return start, min(rows, total - start), rows

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
    return collectives().all_reduce(x)


def all_gather_last(x):
    """Concatenation of x over the TP group along the last dim."""
    if tp().size == 1 or _simulated is not None:
        return x
    return collectives().all_gather_last(x)


class TorchGroupCollectives:
    """CPU: SGLang's own TP group coordinator (gloo on a plain CPU); tensors cross by DLPack.
    A call into torch cannot sit inside a compiled MindSpore graph: the graph is cut there."""

    def __init__(self):
        from sglang.srt.distributed.parallel_state import get_tp_group

        self.group = get_tp_group()

    def all_reduce(self, x):
        return bridge.to_ms(self.group.all_reduce(bridge.to_torch(x)))

    def all_gather_last(self, x):
        return bridge.to_ms(self.group.all_gather(bridge.to_torch(x), dim=-1))


class MindSporeGroupCollectives:
    """NPU (NOT exercised here): MindSpore's HCCL ops on the group upstream's mindspore_runner
    created from SGLang's TP group communicator, under that group's unique name (not the world)."""

    def __init__(self):
        from sglang.srt.distributed.parallel_state import get_tp_group

        name = get_tp_group().unique_name
        self._reduce, self._gather = ops.AllReduce(group=name), ops.AllGather(group=name)

    def all_reduce(self, x):
        return self._reduce(x)

    def all_gather_last(self, x):
        return self._gather(x.swapaxes(0, -1)).swapaxes(0, -1)


def collectives():
    """The tensor-parallel collectives for the selected device, built once."""
    return collectives_for(device.current())


@functools.cache
def collectives_for(device_name: str):
    return TorchGroupCollectives() if device_name == "cpu" else MindSporeGroupCollectives()
