import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Appended, not prepended: an installed wheel's mindspore_models/sglang win over the source
# tree, so CI tests what it ships. patch_tool is only in the source tree.
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))


from mindspore_models.tools.make_tiny_checkpoint import UNALIGNED, UNALIGNED_MOE  # noqa: E402

# Tiny checkpoints, one per architecture quirk to prove: name -> make_checkpoint arguments.
# Each architecture's engine variant has sizes that are not multiples of 64 (SGLang pads them on
# CPU), and "qwen3"/"qwen2-tied" a vocabulary that is not either.
VARIANTS = {
    "qwen3": dict(arch="qwen3", seed=1, vocab_size=389, **UNALIGNED),      # GQA, q/k norm, head_dim != hidden/heads
    "qwen3-tied": dict(arch="qwen3", tied=True, seed=1),
    "llama-llama3-rope": dict(arch="llama", rope_scaling="llama3", seed=2, **dict(UNALIGNED, num_key_value_heads=3)),
    "llama-linear-rope-bias-tied": dict(arch="llama", rope_scaling="linear", attention_bias=True, tied=True, seed=3),
    "qwen2": dict(arch="qwen2", seed=4),                                   # q/k/v bias, no o bias
    "qwen2-tied": dict(arch="qwen2", tied=True, seed=5, vocab_size=389, **UNALIGNED),
    "qwen3-moe": dict(arch="qwen3_moe", seed=6),                           # top-2 of 8, norm_topk_prob, dense+sparse
    "deepseek-v3": dict(arch="deepseek_v3", rope_scaling="yarn", seed=9),  # MLA, grouped routing, shared experts
    "qwen3-moe-unaligned": dict(arch="qwen3_moe", seed=2, **UNALIGNED_MOE),
    "deepseek-v3-unaligned": dict(arch="deepseek_v3", rope_scaling="yarn", seed=11,
                                  **dict(UNALIGNED_MOE, num_key_value_heads=6)),
    # MindSpore's Ascend mla op takes only kv_lora_rank 512, rope dim 64 and 16k heads: the Ascend backend's MLA variant
    "deepseek-v3-ascend": dict(arch="deepseek_v3", rope_scaling="yarn", seed=1, kv_lora_rank=512, qk_rope_head_dim=64,
                               num_attention_heads=16, num_key_value_heads=16, hidden_size=96),
    "qwen3-moe-unnormed": dict(arch="qwen3_moe", norm_topk_prob=False, decoder_sparse_step=1, mlp_only_layers=[],
                               seed=8),
}


@pytest.fixture(scope="session")
def make_variant(tmp_path_factory):
    from mindspore_models.tools.make_tiny_checkpoint import make_checkpoint

    made = {}

    def make(name: str) -> Path:
        if name not in made:
            made[name] = make_checkpoint(tmp_path_factory.mktemp("ckpt") / name, **VARIANTS[name])
        return made[name]

    return make


@pytest.fixture(scope="session")
def tiny_qwen3(make_variant):
    return make_variant("qwen3")


@pytest.fixture(scope="session")
def tiny_qwen3_tied(make_variant):
    return make_variant("qwen3-tied")


def hf_greedy(model, prompt: list[int], n: int) -> list[int]:
    """Plain argmax decoding with HF transformers: no EOS handling, no min-length logit edits,
    the same rule as SGLang with temperature 0 and ignore_eos."""
    import torch

    ids = torch.tensor([prompt])
    past = None
    out = []
    with torch.no_grad():
        for _ in range(n):
            step = model(ids if past is None else ids[:, -1:], past_key_values=past, use_cache=True)
            past = step.past_key_values
            nxt = int(step.logits[0, -1].argmax())
            out.append(nxt)
            ids = torch.cat([ids, torch.tensor([[nxt]])], 1)
    return out


def kernels_required() -> bool:
    return os.environ.get("SGLMS_REQUIRE_KERNELS") == "1"


@pytest.fixture(params=["custom-kernels", "custom-kernels-pynative", "fallbacks"])
def kernel_mode(request, monkeypatch):
    """Run with every custom CPU kernel (as one compiled graph where the model allows, and in
    PyNative), or with every pure-MindSpore fallback (PyNative)."""
    from mindspore_models import kernels

    monkeypatch.setenv("SGLMS_GRAPH", "0" if request.param == "custom-kernels-pynative" else "1")
    if request.param.startswith("custom-kernels"):
        missing = {k: v for k, v in kernels.status().items() if not v.startswith("custom")}
        if missing:
            if kernels_required():
                pytest.fail(f"SGLMS_REQUIRE_KERNELS=1 but {missing}")
            pytest.skip(f"custom kernels not built: {missing}")
    else:
        monkeypatch.setattr(kernels, "status", lambda: {k: "fallback: forced by test" for k in kernels.KERNELS})
    return request.param


@pytest.fixture
def fallbacks_only(monkeypatch):
    """The layers' pure-MindSpore paths only: what runs on the NPU (the CPU kernels are host code)."""
    from mindspore_models import kernels

    monkeypatch.setattr(kernels, "status", lambda: {k: "fallback: as on the NPU" for k in kernels.KERNELS})


def pytest_configure(config):
    if os.environ.get("SGLMS_TEST_INSTALLED") == "1":
        import mindspore_models
        import sglang

        for mod in (mindspore_models, sglang):
            if "site-packages" not in mod.__file__:
                raise pytest.UsageError(f"testing {mod.__name__} from {mod.__file__}, not from the installed wheel")
