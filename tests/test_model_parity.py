"""Every MindSpore architecture vs HF transformers (torch) on tiny checkpoints: logits and greedy tokens."""
import pytest
import torch
from conftest import VARIANTS, hf_greedy

from mindspore_models.runtime.standalone import StandaloneRunner
from mindspore_models.runtime.step import CompiledForward
from mindspore_models.weights import WeightLoadError, iter_safetensors


PROMPTS = [[5, 17, 33, 2, 99, 100, 7, 8, 250, 11, 12], [40, 41, 42], [7] * 23]
LOGITS_ATOL = 1e-4
GREEDY_TOKENS = 32


def hf_model(path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


@pytest.fixture(params=sorted(VARIANTS))
def checkpoint(request, make_variant):
    return make_variant(request.param)


def test_tied_checkpoint_really_is_tied(tiny_qwen3_tied, tiny_qwen3):
    tied = dict(iter_safetensors(tiny_qwen3_tied))
    untied = dict(iter_safetensors(tiny_qwen3))
    assert "lm_head.weight" not in tied and "lm_head.weight" in untied


def assert_graph_mode(runner, kernel_mode):
    """Compiled exactly where it should be: kernels on, graph mode on, and not MLA (PyNative: see cpu.py)."""
    expected = kernel_mode == "custom-kernels" and runner.model.config.mla is None
    assert isinstance(runner.run, CompiledForward) == expected, (kernel_mode, type(runner.run))
    if expected:
        assert runner.run.compiles == 1, f"{runner.run.compiles} graphs compiled: a recompile in steady state"


def test_prefill_logits_match_hf(checkpoint, kernel_mode):
    hf = hf_model(checkpoint)
    runner = StandaloneRunner(str(checkpoint))
    for prompt in PROMPTS:
        with torch.no_grad():
            ref = hf(torch.tensor([prompt])).logits[0]
        got = runner.prefill_logits(prompt)
        assert got.shape == ref.shape
        diff = (got - ref).abs().max().item()
        assert diff <= LOGITS_ATOL, f"prompt len {len(prompt)}: max abs diff {diff}"
        assert ref.abs().max() > 1.0  # the comparison is not between near-zero tensors
    assert_graph_mode(runner, kernel_mode)


def test_greedy_tokens_match_hf_in_a_mixed_length_batch(checkpoint, kernel_mode):
    hf = hf_model(checkpoint)
    runner = StandaloneRunner(str(checkpoint))
    got = runner.greedy(PROMPTS, GREEDY_TOKENS)
    for prompt, tokens in zip(PROMPTS, got):
        ref = hf_greedy(hf, prompt, GREEDY_TOKENS)
        assert len(set(ref)) > 3, "degenerate reference: the test could not tell models apart"
        assert tokens == ref, f"prompt len {len(prompt)}"
    assert_graph_mode(runner, kernel_mode)  # prefill of 3 lengths, then 32 decode steps: one graph


def test_cached_prefix_extend_matches_full_prefill(tiny_qwen3, kernel_mode):
    """Extend with a prefix already in the pool (what a radix-cache hit does) == full prefill."""
    from mindspore_models.runtime.standalone import Sequence

    runner = StandaloneRunner(str(tiny_qwen3))
    prompt = PROMPTS[0]
    full = runner.prefill_logits(prompt)
    seq = Sequence([])
    runner.step([seq], [prompt[:6]])
    tail = runner.step([seq], [prompt[6:]], all_logits=True)
    assert (tail - full[6:]).abs().max().item() <= LOGITS_ATOL
    assert_graph_mode(runner, kernel_mode)


def _load_edited(checkpoint, edit):
    from transformers import AutoConfig

    from mindspore_models.registry import model_class

    hf = AutoConfig.from_pretrained(checkpoint)
    weights = dict(iter_safetensors(checkpoint))
    edit(weights)
    model_class(hf.architectures)(hf).load_weights(weights.items())


def test_missing_tensor_is_named(tiny_qwen3):
    with pytest.raises(WeightLoadError, match=r"model\.layers\.1\.self_attn\.qkv_proj\.weight is incomplete: "
                                              r"no tensor for shard\(s\) k \(HF k_proj\)"):
        _load_edited(tiny_qwen3, lambda w: w.pop("model.layers.1.self_attn.k_proj.weight"))
    with pytest.raises(WeightLoadError, match=r"missing tensors.*model\.norm\.weight"):
        _load_edited(tiny_qwen3, lambda w: w.pop("model.norm.weight"))


def test_unexpected_tensor_is_named(tiny_qwen3):
    with pytest.raises(WeightLoadError, match=r"unexpected tensors in checkpoint: model\.layers\.0\.bogus\.weight"):
        _load_edited(tiny_qwen3, lambda w: w.__setitem__("model.layers.0.bogus.weight", torch.zeros(3)))


def test_wrong_shape_names_tensor_and_both_shapes(tiny_qwen3):
    def bad(w):
        w["model.layers.0.mlp.up_proj.weight"] = torch.zeros(135, 96)

    with pytest.raises(WeightLoadError, match=r"model\.layers\.0\.mlp\.up_proj\.weight: checkpoint shape \(135, 96\), "
                                              r"model expects \(136, 96\)"):
        _load_edited(tiny_qwen3, bad)


def test_integer_tensor_is_rejected(tiny_qwen3):
    def bad(w):
        w["model.norm.weight"] = torch.zeros(96, dtype=torch.int8)

    with pytest.raises(WeightLoadError, match=r"model\.norm\.weight: dtype torch\.int8 is not a floating type"):
        _load_edited(tiny_qwen3, bad)


def test_missing_expert_tensor_is_named(make_variant):
    ckpt = make_variant("qwen3-moe")
    with pytest.raises(WeightLoadError, match=r"model\.layers\.1\.mlp\.experts\.gate_up_proj is incomplete: "
                                              r"no tensor for shard\(s\) \(3, 1\)"):
        _load_edited(ckpt, lambda w: w.pop("model.layers.1.mlp.experts.3.up_proj.weight"))
    with pytest.raises(WeightLoadError, match=r"model\.layers\.1\.mlp\.experts\.7\.down_proj\.weight: checkpoint shape "
                                              r"\(64, 31\), model expects \(64, 32\)"):
        _load_edited(ckpt, lambda w: w.__setitem__("model.layers.1.mlp.experts.7.down_proj.weight", torch.zeros(64, 31)))


@pytest.mark.parametrize("variant", ["qwen3", "deepseek-v3-unaligned"])
def test_cpu_backend_over_128_token_pages_matches_hf(variant, make_variant, kernel_mode):
    """SGLang's --page-size 128 (the NPU pool's memory order): whole pages per request, same tokens."""
    ckpt = make_variant(variant)
    runner = StandaloneRunner(str(ckpt), max_tokens=1024, page_size=128)
    got = runner.greedy(PROMPTS, 8)
    # one page per request; page 0 is padding (slot 0 may hold the graph warm-up's dummy row, as SGLang's padded tokens)
    written = runner.pool.token_major(runner.pool.keys[0])[1:].abs().sum((1, 2)).nonzero().flatten() + 1
    assert sorted(set(written.div(128, rounding_mode="floor").tolist())) == [1, 2, 3]
    hf = hf_model(ckpt)
    assert got == [hf_greedy(hf, p, 8) for p in PROMPTS]
