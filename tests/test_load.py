"""Serving under load and faults, loopback only, bounded in count and time: `launch_server` with
64 concurrent streaming clients, 20% of them aborting mid-stream, prompt lengths mixed (shared
prefixes for radix hits, prompts over the chunked-prefill size, some over the context length,
which must get a 4xx). Afterwards no KV slot may still be in use (the server's own /v1/loads).
Run against the MindSpore impl and SGLang's native model; latencies are printed side by side.
"""
import asyncio
import json
import random
import re
import time

import aiohttp
import pytest
import requests
from serving import running_server

pytestmark = pytest.mark.slow

CLIENTS = 64
CONTEXT_LENGTH = 256
CHUNK = 64  # --chunked-prefill-size: prompts longer than this prefill in chunks
NEW_TOKENS = 24
OVER_CONTEXT = 6  # clients whose prompt alone exceeds the context length
ABORT_AFTER_CHUNKS = 3
IMPLS = ("mindspore", "sglang")


def plan(vocab: int = 380) -> list[dict]:
    rng = random.Random(0)
    shared = [rng.randrange(3, vocab) for _ in range(96)]
    reqs = []
    for i in range(CLIENTS):
        if i < OVER_CONTEXT:
            ids, kind = [rng.randrange(3, vocab) for _ in range(CONTEXT_LENGTH + 40)], "over-context"
        elif i % 4 == 0:  # shares a 96-token prefix: radix-cache hits once the first is in
            ids, kind = shared + [rng.randrange(3, vocab) for _ in range(rng.randrange(5, 40))], "shared-prefix"
        else:
            ids, kind = [rng.randrange(3, vocab) for _ in range(rng.randrange(4, 200))], "plain"
        abort = kind != "over-context" and i % 5 == 1  # 20% of the 58 that are served
        reqs.append({"ids": ids, "kind": kind, "abort": abort})
    return reqs


async def client(session, base: str, req: dict) -> dict:
    body = {"model": "tiny", "prompt": req["ids"], "max_tokens": NEW_TOKENS, "temperature": 0, "stream": True,
            "ignore_eos": True}
    start = time.perf_counter()
    async with session.post(f"{base}/v1/completions", json=body) as resp:
        if resp.status != 200:
            return {"status": resp.status, "text": await resp.text()}
        stamps = []
        async for line in resp.content:
            if not line.startswith(b"data: ") or line.strip() == b"data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("object") == "error" or "error" in chunk:
                return {"status": 200, "error": chunk}
            if chunk["choices"] and chunk["choices"][0].get("text") is not None:
                stamps.append(time.perf_counter())
            if req["abort"] and len(stamps) >= ABORT_AFTER_CHUNKS:
                resp.close()  # the client goes away mid-stream
                return {"status": 200, "aborted": True, "chunks": len(stamps)}
        return {"status": 200, "ttft": stamps[0] - start if stamps else None,
                "itl": [b - a for a, b in zip(stamps, stamps[1:])], "chunks": len(stamps)}


async def run_clients(base: str, reqs: list[dict]) -> list[dict]:
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        return await asyncio.gather(*(client(session, base, r) for r in reqs))


def used_tokens(base: str) -> int:
    loads = requests.get(f"{base}/v1/loads", timeout=30).json()["loads"]
    return sum(load["num_used_tokens"] for load in loads)


def settle(base: str, timeout_s: float = 60) -> int:
    """KV tokens in use once the server is idle (aborted requests are freed on the next steps)."""
    deadline = time.time() + timeout_s
    while True:
        used = used_tokens(base)
        if used == 0 or time.time() > deadline:
            return used
        time.sleep(0.5)


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


@pytest.fixture(scope="module")
def load_results(tiny_qwen3, tmp_path_factory):
    reqs, results = plan(), {}
    for impl in IMPLS:
        log = tmp_path_factory.mktemp(f"load-{impl}") / "server.log"
        with running_server(tiny_qwen3, impl, log, "--served-model-name", "tiny", "--context-length",
                            str(CONTEXT_LENGTH), "--chunked-prefill-size", str(CHUNK), "--max-total-tokens", "8192",
                            "--max-running-requests", str(CLIENTS)) as (base, proc):
            start = time.perf_counter()
            answers = asyncio.run(run_clients(base, reqs))
            wall = time.perf_counter() - start
            results[impl] = {"answers": answers, "wall": wall, "used_after": settle(base),
                             "alive": proc.poll() is None, "log": log}
    return reqs, results


@pytest.mark.parametrize("impl", IMPLS)
def test_every_request_that_was_not_aborted_succeeded(load_results, impl):
    reqs, results = load_results
    res = results[impl]
    assert res["alive"], f"{impl} server died:\n{res['log'].read_text()[-3000:]}"
    for req, ans in zip(reqs, res["answers"]):
        if req["kind"] == "over-context":
            assert 400 <= ans["status"] < 500 and "context length" in ans["text"], ans
        elif req["abort"]:
            assert ans.get("aborted"), ans
        else:
            assert ans["status"] == 200 and "error" not in ans, ans
            assert ans["chunks"] == NEW_TOKENS, (req["kind"], len(req["ids"]), ans["chunks"])


@pytest.mark.parametrize("impl", IMPLS)
def test_the_mix_had_radix_hits_and_chunked_prefill(load_results, impl):
    reqs, results = load_results
    log = results[impl]["log"].read_text()
    assert re.search(r"#cached-token: [1-9]", log), "no prefill reused a cached prefix"
    assert any(r["kind"] != "over-context" and len(r["ids"]) > CHUNK for r in reqs)  # those prefill in chunks


@pytest.mark.parametrize("impl", IMPLS)
def test_no_kv_slot_is_left_in_use(load_results, impl):
    _, results = load_results
    assert results[impl]["used_after"] == 0, f"{impl}: {results[impl]['used_after']} KV tokens still in use"


def test_print_latencies_side_by_side(load_results, capsys):
    reqs, results = load_results
    served = sum(1 for r in reqs if r["kind"] != "over-context")
    aborted = sum(1 for r in reqs if r["abort"])
    lines = [f"\nload/fault run: {CLIENTS} streaming clients ({served} served, {aborted} aborting after "
             f"{ABORT_AFTER_CHUNKS} chunks, {OVER_CONTEXT} over the context length), {NEW_TOKENS} tokens each"]
    for impl, res in results.items():
        done = [a for a in res["answers"] if a.get("ttft") is not None]
        ttft = [a["ttft"] * 1e3 for a in done]
        itl = [x * 1e3 for a in done for x in a["itl"]]
        lines.append(f"  {impl:<10} {len(done)} completed in {res['wall']:.1f} s; TTFT p50 {percentile(ttft, .5):.0f} ms "
                     f"p99 {percentile(ttft, .99):.0f} ms; ITL p50 {percentile(itl, .5):.1f} ms p99 "
                     f"{percentile(itl, .99):.1f} ms; KV tokens in use afterwards: {res['used_after']}")
        assert done
    with capsys.disabled():
        print("\n".join(lines))
