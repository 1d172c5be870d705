"""SGLang rewrites the HF config on CPU before building the model (configs/update_config.py):
intermediate sizes are padded, and head counts too when TP does not divide them. The MindSpore
models must build from the checkpoint's sizes, load it unchanged and compute what HF computes.
These tests run SGLang's own rewrite on the tiny checkpoints, so an upstream change shows here."""
import numpy as np
import pytest
import torch

from mindspore_models.config import normalize
from mindspore_models.registry import model_class
from mindspore_models.weights import WeightLoadError, iter_safetensors

PADDED_VARIANTS = ["qwen3", "llama-llama3-rope", "qwen2-tied", "qwen3-moe-unaligned", "deepseek-v3-unaligned"]


def sglang_rewritten_config(ckpt, tp_size: int = 1):
    """The hf_config SGLang hands a model on CPU with `tp_size` ranks."""
    from sglang.srt.configs.load_config import LoadConfig
    from sglang.srt.configs.model_config import ModelConfig
    from sglang.srt.configs.update_config import adjust_config_with_unaligned_cpu_tp

    mc = ModelConfig(str(ckpt), dtype="float32")
    return adjust_config_with_unaligned_cpu_tp(mc, LoadConfig(), tp_size).hf_config


def checkpoint_config(ckpt):
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(ckpt)


@pytest.mark.parametrize("variant", PADDED_VARIANTS)
def test_sglang_pads_the_test_checkpoints(variant, make_variant):
    """The premise: each engine variant really gets a padded config from SGLang on CPU."""
    ckpt = make_variant(variant)
    hf, padded = checkpoint_config(ckpt), sglang_rewritten_config(ckpt)
    name = "moe_intermediate_size" if hasattr(hf, "moe_intermediate_size") else "intermediate_size"
    assert getattr(padded, name) > getattr(hf, name), f"SGLang no longer pads {name}: this test proves nothing"


@pytest.mark.parametrize("variant", PADDED_VARIANTS)
@pytest.mark.parametrize("tp_size", [1, 4])
def test_model_config_ignores_sglang_padding(variant, tp_size, make_variant):
    ckpt = make_variant(variant)
    assert normalize(sglang_rewritten_config(ckpt, tp_size)) == normalize(checkpoint_config(ckpt))


def test_head_padding_is_undone(make_variant):
    ckpt = make_variant("qwen3")  # 6 query heads, 2 KV heads
    padded = sglang_rewritten_config(ckpt, tp_size=4)
    assert (padded.num_attention_heads, padded.num_key_value_heads) == (12, 4)  # SGLang's TP head padding
    cfg = normalize(padded)
    assert (cfg.num_heads, cfg.num_kv_heads, cfg.head_dim) == (6, 2, 32)


@pytest.mark.parametrize("variant", ["qwen3-moe-unaligned", "deepseek-v3-unaligned"])
def test_padded_config_loads_the_checkpoint_and_matches_hf(variant, make_variant):
    from transformers import AutoModelForCausalLM

    from mindspore_models.runtime.standalone import StandaloneRunner

    ckpt = make_variant(variant)
    runner = StandaloneRunner(str(ckpt), hf_config=sglang_rewritten_config(ckpt))
    ids = [5, 17, 33, 2, 99, 100, 7, 8, 250]
    hf = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32).eval()
    with torch.no_grad():
        want = hf(torch.tensor([ids])).logits[0].numpy()
    np.testing.assert_allclose(runner.prefill_logits(ids).numpy(), want, atol=1e-4)


def test_wrong_checkpoint_still_names_tensor_and_both_shapes(make_variant):
    ckpt = make_variant("qwen3-moe-unaligned")
    padded = sglang_rewritten_config(ckpt)
    model = model_class(padded.architectures)(padded)
    weights = dict(iter_safetensors(ckpt))
    weights["model.layers.1.mlp.experts.3.down_proj.weight"] = torch.zeros(96, 64)  # as if padded to 64
    with pytest.raises(WeightLoadError, match=r"model\.layers\.1\.mlp\.experts\.3\.down_proj\.weight: checkpoint shape "
                                              r"\(96, 64\), model expects \(96, 48\)"):
        model.load_weights(weights.items())


def test_pool_with_padded_heads_is_a_clear_error(make_variant):
    """If SGLang sized its KV pool from padded head counts, the model refuses it before any step."""
    from mindspore_models.attention.pool import KVPool
    from mindspore_models.runtime.sglang_model import padding_hint

    ckpt = make_variant("qwen3")
    padded = sglang_rewritten_config(ckpt, tp_size=4)
    model = model_class(padded.architectures)(padded)
    assert model.kv_row_shapes()[0] == (2, 32)
    layers = model.config.num_layers
    pool = KVPool([torch.zeros(8, 4, 32)] * layers, [torch.zeros(8, 4, 32)] * layers, 1, mla=False)  # 4 KV heads
    with pytest.raises(ValueError, match=r"layer 0 holds rows of shape \(4, 32\).*expects \(2, 32\).*6 -> 12"):
        pool.check(model.kv_row_shapes(), torch.float32, padding_hint(padded))
