"""benchmarks/bench_qwen3.py: its decode clock on scripted arrivals, and (slow) one tiny run end to end."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parent.parent / "benchmarks" / "bench_qwen3.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_qwen3", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_decode_clock_counts_only_tokens_after_every_first_token():
    bench, clock = load_bench(), FakeClock()
    arrivals = bench.DecodeClock(2, clock=clock)
    for now, request, tokens in [(10.0, 0, 1), (11.0, 0, 2),  # request 1's prefill ends late (chunked)
                                 (12.0, 1, 1),                # every request has a token: decode starts
                                 (13.0, 0, 4), (13.0, 1, 2),  # a chunk may carry several tokens
                                 (14.0, 1, 3), (15.0, 1, 4)]:
        clock.now = now
        arrivals.saw(request, tokens)
    assert arrivals.rate(4) == pytest.approx((8 - 3) / (15.0 - 12.0))


def test_decode_clock_rejects_short_or_decode_less_streams():
    bench, clock = load_bench(), FakeClock()
    short = bench.DecodeClock(2, clock=clock)
    short.saw(0, 3)
    short.saw(1, 2)
    with pytest.raises(RuntimeError, match=r"streamed \[3, 2\] tokens per request, expected 3"):
        short.rate(3)
    single = bench.DecodeClock(1, clock=clock)
    single.saw(0, 1)
    with pytest.raises(RuntimeError, match="no decode tokens"):
        single.rate(1)


@pytest.mark.slow
def test_bench_qwen3_runs_every_impl_and_prints_the_verdicts(tmp_path):
    """One 1-layer, one-round pass over all four implementations (the real 28-layer run takes ~25 min)."""
    out = subprocess.run([sys.executable, str(BENCH), "--layers", "1", "--batches", "1", "2", "--decode-tokens", "3",
                          "--repeats", "1", "--rounds", "1"], capture_output=True, text=True, timeout=900,
                         env={**os.environ, "TMPDIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith("| ") and "batch" not in line]
    assert sorted({row.split("|")[1].split()[0] for row in rows}) == ["hf", "mindspore", "mindspore-model", "native"]
    for row in rows:  # every decode cell is a positive number
        assert float(row.split("|")[4]) > 0, row
    assert "decode b1 >= 1.5x native:" in out.stdout and "peak RSS mindspore <= native + 10%" in out.stdout
    assert "0 graph(s)" not in out.stdout and "without a recompile" in out.stdout
    assert not list(tmp_path.glob("bench-qwen3-*")), "the checkpoint folder outlived the run"
