"""A bad checkpoint fails `launch_server --model-impl mindspore` start-up quickly, with one line
naming the problem (and the file or tensor): missing tensor, wrong shape, wrong dtype, unknown
architecture, truncated safetensors file, config.json missing a required field."""
import json
import shutil
import subprocess
import time

import pytest
import torch
from safetensors.torch import load_file, save_file
from serving import free_port, server_command

from mindspore_models.config import ConfigError, check_config_file
from mindspore_models.weights import WeightLoadError, check_safetensors_files

FAIL_WITHIN_S = 240  # generous for a loaded CI machine; the measured times are printed


def edit_tensors(d, edit):
    path = d / "model.safetensors"
    tensors = load_file(path)
    edit(tensors)
    save_file(tensors, path, metadata={"format": "pt"})


def edit_config(d, edit):
    path = d / "config.json"
    cfg = json.loads(path.read_text())
    edit(cfg)
    path.write_text(json.dumps(cfg))


def truncate(d):
    path = d / "model.safetensors"
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)


DOWN = "model.layers.1.mlp.down_proj.weight"
CASES = {  # name -> (how to break a good checkpoint, the line the start-up must end with)
    "missing tensor": (lambda d: edit_tensors(d, lambda t: t.pop(DOWN)),
                       rf"WeightLoadError: checkpoint does not match the model: missing tensors \(never loaded\): {DOWN}$"),
    "wrong shape": (lambda d: edit_tensors(d, lambda t: t.__setitem__(DOWN, t[DOWN][:, :-1].contiguous())),
                    rf"WeightLoadError: {DOWN}: checkpoint shape \(96, 135\), model expects \(96, 136\)"),
    "wrong dtype": (lambda d: edit_tensors(d, lambda t: t.__setitem__(DOWN, t[DOWN].to(torch.int32))),
                    rf"WeightLoadError: {DOWN}: dtype torch.int32 is not a floating type"),
    "unknown architecture": (lambda d: edit_config(d, lambda c: c.__setitem__("architectures", ["FooForCausalLM"])),
                             r"ValueError: Unsupported arch \['FooForCausalLM'\]$"),
    "truncated safetensors": (truncate, r"WeightLoadError: \S+/model.safetensors: truncated or padded: its header "
                                        r"describes \d+ bytes, the file has \d+$"),
    "config missing a field": (lambda d: edit_config(d, lambda c: c.pop("hidden_size")),
                               r"ConfigError: \S+/config.json is missing required field\(s\) hidden_size$"),
}


@pytest.fixture
def broken(tiny_qwen3, tmp_path):
    def make(name):
        d = tmp_path / "ckpt"
        shutil.copytree(tiny_qwen3, d)
        CASES[name][0](d)
        return d
    return make


@pytest.mark.parametrize("name", ["truncated safetensors", "config missing a field"])
def test_checks_name_the_file(broken, name):
    d = broken(name)
    with pytest.raises((WeightLoadError, ConfigError), match=str(d)):
        check_config_file(d)
        check_safetensors_files(d)


def test_good_checkpoint_passes_the_checks(tiny_qwen3):
    check_config_file(tiny_qwen3)
    check_safetensors_files(tiny_qwen3)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_server_start_up_fails_with_one_line_naming_the_problem(broken, name, capsys):
    import re

    d = broken(name)
    start = time.perf_counter()
    try:
        out = subprocess.run(server_command(d, "mindspore", free_port()), capture_output=True, text=True,
                             timeout=FAIL_WITHIN_S, cwd=d.parent)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name}: the server was still starting after {FAIL_WITHIN_S} s")
    elapsed = time.perf_counter() - start
    assert out.returncode != 0
    lines = (out.stdout + out.stderr).splitlines()
    pattern = CASES[name][1]
    assert any(re.search(pattern, line) for line in lines), f"{name}: no line matches {pattern!r}:\n" + "\n".join(lines[-30:])
    with capsys.disabled():
        print(f"\n  {name}: start-up failed after {elapsed:.0f} s")
