"""Architecture name (HF `config.architectures`) -> model class, imported on first use."""
from __future__ import annotations

import importlib

_MODELS = {
    "DeepseekV3ForCausalLM": ("mindspore_models.models.deepseek_v3", "DeepseekV3ForCausalLM"),
    "LlamaForCausalLM": ("mindspore_models.models.llama", "LlamaForCausalLM"),
    "Qwen2ForCausalLM": ("mindspore_models.models.qwen2", "Qwen2ForCausalLM"),
    "Qwen3ForCausalLM": ("mindspore_models.models.qwen3", "Qwen3ForCausalLM"),
    "Qwen3MoeForCausalLM": ("mindspore_models.models.qwen3_moe", "Qwen3MoeForCausalLM"),
}


def supported() -> list[str]:
    return sorted(_MODELS)


def model_class(architectures: list[str] | str):
    archs = [architectures] if isinstance(architectures, str) else list(architectures or [])
    for arch in archs:
        if arch in _MODELS:
            module, name = _MODELS[arch]
            return getattr(importlib.import_module(module), name)
    raise ValueError(
        f"no MindSpore implementation for architectures {archs}; supported: {', '.join(supported())}"
    )
