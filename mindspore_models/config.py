"""One normaliser from an HF config to the frozen config the layers read (no getattr in layers)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MoEConfig:
    num_experts: int
    top_k: int
    intermediate_size: int  # per expert
    norm_topk_prob: bool  # renormalise the top-k router probabilities to sum to 1
    sparse_layers: tuple[int, ...]  # layers whose MLP is the MoE; the others are dense
    scoring: str = "softmax"  # "sigmoid": DeepSeek-V3 scores, with a per-expert correction bias for choosing
    n_group: int = 1  # grouped top-k: experts in n_group groups, only the topk_group best groups are eligible
    topk_group: int = 1
    routed_scaling_factor: float = 1.0
    n_shared_experts: int = 0  # always-on experts, one dense MLP of n_shared * intermediate_size


@dataclass(frozen=True)
class MLAConfig:
    """Multi-head latent attention (DeepSeek-V2/V3): K/V are cached as one compressed latent."""

    q_lora_rank: int | None
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int
    rope_interleave: bool  # checkpoint rope dims are interleaved pairs (x0, x1), (x2, x3), ...


@dataclass(frozen=True)
class ModelConfig:
    architecture: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    rope_scaling: dict | None
    max_position: int
    tie_word_embeddings: bool
    qkv_bias: bool  # bias on q/k/v projections (Qwen2 always; Llama when attention_bias)
    o_bias: bool  # bias on the output projection (Llama attention_bias)
    qk_norm: bool  # RMSNorm on q and k per head (Qwen3)
    moe: MoEConfig | None = None
    mla: MLAConfig | None = None


def _rope(hf: Any) -> tuple[float, dict | None]:
    params = getattr(hf, "rope_parameters", None) or {}
    theta = params.get("rope_theta", getattr(hf, "rope_theta", 10000.0))
    if not params:  # transformers < 5 kept scaling in a separate dict
        params = getattr(hf, "rope_scaling", None) or {}
    kind = params.get("rope_type", params.get("type", "default"))
    if kind == "default":
        return float(theta), None
    # one spelling: SGLang's config loader adds the legacy "type" key beside "rope_type"
    return float(theta), {**{k: v for k, v in params.items() if k != "type"}, "rope_type": kind}


# SGLang on CPU rewrites the HF config before the model is built (configs/update_config.py):
# intermediate sizes are padded to a multiple of 32 * tp and head counts to a multiple of tp,
# with the checkpoint's value kept as `original_<name>` (heads: see _heads). We build from the
# checkpoint's sizes and ignore the padding: it only exists to make SGLang's own even TP splits
# work, our layers cut their own shards at load, and zero-padded weights would cost memory and
# GEMM time for nothing. The padded head counts are caught where they would matter: the KV pool
# check in runtime/sglang_model.py.
def _checkpoint_size(hf: Any, name: str):
    return getattr(hf, f"original_{name}", None) or getattr(hf, name)


def _heads(hf: Any) -> tuple[int, int]:
    """(query heads, KV heads) of the checkpoint, before any SGLang TP head padding."""
    heads = getattr(hf, "original_num_attention_heads", None) or hf.num_attention_heads
    kv = getattr(hf, "original_total_num_kv_heads", None) or getattr(hf, "num_key_value_heads", None) or heads
    return heads, kv


def normalize(hf: Any, qk_norm: bool = False, qkv_bias: bool | None = None) -> ModelConfig:
    """`qkv_bias` None: follow the config's attention_bias (it also decides o_bias)."""
    arch = (getattr(hf, "architectures", None) or ["?"])[0]
    theta, scaling = _rope(hf)
    heads, kv_heads = _heads(hf)
    return ModelConfig(
        architecture=arch,
        vocab_size=hf.vocab_size,
        hidden_size=hf.hidden_size,
        intermediate_size=_checkpoint_size(hf, "intermediate_size"),
        num_layers=hf.num_hidden_layers,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=getattr(hf, "head_dim", None) or hf.hidden_size // heads,
        rms_norm_eps=hf.rms_norm_eps,
        rope_theta=theta,
        rope_scaling=scaling,
        max_position=hf.max_position_embeddings,
        tie_word_embeddings=bool(getattr(hf, "tie_word_embeddings", False)),
        qkv_bias=bool(getattr(hf, "attention_bias", False)) if qkv_bias is None else qkv_bias,
        o_bias=bool(getattr(hf, "attention_bias", False)),
        qk_norm=qk_norm,
        moe=_moe(hf),
        mla=_mla(hf),
    )


def _mla(hf: Any) -> MLAConfig | None:
    if not getattr(hf, "kv_lora_rank", None):
        return None
    return MLAConfig(hf.q_lora_rank, hf.kv_lora_rank, hf.qk_nope_head_dim, hf.qk_rope_head_dim, hf.v_head_dim,
                     bool(getattr(hf, "rope_interleave", False)))


def _moe(hf: Any) -> MoEConfig | None:
    if getattr(hf, "n_routed_experts", None):  # DeepSeek-V3
        first_dense = getattr(hf, "first_k_dense_replace", 0)
        return MoEConfig(hf.n_routed_experts, hf.num_experts_per_tok, _checkpoint_size(hf, "moe_intermediate_size"),
                         bool(hf.norm_topk_prob), tuple(range(first_dense, hf.num_hidden_layers)),
                         scoring="sigmoid", n_group=hf.n_group, topk_group=hf.topk_group,
                         routed_scaling_factor=float(hf.routed_scaling_factor),
                         n_shared_experts=hf.n_shared_experts or 0)
    experts = getattr(hf, "num_experts", 0) or 0
    if not experts:
        return None
    step = getattr(hf, "decoder_sparse_step", 1) or 1
    dense = set(getattr(hf, "mlp_only_layers", None) or [])
    sparse = tuple(i for i in range(hf.num_hidden_layers) if i not in dense and (i + 1) % step == 0)
    return MoEConfig(experts, hf.num_experts_per_tok, _checkpoint_size(hf, "moe_intermediate_size"),
                     bool(getattr(hf, "norm_topk_prob", False)), sparse)


# Sizes a checkpoint's config.json must state itself: transformers fills a missing one with its
# class default (e.g. hidden_size 4096), which would surface later as a confusing shape error.
REQUIRED_FIELDS = ("architectures", "hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size",
                   "intermediate_size")


class ConfigError(ValueError):
    pass


def check_config_file(model_dir) -> None:
    """config.json exists, parses, and states every REQUIRED_FIELDS entry."""
    import json
    from pathlib import Path

    path = Path(model_dir) / "config.json"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist") from None
    except ValueError as e:
        raise ConfigError(f"{path} is not valid JSON ({e})") from None
    missing = [k for k in REQUIRED_FIELDS if k not in raw]
    if missing:
        raise ConfigError(f"{path} is missing required field(s) {', '.join(missing)}")
