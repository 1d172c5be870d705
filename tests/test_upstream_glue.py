"""Upstream SGLang's MindSpore glue (sglang/srt/models/mindspore.py, kept by patch 0002) picks
its model classes from the package SGLANG_MINDSPORE_MODEL_PACKAGE names: ours by default,
sgl-mindspore's (or any other) when a user asks for it. The engine and server tests run every
architecture through this glue end to end."""
import sys
import textwrap

import pytest
from transformers import Qwen3Config

from mindspore_models.registry import supported


def glue_arch(architectures):
    import sglang.srt.models.mindspore as glue

    return glue._get_arch_from_config(Qwen3Config(architectures=architectures))


def test_default_package_serves_every_registered_architecture(monkeypatch):
    from mindspore_models.runtime.sglang_model import SGLangModel

    monkeypatch.delenv("SGLANG_MINDSPORE_MODEL_PACKAGE", raising=False)
    for arch in supported():
        cls = glue_arch([arch])
        assert cls.__name__ == arch and issubclass(cls, SGLangModel)


def test_another_model_package_is_used_when_asked(monkeypatch, tmp_path):
    """Stands in for `pip install sgl-mindspore` + SGLANG_MINDSPORE_MODEL_PACKAGE=sgl_mindspore.models
    (sgl-mindspore itself needs an NPU to import)."""
    pkg = tmp_path / "other_ms_pkg" / "models"
    pkg.mkdir(parents=True)
    (tmp_path / "other_ms_pkg" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "qwen3.py").write_text(textwrap.dedent("""
        class Qwen3ForCausalLM:
            pass
        EntryClass = Qwen3ForCausalLM
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("SGLANG_MINDSPORE_MODEL_PACKAGE", "other_ms_pkg.models")
    cls = glue_arch(["Qwen3ForCausalLM"])
    assert cls.__module__ == "other_ms_pkg.models.qwen3"
    with pytest.raises(ValueError, match="Unsupported arch"):
        glue_arch(["LlamaForCausalLM"])
    sys.modules.pop("other_ms_pkg", None)
