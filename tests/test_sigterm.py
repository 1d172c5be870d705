"""SIGTERM to `launch_server --model-impl mindspore`: requests in flight are drained (each gets all
its tokens) and the whole process group (server, scheduler, detokenizer; MindSpore's threads live in
the scheduler) is gone within EXIT_WITHIN_S."""
import asyncio
import json
import os
import signal
import subprocess
import time

import aiohttp
import pytest
from serving import free_port, server_command, wait_healthy

pytestmark = pytest.mark.slow

IN_FLIGHT = 8
NEW_TOKENS = 160
EXIT_WITHIN_S = 30  # drain (SGLang polls every 5 s) + scheduler shutdown; measured ~5 s here, printed


async def stream(session, base, i, started):
    """Tokens the request got, from the stream's final usage chunk (a chunk may carry several tokens
    when they come faster than the stream is flushed, so chunks are not counted)."""
    body = {"model": "tiny", "prompt": [5 + i, 17, 33, 2, 99], "max_tokens": NEW_TOKENS, "temperature": 0,
            "stream": True, "ignore_eos": True, "stream_options": {"include_usage": True}}
    tokens = 0
    async with session.post(f"{base}/v1/completions", json=body) as resp:
        assert resp.status == 200
        async for line in resp.content:
            if line.startswith(b"data: ") and line.strip() != b"data: [DONE]":
                chunk = json.loads(line[6:])
                if chunk["choices"]:
                    started.set()
                if chunk.get("usage"):
                    tokens = chunk["usage"]["completion_tokens"]
    return tokens


async def load_then_sigterm(base, proc):
    started = asyncio.Event()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:
        tasks = [asyncio.create_task(stream(session, base, i, started)) for i in range(IN_FLIGHT)]
        await started.wait()
        os.kill(proc.pid, signal.SIGTERM)  # the server's main process, as a process manager would
        sent = time.perf_counter()
        return await asyncio.gather(*tasks), sent


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def test_sigterm_drains_in_flight_requests_and_leaves_no_process(tiny_qwen3, tmp_path, capsys):
    log = tmp_path / "server.log"
    port = free_port()
    with open(log, "w") as out:
        proc = subprocess.Popen(server_command(tiny_qwen3, "mindspore", port, "--served-model-name", "tiny"),
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_healthy(proc, base, log)
        chunks, sent = asyncio.run(load_then_sigterm(base, proc))
        assert chunks == [NEW_TOKENS] * IN_FLIGHT, f"in-flight requests were cut (tokens per request): {chunks}"
        deadline = sent + EXIT_WITHIN_S
        while time.perf_counter() < deadline and (proc.poll() is None or group_alive(proc.pid)):
            time.sleep(0.2)  # poll() reaps the server: a zombie would still count as in the group
        exited = time.perf_counter() - sent
        assert proc.poll() is not None, f"server still running {EXIT_WITHIN_S} s after SIGTERM"
        assert not group_alive(proc.pid), f"processes left behind after SIGTERM:\n{_ps(proc.pid)}"
        with capsys.disabled():
            print(f"\n  SIGTERM: {IN_FLIGHT} in-flight streams drained, every process gone {exited:.1f} s after the signal "
                  f"(exit code {proc.returncode})")
    finally:
        if group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)


def _ps(pgid: int) -> str:
    return subprocess.run(["ps", "-o", "pid,pgid,cmd", "-g", str(pgid)], capture_output=True, text=True).stdout
