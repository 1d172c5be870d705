"""Write a tiny HF-format checkpoint (config.json + safetensors + tokenizer) with random weights.

No hub is reachable here, so tests, the README's main job and benchmarks build their own
checkpoints. They keep the real architectures' quirks at small sizes: GQA, q/k norm, an
explicit head_dim that differs from hidden/heads, tied or untied embeddings.

    python -m mindspore_models.tools.make_tiny_checkpoint --out /tmp/tiny-qwen3 [--arch llama] [--tied]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CORPUS = (
    "The quick brown fox jumps over the lazy dog. MindSpore runs the model and SGLang schedules "
    "the requests. Paged attention keeps keys and values in a shared pool; the radix cache reuses "
    "prefixes across requests. Hello, how are you today? I am fine, thank you. Count: one two "
    "three four five six seven eight nine ten. "
)

TINY_SHAPE = dict(
    vocab_size=384, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=1024,
    rms_norm_eps=1e-6, rope_theta=1000000.0,
)
# Sizes that are not multiples of 64, as real checkpoints often have: SGLang pads such
# intermediate sizes on CPU (136 -> 160, MoE 48 -> 64), and a model that trusted the padded
# config would expect weights the checkpoint does not have.
UNALIGNED = dict(hidden_size=96, intermediate_size=136, num_attention_heads=6, num_key_value_heads=2)
UNALIGNED_MOE = dict(UNALIGNED, moe_intermediate_size=48)
# Real Qwen3-0.6B widths, for benchmarks (random weights; layer count adjustable).
QWEN3_0_6B = dict(
    vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
    num_attention_heads=16, num_key_value_heads=8, head_dim=128, max_position_embeddings=40960,
    rms_norm_eps=1e-6, rope_theta=1000000.0,
)


def train_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([CORPUS] * 20, trainer)
    return tok


# arch -> (transformers config class, model class); each keeps its architecture's quirks
ARCHS = {
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM"),
    "llama": ("LlamaConfig", "LlamaForCausalLM"),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM"),
    "qwen3_moe": ("Qwen3MoeConfig", "Qwen3MoeForCausalLM"),
    "deepseek_v3": ("DeepseekV3Config", "DeepseekV3ForCausalLM"),
}
# MLA with q and kv LoRA, decoupled rope part (interleaved in the checkpoint), grouped routing
TINY_DEEPSEEK = dict(q_lora_rank=32, kv_lora_rank=16, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16,
                     n_routed_experts=8, n_group=4, topk_group=2, num_experts_per_tok=2, n_shared_experts=1,
                     first_k_dense_replace=1, moe_intermediate_size=32, num_hidden_layers=3, norm_topk_prob=True,
                     routed_scaling_factor=2.5, rope_interleave=True, num_key_value_heads=4)
# MoE quirks at small size: 8 experts, top-2, dense and sparse layers mixed
TINY_MOE = dict(num_experts=8, num_experts_per_tok=2, moe_intermediate_size=32, decoder_sparse_step=2,
                mlp_only_layers=[2], norm_topk_prob=True, num_hidden_layers=4)
ROPE_SCALING = {
    "linear": {"rope_type": "linear", "factor": 2.0},
    "llama3": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 32},  # small, so tests cross it
    "yarn": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32, "beta_fast": 32,
             "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0},  # DeepSeek-V3's kind
}


def make_checkpoint(out: Path, arch: str = "qwen3", tied: bool = False, seed: int = 0, shape: dict | None = None,
                    init_std: float = 0.2, layers: int | None = None, rope_scaling: str | None = None,
                    **config_overrides) -> Path:
    import torch
    import transformers
    from transformers import PreTrainedTokenizerFast

    config_cls, model_cls = (getattr(transformers, n) for n in ARCHS[arch])
    shape = dict(shape or TINY_SHAPE)
    if arch in ("llama", "qwen2"):
        shape.pop("head_dim", None)  # Llama/Qwen2 derive head_dim = hidden / heads
    if arch == "qwen3_moe":
        shape.update({k: v for k, v in TINY_MOE.items() if k not in config_overrides})
    if arch == "deepseek_v3":
        shape.pop("head_dim", None)  # DeepSeek sets head_dim = qk_rope_head_dim itself
        shape.update({k: v for k, v in TINY_DEEPSEEK.items() if k not in config_overrides})
    shape.update(config_overrides)
    if layers is not None:
        shape["num_hidden_layers"] = layers
    out.mkdir(parents=True, exist_ok=True)
    tok = train_tokenizer(min(shape["vocab_size"], 384))
    eos = tok.token_to_id("<|im_end|>")
    rope = {"rope_type": "default", "rope_theta": shape.pop("rope_theta")}
    rope.update(ROPE_SCALING.get(rope_scaling or "", {}))
    config = config_cls(**shape, tie_word_embeddings=tied, initializer_range=init_std, rope_parameters=rope,
                        bos_token_id=tok.token_to_id("<|endoftext|>"), eos_token_id=eos, torch_dtype="float32")
    config.architectures = [ARCHS[arch][1]]
    torch.manual_seed(seed)
    model = model_cls(config).float().eval()
    with torch.no_grad():  # HF inits norms to 1 and biases to 0; perturb them so a wrong one shows
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.add_(torch.randn_like(p) * 0.1)
            elif name.endswith(".bias"):
                p.add_(torch.randn_like(p) * 0.1)
        for name, b in model.named_buffers():  # DeepSeek's router correction bias decides expert choice
            if name.endswith("e_score_correction_bias"):
                b.add_(torch.randn_like(b) * 0.1)
    model.save_pretrained(out, safe_serialization=True)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", bos_token=None,
                                   pad_token="<|endoftext|>", unk_token=None)
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)
    gen = {"eos_token_id": eos, "pad_token_id": tok.token_to_id("<|endoftext|>"), "do_sample": False}
    (out / "generation_config.json").write_text(json.dumps(gen))
    return out


def make_qwen3(out: Path, **kwargs) -> Path:
    return make_checkpoint(out, "qwen3", **kwargs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--arch", choices=sorted(ARCHS), default="qwen3")
    ap.add_argument("--rope-scaling", choices=sorted(ROPE_SCALING), help="Llama rope scaling variant")
    ap.add_argument("--attention-bias", action="store_true", help="Llama: biases on q/k/v/o")
    ap.add_argument("--tied", action="store_true", help="tie lm_head to the embedding")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shape", choices=["tiny", "qwen3-0.6b"], default="tiny")
    ap.add_argument("--layers", type=int, help="override num_hidden_layers")
    args = ap.parse_args()
    shape = TINY_SHAPE if args.shape == "tiny" else QWEN3_0_6B
    std = 0.2 if args.shape == "tiny" else 0.02
    extra = {"attention_bias": True} if args.attention_bias else {}
    path = make_checkpoint(args.out, args.arch, tied=args.tied, seed=args.seed, shape=shape, init_std=std,
                           layers=args.layers, rope_scaling=args.rope_scaling, **extra)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
