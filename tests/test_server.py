"""`python -m sglang.launch_server --model-impl mindspore --device cpu` through the openai client."""
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

pytestmark = pytest.mark.slow
STARTUP_TIMEOUT_S = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_qwen3, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    cmd = [sys.executable, "-m", "sglang.launch_server", "--model-path", str(tiny_qwen3), "--model-impl", "mindspore",
           "--device", "cpu", "--attention-backend", "torch_native", "--dtype", "float32", "--host", "127.0.0.1",
           "--port", str(port), "--max-total-tokens", "4096", "--served-model-name", "tiny-qwen3"]
    with open(log, "w") as out:
        # cwd outside the repo: `python -m` puts the cwd first on sys.path, and the server must
        # import the installed packages, as a user's would
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=log.parent)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + STARTUP_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
            try:
                if requests.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.time() > deadline:
                pytest.fail(f"server not healthy after {STARTUP_TIMEOUT_S}s:\n{log.read_text()[-4000:]}")
            time.sleep(1)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=f"{server}/v1", api_key="none", max_retries=0, timeout=120)


CHAT = [{"role": "user", "content": "Hello, how are you today?"}]


def test_chat_completion(client):
    r = client.chat.completions.create(model="tiny-qwen3", messages=CHAT, max_tokens=12, temperature=0)
    assert r.choices[0].message.role == "assistant"
    assert r.usage.completion_tokens > 0 and r.usage.prompt_tokens > 5
    assert isinstance(r.choices[0].message.content, str)


def test_streamed_chat_completion_equals_unstreamed(client):
    kwargs = dict(model="tiny-qwen3", messages=CHAT, max_tokens=12, temperature=0)
    whole = client.chat.completions.create(**kwargs).choices[0].message.content
    pieces = [c.choices[0].delta.content or "" for c in client.chat.completions.create(stream=True, **kwargs) if c.choices]
    assert len(pieces) > 1
    assert "".join(pieces) == whole


def test_malformed_requests_get_4xx_and_server_keeps_serving(server, client):
    url = f"{server}/v1/chat/completions"
    bad_json = requests.post(url, data="{not json", headers={"Content-Type": "application/json"}, timeout=30)
    assert 400 <= bad_json.status_code < 500, bad_json.text
    bad_shape = requests.post(url, json={"model": "tiny-qwen3", "messages": "not a list"}, timeout=30)
    assert 400 <= bad_shape.status_code < 500, bad_shape.text
    bad_value = requests.post(url, json={"model": "tiny-qwen3", "messages": CHAT, "max_tokens": -3}, timeout=30)
    assert 400 <= bad_value.status_code < 500, bad_value.text
    r = client.chat.completions.create(model="tiny-qwen3", messages=CHAT, max_tokens=4, temperature=0)
    assert r.usage.completion_tokens > 0
