"""`python -m sglang.launch_server --model-impl mindspore --device cpu` through the openai client."""
import subprocess

import pytest
import requests
from serving import running_server

pytestmark = pytest.mark.slow
CONTEXT_LENGTH = 256


@pytest.fixture(scope="module")
def server(tiny_qwen3, tmp_path_factory):
    log = tmp_path_factory.mktemp("server") / "server.log"
    with running_server(tiny_qwen3, "mindspore", log, "--max-total-tokens", "4096", "--served-model-name", "tiny-qwen3",
                        "--context-length", str(CONTEXT_LENGTH)) as (base, _):
        yield base


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


LONG_TEXT = " ".join(["word"] * 4 * CONTEXT_LENGTH)  # well over the context length in any tokenizer
CHAT_OK = {"model": "tiny-qwen3", "messages": CHAT, "max_tokens": 4}
COMPLETION_OK = {"model": "tiny-qwen3", "prompt": "Hello", "max_tokens": 4}
BAD_REQUESTS = {  # name -> (endpoint, body: a dict sent as JSON, or raw text)
    "malformed JSON": ("chat/completions", "{not json"),
    "messages not a list": ("chat/completions", {**CHAT_OK, "messages": "not a list"}),
    "max_tokens of the wrong type": ("chat/completions", {**CHAT_OK, "max_tokens": "ten"}),
    "temperature of the wrong type": ("chat/completions", {**CHAT_OK, "temperature": [1]}),
    "negative max_tokens": ("chat/completions", {**CHAT_OK, "max_tokens": -3}),
    "huge max_tokens": ("completions", {**COMPLETION_OK, "max_tokens": 10 ** 9}),
    "empty prompt": ("completions", {**COMPLETION_OK, "prompt": ""}),
    "unknown model name": ("chat/completions", {**CHAT_OK, "model": "no-such-model"}),
    "negative temperature": ("chat/completions", {**CHAT_OK, "temperature": -1}),
    "top_p above 1": ("chat/completions", {**CHAT_OK, "top_p": 2}),
    "top_k of 0": ("completions", {**COMPLETION_OK, "top_k": 0}),
    "prompt over the context length": ("completions", {**COMPLETION_OK, "prompt": LONG_TEXT}),
}


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_bad_request_gets_4xx_with_a_message_and_server_keeps_serving(server, client, name):
    endpoint, body = BAD_REQUESTS[name]
    url = f"{server}/v1/{endpoint}"
    if isinstance(body, str):
        r = requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=60)
    else:
        r = requests.post(url, json=body, timeout=60)
    assert 400 <= r.status_code < 500, f"{name}: HTTP {r.status_code} {r.text[:300]}"
    assert len(r.text) > 10, f"{name}: no message in the answer"
    ok = client.chat.completions.create(model="tiny-qwen3", messages=CHAT, max_tokens=2, temperature=0)
    assert ok.usage.completion_tokens > 0


def test_readmes_server_command_serves_with_the_kernels_from_the_repo_root(tiny_qwen3, tmp_path):
    """From the repo root `python -m` imports the checkout's mindspore_models, which has no _lib/:
    it must find the library `pip wheel .` (or the by-hand CMake build) wrote in build/kernels,
    never fall back silently (the fallbacks served 3 req/s where the kernels served 22)."""
    import os
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if k not in ("SGLMS_KERNELS_LIB", "SGLMS_DISABLE_KERNELS")}
    probe = subprocess.run([sys.executable, "-c", "from mindspore_models import kernels; print(kernels.__file__, "
                            "kernels.library_path())"], cwd=root, env=env, capture_output=True, text=True, timeout=120)
    checkout, lib = probe.stdout.split()
    assert Path(checkout).is_relative_to(root) and Path(lib).is_relative_to(root / "build"), probe.stdout + probe.stderr
    log = tmp_path / "server.log"
    with running_server(tiny_qwen3, "mindspore", log, "--max-total-tokens", "2048", cwd=root, env=env) as (base, _):
        r = requests.post(f"{base}/v1/chat/completions", timeout=120,
                          json={"model": "default", "max_tokens": 4, "messages": CHAT})
        assert r.status_code == 200, r.text


def test_a_missing_kernel_library_stops_the_server_with_one_line_naming_where_it_looked(tiny_qwen3, tmp_path):
    import os

    from serving import free_port, server_command

    env = {**os.environ, "SGLMS_KERNELS_LIB": str(tmp_path / "absent.so")}
    env.pop("SGLMS_DISABLE_KERNELS", None)
    out = subprocess.run(server_command(tiny_qwen3, "mindspore", free_port()), cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert f"custom CPU kernel library libsglms_cpu_kernels.so not found (looked in: {tmp_path / 'absent.so'})" \
        in text and "SGLMS_DISABLE_KERNELS=1" in text, text[-3000:]
