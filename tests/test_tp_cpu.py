"""Tensor parallelism on a plain CPU (sglang_patches/0003): SGLang's own torch model served with
tp_size=2 gives the same greedy tokens as tp_size=1.

Both engines run in ONE child Python (the installed wheel, cwd outside the source tree): an engine
whose rank dies SIGKILLs its parent, which must not be pytest. The child reports, for each engine,
the output ids, the engine's tp_size and the names of its live processes: with tp 2 there must be
two scheduler ranks (`sglang::scheduler_TP0`, `sglang::scheduler_TP1`), not one.

The checkpoint is deliberately unaligned (6 heads / 2 KV heads, intermediate 136, vocab 389): on
CPU SGLang pads the intermediate size and the vocabulary per TP size, and the sharded model must
still load the checkpoint's real sizes.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

NEW_TOKENS = 16
CHUNK = 64  # the 150-token prompt is prefilled in three chunks


def prompts(vocab: int = 380) -> list[list[int]]:
    import random

    rng = random.Random(0)
    return [[rng.randrange(3, vocab) for _ in range(n)] for n in (5, 37, 150, 12)]


def cpu_bind_for_two_ranks() -> str:
    """SGLANG_CPU_OMP_THREADS_BIND for 2 ranks: without it SGLang refuses more ranks than NUMA nodes."""
    cores = sorted(os.sched_getaffinity(0))
    return f"{cores[0]}|{cores[1 % len(cores)]}"


CHILD = textwrap.dedent(
    """
    import json, os, sys
    import psutil
    import sglang as sgl

    args = json.loads(sys.argv[1])

    def run(tp):
        engine = sgl.Engine(model_path=args["model"], model_impl="sglang", device="cpu", tp_size=tp,
                            attention_backend="torch_native", dtype="float32", disable_cuda_graph=True,
                            chunked_prefill_size=args["chunk"], max_total_tokens=4096, log_level="error",
                            random_seed=0)
        try:
            params = {"temperature": 0, "max_new_tokens": args["new_tokens"], "ignore_eos": True}
            outs = engine.generate(input_ids=args["prompts"], sampling_params=params)
            procs = sorted(p.name() for p in psutil.Process().children(recursive=True))
            return {"ids": [o["output_ids"] for o in outs], "tp_size": engine.get_server_info()["tp_size"],
                    "procs": procs}
        finally:
            engine.shutdown()

    result = {"tp1": run(1)}
    os.environ["SGLANG_CPU_OMP_THREADS_BIND"] = args["bind"]
    result["tp2"] = run(2)
    print("RESULT " + json.dumps(result), flush=True)
    """
)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from mindspore_models.tools.make_tiny_checkpoint import UNALIGNED, make_checkpoint

    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "qwen3-tp", arch="qwen3", seed=1, vocab_size=389,
                           **UNALIGNED)


@pytest.fixture(scope="module")
def results(checkpoint, tmp_path_factory):
    args = {"model": str(checkpoint), "prompts": prompts(), "new_tokens": NEW_TOKENS, "chunk": CHUNK,
            "bind": cpu_bind_for_two_ranks()}
    env = {k: v for k, v in os.environ.items() if k != "SGLANG_CPU_OMP_THREADS_BIND"}
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], cwd=tmp_path_factory.mktemp("run"),
                          env=env, capture_output=True, text=True, timeout=600)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"rc={proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return json.loads(lines[-1][len("RESULT "):])


def test_tp2_really_ran_two_ranks(results):
    assert results["tp1"]["tp_size"] == 1
    assert results["tp2"]["tp_size"] == 2
    tp1_schedulers = [p for p in results["tp1"]["procs"] if p.startswith("sglang::scheduler")]
    tp2_schedulers = [p for p in results["tp2"]["procs"] if p.startswith("sglang::scheduler")]
    assert len(tp1_schedulers) == 1, results["tp1"]["procs"]
    assert tp2_schedulers == ["sglang::scheduler_TP0", "sglang::scheduler_TP1"], results["tp2"]["procs"]


def test_tp2_greedy_tokens_match_tp1(results):
    tp1, tp2 = results["tp1"]["ids"], results["tp2"]["ids"]
    assert [len(o) for o in tp1] == [NEW_TOKENS] * len(prompts())
    # a broken model that emits one token everywhere would match itself trivially
    assert len({t for o in tp1 for t in o}) > NEW_TOKENS
    for i, (a, b) in enumerate(zip(tp1, tp2)):
        assert a == b, f"prompt {i} (length {len(prompts()[i])}): tp1 {a} != tp2 {b}"
