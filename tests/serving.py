"""`python -m sglang.launch_server` in a child process group, for the HTTP tests."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

STARTUP_TIMEOUT_S = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(model_path, impl: str, port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "sglang.launch_server", "--model-path", str(model_path), "--model-impl", impl,
            "--device", "cpu", "--attention-backend", "torch_native", "--dtype", "float32", "--host", "127.0.0.1",
            "--port", str(port), *extra]


def wait_healthy(proc: subprocess.Popen, base: str, log: Path) -> None:
    deadline = time.time() + STARTUP_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if requests.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        if time.time() > deadline:
            pytest.fail(f"server not healthy after {STARTUP_TIMEOUT_S}s:\n{log.read_text()[-4000:]}")
        time.sleep(1)


@contextlib.contextmanager
def running_server(model_path, impl: str, log: Path, *extra: str, cwd: Path | None = None, env: dict | None = None):
    """Yields (base URL, process). The cwd is outside the repo unless `cwd` says otherwise: `python -m`
    puts the cwd first on sys.path, and the server must import the installed packages, as a user's would."""
    port = free_port()
    with open(log, "w") as out:
        proc = subprocess.Popen(server_command(model_path, impl, port, *extra), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=cwd or log.parent, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, base, log)
        yield base, proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
