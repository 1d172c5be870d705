"""Strict loading of HF checkpoint tensors into a MindSpore model.

HF names map to parameters through a declarative packed mapping (q_proj -> (qkv_proj, "q")).
A cell may own how its parameters are laid out (`expected_shape`, `assemble`: see
layers/linear.py). Every shape and dtype is checked; unexpected tensors, missing tensors and
incomplete packed parameters are errors that name them.
"""
from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Iterable

import mindspore as ms
import numpy as np
import torch
from mindspore import nn

PACKED_DENSE = {
    "q_proj": ("qkv_proj", "q"), "k_proj": ("qkv_proj", "k"), "v_proj": ("qkv_proj", "v"),
    "gate_proj": ("gate_up_proj", 0), "up_proj": ("gate_up_proj", 1),
}
ALWAYS_IGNORED = (r"rotary_emb\.inv_freq$",)


class WeightLoadError(ValueError):
    pass


def map_name(hf_name: str, packed: dict) -> tuple[str, object]:
    for src, (dst, shard) in packed.items():
        if f".{src}." in hf_name:
            return hf_name.replace(f".{src}.", f".{dst}."), shard
    return hf_name, None


def _to_numpy(hf_name: str, t) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        if not t.is_floating_point():
            raise WeightLoadError(f"{hf_name}: dtype {t.dtype} is not a floating type (quantized checkpoints are not supported)")
        return t.detach().to(torch.float32).cpu().numpy()
    arr = np.asarray(t)
    if arr.dtype.kind != "f":
        raise WeightLoadError(f"{hf_name}: dtype {arr.dtype} is not a floating type")
    return arr.astype(np.float32)


def load_weights(model: nn.Cell, weights: Iterable[tuple[str, object]], packed: dict = PACKED_DENSE,
                 ignore: tuple[str, ...] = (), mappers: tuple = ()) -> None:
    """`mappers`: functions hf_name -> (param name, shard) or None, tried before `packed`."""
    params = dict(model.parameters_and_names())
    cells = dict(model.cells_and_names())
    ignore = ALWAYS_IGNORED + tuple(ignore)
    pending: dict[str, dict] = {}
    done: set[str] = set()
    unexpected: list[str] = []
    for hf_name, tensor in weights:
        if any(re.search(p, hf_name) for p in ignore):
            continue
        name, shard = next((m for f in mappers if (m := f(hf_name))), None) or map_name(hf_name, packed)
        if name not in params:
            unexpected.append(hf_name)
            continue
        cell_name, pname = name.rsplit(".", 1)
        cell = cells[cell_name]
        shards = cell.shards_of(pname) if hasattr(cell, "shards_of") else {None: None}
        if shard not in shards:
            raise WeightLoadError(f"{hf_name}: {name} has no shard {shard!r} (shards: {list(shards)})")
        arr = _to_numpy(hf_name, tensor)
        expected = cell.expected_shape(pname, shard) if hasattr(cell, "expected_shape") else tuple(params[name].shape)
        if tuple(arr.shape) != tuple(expected):
            raise WeightLoadError(f"{hf_name}: checkpoint shape {tuple(arr.shape)}, model expects {tuple(expected)} for {name}"
                                  + (f" shard {shard!r}" if shard is not None else ""))
        parts = pending.setdefault(name, {})
        if shard in parts or name in done:
            raise WeightLoadError(f"{hf_name}: loaded twice")
        parts[shard] = arr
        if set(parts) == set(shards):
            full = cell.assemble(pname, parts) if hasattr(cell, "assemble") else parts[None]
            params[name].set_data(ms.Tensor(full, dtype=params[name].dtype))
            done.add(name)
            del pending[name]
    incomplete = {}
    for name, parts in pending.items():
        cell_name, pname = name.rsplit(".", 1)
        incomplete[name] = [s for s in cells[cell_name].shards_of(pname) if s not in parts]
    _raise_leftovers(unexpected, incomplete, set(params) - done - set(pending), packed)


def _raise_leftovers(unexpected, incomplete, missing, packed) -> None:
    problems = []
    if unexpected:
        problems.append("unexpected tensors in checkpoint: " + ", ".join(sorted(unexpected)))
    for name, absent in sorted(incomplete.items()):
        sources = [src for src, (dst, shard) in packed.items() if f".{dst}." in f".{name}" and shard in absent]
        problems.append(f"{name} is incomplete: no tensor for shard(s) {', '.join(map(str, absent))}"
                        + (f" (HF {', '.join(sources)})" if sources else ""))
    if missing:
        problems.append("missing tensors (never loaded): " + ", ".join(sorted(missing)))
    if problems:
        raise WeightLoadError("checkpoint does not match the model: " + "; ".join(problems))  # one line


def _safetensors_files(model_dir) -> list[Path]:
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise WeightLoadError(f"no *.safetensors files in {model_dir}")
    return files


def check_safetensors_files(model_dir) -> None:
    """Every *.safetensors file in the dir is whole: its header parses and covers the file (a
    truncated download otherwise fails deep inside the loader without naming the file)."""
    for f in _safetensors_files(model_dir):
        size = f.stat().st_size
        with open(f, "rb") as fh:
            head = fh.read(8)
            n = struct.unpack("<Q", head)[0] if len(head) == 8 else None
            if n is None or n > size - 8:
                raise WeightLoadError(f"{f}: not a safetensors file or truncated (size {size} bytes, header length "
                                      f"{n if n is not None else 'missing'})")
            try:
                header = json.loads(fh.read(n))
            except ValueError as e:
                raise WeightLoadError(f"{f}: corrupt safetensors header ({e})") from None
        end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
        if 8 + n + end != size:
            raise WeightLoadError(f"{f}: truncated or padded: its header describes {8 + n + end} bytes, the file has "
                                  f"{size}")


def iter_safetensors(model_dir) -> Iterable[tuple[str, torch.Tensor]]:
    """(name, tensor) for every tensor of every *.safetensors file in an HF checkpoint dir."""
    from safetensors import safe_open

    for f in _safetensors_files(model_dir):
        with safe_open(str(f), framework="pt") as st:
            for name in st.keys():
                yield name, st.get_tensor(name)
