"""Tensor and data parallelism of the MindSpore impl through the patched engine on a plain CPU.

Engine tests (slow): `model_impl="mindspore"` with tp_size 2 gives the greedy tokens of tp_size 1 for every
architecture in the zoo (Qwen3, Llama, Qwen2, Qwen3-MoE, DeepSeek-V3 with MLA), with a chunked prefill
(a 150-token prompt in chunks of 64) and a second round that hits the radix cache; so does tp_size 4 for
the dense Qwen3 (8 heads; SGLang pads its 2 KV heads to 4, our ranks replicate them); dp_size 2 (SGLang's
data-parallel controller) answers a batch of concurrent requests once each, with dp 1's tokens.

The tp-1 reference is, for every architecture, the MindSpore model at tp 1 without SGLang (the standalone
runner: same layers and kernels; test_model_parity ties it to HF), and for Qwen3 also the engine at tp 1,
which is compared with tp 2, tp 4 and dp 2 directly. All engines (8) run in ONE child Python (engine
start-up dominates; an engine whose rank dies SIGKILLs its parent, which must not be pytest). The child reports
each engine's tp/dp size, its scheduler processes and the cores every thread of each rank may run on
(device.bind_rank_threads pins a rank to its SGLANG_CPU_OMP_THREADS_BIND entry).

Unit tests (fast): the vocabulary padding, uneven intermediate shares, the clear error for head counts
the TP size does not divide, and the bind list parser.
"""
import json
import os
import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from mindspore_models import parallel
from mindspore_models.tools.make_tiny_checkpoint import UNALIGNED, make_checkpoint

NEW_TOKENS = 8
CHUNK = 64  # the 150-token prompt is prefilled in three chunks

# conftest.VARIANTS at tp 2 (Llama: q/k/v/o biases, o's bias added by rank 0 only, tied head; Qwen2: q/k/v
# biases, vocabulary 389 padded per rank, tied head; MoE and MLA with intermediate sizes SGLang pads)
TP2 = ["llama-linear-rope-bias-tied", "qwen2-tied", "qwen3-moe-unaligned", "deepseek-v3-unaligned"]
# Qwen3 at tp 1, 2 and 4 and dp 2: 8 heads / 2 KV heads, vocabulary 389, intermediate 136. tp 4 divides the
# query heads; SGLang pads the KV heads 2 -> 4 (and the query heads 8 -> 16) for its own split; our ranks keep
# the checkpoint's 2 query heads each and replicate a KV head: one head per rank, as SGLang's padded pool has.
QWEN3 = "qwen3-8h-2kv"
QWEN3_VARIANT = dict(arch="qwen3", seed=12, vocab_size=389, **dict(UNALIGNED, num_attention_heads=8))


def prompts(vocab: int = 380) -> list[list[int]]:
    rng = random.Random(0)
    return [[rng.randrange(3, vocab) for _ in range(n)] for n in (5, 37, 150, 12)]


def second_round() -> list[list[int]]:
    return [p + [9, 10, 11] for p in prompts()]  # shares each first-round prompt as a cached prefix


def dp_batch() -> list[list[int]]:
    rng = random.Random(1)
    return [[rng.randrange(3, 380) for _ in range(n)] for n in (5, 37, 150, 12, 9, 20, 3, 64)]


def bind(ranks: int) -> str:
    """SGLANG_CPU_OMP_THREADS_BIND with one core per rank, cycling over this process's cores."""
    cores = sorted(os.sched_getaffinity(0))
    return "|".join(str(cores[i % len(cores)]) for i in range(ranks))


CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    import psutil

    args = json.loads(sys.argv[1])
    params = {"temperature": 0, "max_new_tokens": args["new_tokens"], "ignore_eos": True}

    def reference(model, batches):  # tp 1 without SGLang: before any engine, no bind in the environment
        from mindspore_models.runtime.standalone import StandaloneRunner

        runner = StandaloneRunner(model)
        return {name: runner.greedy(batch, args["new_tokens"]) for name, batch in batches.items()}

    def thread_cores(proc):
        cores = set()
        for t in proc.threads():
            try:
                cores.add(tuple(sorted(os.sched_getaffinity(t.id))))
            except OSError:  # a thread that just exited
                pass
        return sorted(cores)

    def run(model, batches, tp=1, dp=1, bind=None):
        import sglang as sgl

        os.environ.pop("SGLANG_CPU_OMP_THREADS_BIND", None)
        if bind:
            os.environ["SGLANG_CPU_OMP_THREADS_BIND"] = bind
        earlier = {p.pid for p in psutil.Process().children(recursive=True)}  # an earlier engine's, still exiting
        start = time.time()
        engine = sgl.Engine(model_path=model, model_impl="mindspore", device="cpu", tp_size=tp, dp_size=dp,
                            attention_backend="torch_native", dtype="float32", disable_cuda_graph=True,
                            chunked_prefill_size=args["chunk"], max_total_tokens=4096, log_level="error",
                            random_seed=0)
        started = time.time()
        try:
            out = {}
            for name, batch in batches.items():
                outs = engine.generate(input_ids=batch, sampling_params=params)
                out[name] = {"ids": [o["output_ids"] for o in outs],
                             "cached": [o["meta_info"].get("cached_tokens") for o in outs],
                             "dp_rank": [o["meta_info"].get("dp_rank") for o in outs],
                             "finish": [str(o["meta_info"].get("finish_reason")) for o in outs]}
            info = engine.get_server_info()
            ranks = {}
            for p in psutil.Process().children(recursive=True):
                if p.pid in earlier:
                    continue
                try:
                    if p.name().startswith("sglang::scheduler") and p.status() != psutil.STATUS_ZOMBIE:
                        ranks.setdefault(p.name(), []).append(thread_cores(p))
                except psutil.NoSuchProcess:
                    pass
            return {"batches": out, "tp_size": info["tp_size"], "dp_size": info["dp_size"], "ranks": ranks,
                    "start_s": round(started - start, 1), "generate_s": round(time.time() - started, 1)}
        finally:
            engine.shutdown()

    result = {"reference": {}, "engines": {}}
    t0 = time.time()
    for name, job in args["jobs"].items():
        if job.get("reference"):
            result["reference"][name] = reference(job["model"], job["batches"])
    result["reference_s"] = round(time.time() - t0, 1)
    for name, job in args["jobs"].items():
        for engine in job["engines"]:
            key = f"{name}/tp{engine.get('tp', 1)}/dp{engine.get('dp', 1)}"
            result["engines"][key] = run(job["model"], job["batches"], **engine)
    result["total_s"] = round(time.time() - t0, 1)
    print("RESULT " + json.dumps(result), flush=True)
    """
)


@pytest.fixture(scope="module")
def results(make_variant, tmp_path_factory):
    rounds = {"first": prompts(), "second": second_round()}
    jobs = {name: {"model": str(make_variant(name)), "batches": rounds, "reference": True,
                   "engines": [{"tp": 2, "bind": bind(2)}]} for name in TP2}
    qwen3 = make_checkpoint(tmp_path_factory.mktemp("ckpt") / QWEN3, **QWEN3_VARIANT)
    jobs[QWEN3] = {"model": str(qwen3), "batches": dict(rounds, dp=dp_batch()), "reference": True,
                   "engines": [{"tp": 1}, {"tp": 2, "bind": bind(2)}, {"tp": 4, "bind": bind(4)},
                               {"dp": 2, "bind": bind(2)}]}
    args = {"jobs": jobs, "new_tokens": NEW_TOKENS, "chunk": CHUNK}
    env = {k: v for k, v in os.environ.items() if k != "SGLANG_CPU_OMP_THREADS_BIND"}
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], cwd=tmp_path_factory.mktemp("run"),
                          env=env, capture_output=True, text=True, timeout=1500)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"rc={proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    result = json.loads(lines[-1][len("RESULT "):])
    timings = {k: (e["start_s"], e["generate_s"]) for k, e in result["engines"].items()}
    print(f"\nreference {result['reference_s']} s, total {result['total_s']} s, (start, generate) s: {timings}")
    for key, e in result["engines"].items():  # evidence: the chunked 150-token prompt, both rounds
        ref = result["reference"][key.split("/")[0]]
        print(f"{key}: {e['batches']['first']['ids'][2]} {e['batches']['second']['ids'][2]} "
              f"(tp-1 reference {ref['first'][2]} {ref['second'][2]})")
    return result


ENGINES = [f"{QWEN3}/tp2/dp1", f"{QWEN3}/tp4/dp1"] + [f"{v}/tp2/dp1" for v in TP2]


def expected_cores(ranks: int) -> dict[str, list[list[int]]]:
    return {f"sglang::scheduler_TP{r}": [[[int(c)]] for c in [bind(ranks).split("|")[r]]] for r in range(ranks)}


@pytest.mark.slow
@pytest.mark.parametrize("key", ENGINES)
def test_tp_engine_gives_tp1_greedy_tokens(results, key):
    variant = key.split("/")[0]
    engine, ref = results["engines"][key], results["reference"][variant]
    tp = int(key.split("/")[1][2:])
    # the ranks really ran: SGLang's tp size, one scheduler process per rank, each pinned to its own core
    assert engine["tp_size"] == tp
    assert engine["ranks"] == expected_cores(tp), engine["ranks"]
    for name in ("first", "second"):
        got, want = engine["batches"][name]["ids"], ref[name]
        assert [len(o) for o in got] == [NEW_TOKENS] * len(prompts())
        for i, (a, b) in enumerate(zip(got, want)):
            assert a == b, f"{key} {name} round, prompt {i}: tp{tp} {a} != tp1 {b}"
    assert len({t for o in ref["first"] for t in o}) > NEW_TOKENS  # a degenerate model would match itself
    # the 150-token prompt was chunked (CHUNK < 150) and the second round hit the radix cache
    assert all(c >= len(p) for c, p in zip(engine["batches"]["second"]["cached"], prompts())), engine["batches"]


@pytest.mark.slow
def test_qwen3_tp1_engine_matches_reference_tp2_and_tp4(results):
    """The standalone tp-1 reference is what the engine at tp 1 gives; tp 2 and tp 4 equal it directly too."""
    tp1 = results["engines"][f"{QWEN3}/tp1/dp1"]
    assert tp1["tp_size"] == 1 and list(tp1["ranks"]) == ["sglang::scheduler"]
    for name in ("first", "second"):
        assert tp1["batches"][name]["ids"] == results["reference"][QWEN3][name]
    for tp in (2, 4):
        tpn = results["engines"][f"{QWEN3}/tp{tp}/dp1"]
        for name in ("first", "second", "dp"):
            assert tpn["batches"][name]["ids"] == tp1["batches"][name]["ids"], (tp, name)


@pytest.mark.slow
def test_dp2_answers_each_request_once_with_dp1_tokens(results):
    dp2, dp1 = results["engines"][f"{QWEN3}/tp1/dp2"], results["engines"][f"{QWEN3}/tp1/dp1"]
    assert dp2["dp_size"] == 2 and dp2["tp_size"] == 1
    assert dp2["ranks"] == {"sglang::scheduler_DP0": [[[int(bind(2).split("|")[0])]]],
                            "sglang::scheduler_DP1": [[[int(bind(2).split("|")[1])]]]}, dp2["ranks"]
    batch = dp2["batches"]["dp"]
    assert len(batch["ids"]) == len(dp_batch()) and all(len(o) == NEW_TOKENS for o in batch["ids"])
    assert all("length" in f for f in batch["finish"]), batch["finish"]
    assert sorted(set(batch["dp_rank"])) == [0, 1], batch["dp_rank"]  # both replicas served requests
    assert batch["ids"] == dp1["batches"]["dp"]["ids"]
    assert dp2["batches"]["first"]["ids"] == dp1["batches"]["first"]["ids"]


# ---- fast: sharding rules (simulated ranks, no engine) ----

@pytest.mark.parametrize("vocab, size", [(389, 2), (389, 4), (384, 4), (5, 4)])
def test_vocab_shares_pad_to_equal_rows(vocab, size):
    shares = [parallel.TP(r, size).vocab(vocab) for r in range(size)]
    rows = {s[2] for s in shares}
    assert len(rows) == 1 and rows.pop() * size >= vocab  # equal padded rows, all-gather needs equal shapes
    assert sum(s[1] for s in shares) == vocab
    assert [s[0] for s in shares] == [min(r * shares[0][2], vocab) for r in range(size)]


@pytest.mark.parametrize("total, size", [(136, 2), (136, 3), (50, 4), (7, 7)])
def test_uneven_shares_cover_every_column_once(total, size):
    shares = [parallel.TP(r, size).share(total) for r in range(size)]
    assert [s for s, _ in shares] == [sum(n for _, n in shares[:r]) for r in range(size)]
    assert sum(n for _, n in shares) == total and max(n for _, n in shares) - min(n for _, n in shares) <= 1


def _build(ckpt, rank=0, size=1):
    from transformers import AutoConfig

    from mindspore_models import device
    from mindspore_models.registry import model_class
    from mindspore_models.weights import iter_safetensors

    device.current()  # choose the device before the first MindSpore op runs
    hf = AutoConfig.from_pretrained(ckpt)
    with parallel.simulate(rank, size):
        model = model_class(hf.architectures)(hf)
        model.load_weights(iter_safetensors(ckpt))
    return model


def test_lm_head_and_embedding_with_padded_vocab(make_variant):
    """qwen2-tied: vocabulary 389 over 2 ranks (195 + 194 real rows + 1 zero row), tied head."""
    import mindspore as ms

    ckpt = make_variant("qwen2-tied")
    full, parts = _build(ckpt), [_build(ckpt, r, 2) for r in range(2)]
    ids = ms.Tensor(np.array([0, 5, 194, 195, 388], np.int32))
    want = full.model.embed_tokens(ids).asnumpy()
    got = 0
    for r, p in enumerate(parts):
        with parallel.simulate(r, 2):
            got = got + p.model.embed_tokens(ids).asnumpy()  # the all-reduce sums the ranks' rows
    np.testing.assert_allclose(got, want, atol=1e-6)
    x = ms.Tensor(np.random.default_rng(0).standard_normal((3, 96)).astype(np.float32))
    want = full.lm_head(x).asnumpy()
    halves = []
    for r, p in enumerate(parts):
        with parallel.simulate(r, 2):
            halves.append(p.lm_head(x).asnumpy())  # simulated all-gather: this rank's padded columns
    assert halves[1].shape == (3, 195)
    np.testing.assert_allclose(np.concatenate(halves, -1)[:, :389], want, atol=1e-5)
    assert not np.any(halves[1][:, 194:])  # the padding row is zeros


def test_uneven_intermediate_split_sums_to_full(tmp_path):
    """tp 3 over intermediate 136 (45/45/46) and MoE intermediate 50 (16/17/17); 6 heads / 3 KV heads split."""
    import mindspore as ms

    ckpt = make_checkpoint(tmp_path / "moe", arch="qwen3_moe", seed=3,
                           **dict(UNALIGNED, num_key_value_heads=3, moe_intermediate_size=50))
    full, parts = _build(ckpt), [_build(ckpt, r, 3) for r in range(3)]
    assert [p.model.layers[0].mlp.down_proj.weight.shape[1] for p in parts] == [45, 45, 46]
    assert [p.model.layers[1].mlp.experts.down_proj.shape[1] for p in parts] == [16, 17, 17]
    x = ms.Tensor(np.random.default_rng(1).standard_normal((7, 96)).astype(np.float32))
    for layer in (0, 1):  # dense, then sparse (decoder_sparse_step 2)
        want = full.model.layers[layer].mlp(x).asnumpy()
        got = 0
        for r, p in enumerate(parts):
            with parallel.simulate(r, 3):
                got = got + p.model.layers[layer].mlp(x).asnumpy()
        np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("variant, size, message", [
    ("llama-llama3-rope", 2, "num_key_value_heads = 3 does not divide by tensor-parallel size 2 "
                             "(tensor-parallel sizes that divide it: 1, 3)"),
    ("qwen3", 4, "num_attention_heads = 6 does not divide by tensor-parallel size 4"),
    ("qwen3", 3, "3 ranks cannot share 2 KV heads evenly"),
    ("deepseek-v3-unaligned", 4, "num_attention_heads = 6 does not divide by tensor-parallel size 4"),
])
def test_head_counts_tp_does_not_divide_are_a_clear_error(make_variant, variant, size, message):
    """SGLang pads such head counts for its own split (its config says so); the checkpoint's heads cannot be
    shared evenly, so the model refuses to build on every rank instead of serving wrong tokens."""
    with pytest.raises(ValueError) as err:
        _build(make_variant(variant), 0, size)
    assert message in str(err.value)


def test_bind_list_parser():
    from mindspore_models.device import parse_cpu_list

    assert parse_cpu_list("0") == {0}
    assert parse_cpu_list("0-3,8") == {0, 1, 2, 3, 8}
    assert [parse_cpu_list(x) for x in "0-1|2-3".split("|")] == [{0, 1}, {2, 3}]
