"""Tensor-parallel sharding math, proven in one process: shard the weights for 2 and 4 ranks,
run each rank's part of a layer, combine as the collective would (sum for all-reduce, concat
for all-gather), and compare with the unsharded layer."""
import mindspore as ms
import numpy as np
import pytest
import torch

from mindspore_models import parallel
from mindspore_models.registry import model_class
from mindspore_models.attention.cpu import CpuBackend
from mindspore_models.attention.plan import StepPlan
from mindspore_models.attention.pool import KVPool
from mindspore_models.weights import iter_safetensors

ATOL = 1e-5


def build(ckpt, rank=0, size=1):
    from transformers import AutoConfig

    hf = AutoConfig.from_pretrained(ckpt)
    with parallel.simulate(rank, size):
        model = model_class(hf.architectures)(hf)
        model.load_weights(iter_safetensors(ckpt))
    return model


# Qwen3 attention + dense and MoE layers; Llama with q/k/v/o biases and a tied LM head; Qwen2 q/k/v bias;
# DeepSeek-V3 MLA (heads split, latent replicated), dense first layer
VARIANTS = ["qwen3-moe", "llama-linear-rope-bias-tied", "qwen2", "deepseek-v3"]


@pytest.fixture(scope="module", params=[(v, n) for v in VARIANTS for n in (2, 4)], ids=lambda p: f"{p[0]}-tp{p[1]}")
def ranks(request, make_variant):
    variant, size = request.param
    ckpt = make_variant(variant)
    return build(ckpt), [build(ckpt, r, size) for r in range(size)]


def run(model, fn, rank=0, size=1):
    with parallel.simulate(rank, size):
        return fn(model).asnumpy()


def tokens(n=7, hidden=64, seed=0):  # every tiny variant has hidden size 64
    return ms.Tensor(np.random.default_rng(seed).standard_normal((n, hidden)).astype(np.float32))


def test_shards_are_smaller(ranks):
    full, parts = ranks
    size = len(parts)
    attn = parts[0].model.layers[0].self_attn
    if full.config.mla:
        assert attn.h == 4 // size
    else:
        assert attn.hq == 4 // size and attn.hkv == max(2 // size, 1)
    assert parts[0].model.embed_tokens.weight.shape[0] == 384 // size


def test_dense_mlp_all_reduce(ranks):
    full, parts = ranks
    x = tokens()
    want = run(full, lambda m: m.model.layers[0].mlp(x))  # layer 0 is dense (decoder_sparse_step=2)
    got = sum(run(p, lambda m: m.model.layers[0].mlp(x), r, len(parts)) for r, p in enumerate(parts))
    np.testing.assert_allclose(got, want, atol=ATOL)


@pytest.mark.parametrize("variant", ["qwen3-moe", "deepseek-v3"])  # DeepSeek: + shared experts, grouped routing
@pytest.mark.parametrize("size", [2, 4])
def test_moe_all_reduce(make_variant, variant, size):
    ckpt = make_variant(variant)
    full, parts = build(ckpt), [build(ckpt, r, size) for r in range(size)]
    assert parts[0].model.layers[1].mlp.experts.down_proj.shape[1] == 32 // size
    x = tokens(seed=1)
    want = run(full, lambda m: m.model.layers[1].mlp(x))
    got = sum(run(p, lambda m: m.model.layers[1].mlp(x), r, len(parts)) for r, p in enumerate(parts))
    np.testing.assert_allclose(got, want, atol=ATOL)


def attention_out(model, rank, size, x, n):
    attn = model.model.layers[0].self_attn
    if model.config.mla:  # one latent per token, replicated on every rank
        pool = KVPool([torch.zeros(32, 1, attn.lora + attn.rope)], [None], 1, mla=True)
    else:
        pool = KVPool([torch.zeros(32, attn.hkv, attn.d)], [torch.zeros(32, attn.hkv, attn.d)], 1, mla=False)
    plan = StepPlan.build(torch.tensor([n]), torch.tensor([n]), torch.arange(1, n + 1)[None], torch.arange(n),
                          torch.arange(1, n + 1))
    backend = CpuBackend(pool)
    with parallel.simulate(rank, size):
        attn.attn.bind(backend)  # this pool holds layer 0 only
        return attn(ms.Tensor(plan.positions.to(torch.int32).numpy()), x, backend.prepare(plan)).asnumpy()


def test_attention_heads_split_and_all_reduce(ranks):
    full, parts = ranks
    x = tokens(n=9, seed=2)
    want = attention_out(full, 0, 1, x, 9)
    got = sum(attention_out(p, r, len(parts), x, 9) for r, p in enumerate(parts))
    np.testing.assert_allclose(got, want, atol=ATOL)


def test_vocab_parallel_embedding_all_reduce(ranks):
    full, parts = ranks
    ids = ms.Tensor(np.array([0, 5, 100, 191, 192, 383, 250], np.int32))
    want = run(full, lambda m: m.model.embed_tokens(ids))
    got = sum(run(p, lambda m: m.model.embed_tokens(ids), r, len(parts)) for r, p in enumerate(parts))
    np.testing.assert_allclose(got, want, atol=ATOL)


def test_lm_head_all_gather(ranks):
    full, parts = ranks
    x = tokens(n=3, seed=3)
    want = run(full, lambda m: m.lm_head(x))
    got = np.concatenate([run(p, lambda m: m.lm_head(x), r, len(parts)) for r, p in enumerate(parts)], -1)
    np.testing.assert_allclose(got, want, atol=ATOL)


def test_indivisible_sizes_are_clear_errors():
    with pytest.raises(ValueError, match="vocab_size = 384 does not divide by tensor-parallel size 5"):
        parallel.TP(0, 5).split(384, "vocab_size")
    with pytest.raises(ValueError, match="3 ranks cannot share 2 KV heads evenly"):
        parallel.TP(0, 3).kv_heads(2)
