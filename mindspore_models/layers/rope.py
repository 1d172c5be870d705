"""Rotary position embedding (NeoX half-rotation, as Llama/Qwen in HF) with a precomputed table."""
from __future__ import annotations

import functools
import math

import mindspore as ms
import numpy as np
from mindspore import nn

from mindspore_models import kernels


def inv_frequencies(head_dim: int, theta: float, scaling: dict | None) -> np.ndarray:
    inv = (1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.int64).astype(np.float32) / head_dim))).astype(np.float32)
    kind = (scaling or {}).get("rope_type", "default")
    if kind == "default":
        return inv
    if kind == "linear":  # positions divided by factor == frequencies divided by factor
        return (inv / np.float32(scaling["factor"])).astype(np.float32)
    if kind == "llama3":
        return _llama3(inv, scaling)
    if kind == "yarn":
        return _yarn(inv, head_dim, theta, scaling)
    raise NotImplementedError(f"rope scaling type {kind!r} is not implemented (supported: linear, llama3, yarn)")


def yarn_mscale(scale: float, mscale: float = 1.0) -> float:
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


def cos_sin_scale(scaling: dict | None) -> float:
    """YaRN multiplies cos/sin by an attention factor; every other type leaves them as they are."""
    if not scaling or scaling.get("rope_type") != "yarn":
        return 1.0
    if scaling.get("attention_factor") is not None:
        return float(scaling["attention_factor"])
    factor, m, m_all = scaling["factor"], scaling.get("mscale"), scaling.get("mscale_all_dim")
    return yarn_mscale(factor, m) / yarn_mscale(factor, m_all) if m and m_all else yarn_mscale(factor)


def _yarn(inv: np.ndarray, dim: int, theta: float, s: dict) -> np.ndarray:
    """YaRN: high frequencies kept, low ones interpolated by `factor`, a linear ramp between."""
    factor, old_len = s["factor"], s["original_max_position_embeddings"]
    fast, slow = s.get("beta_fast") or 32, s.get("beta_slow") or 1

    def correction_dim(rotations):
        return dim * math.log(old_len / (rotations * 2 * math.pi)) / (2 * math.log(theta))

    low, high = correction_dim(fast), correction_dim(slow)
    if s.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    ramp = np.clip((np.arange(dim // 2, dtype=np.float32) - low) / ((high + 0.001 if low == high else high) - low), 0, 1)
    extrapolation = 1 - ramp.astype(np.float32)
    return ((inv / np.float32(factor)) * (1 - extrapolation) + inv * extrapolation).astype(np.float32)


def _llama3(inv: np.ndarray, s: dict) -> np.ndarray:
    """Llama 3.1: long wavelengths slowed by `factor`, short ones kept, the band between blended."""
    factor, low, high = np.float32(s["factor"]), s["low_freq_factor"], s["high_freq_factor"]
    old_len = s["original_max_position_embeddings"]
    wavelen = (2 * np.pi / inv).astype(np.float32)
    scaled = np.where(wavelen > old_len / low, inv / factor, inv).astype(np.float32)
    smooth = ((old_len / wavelen - low) / (high - low)).astype(np.float32)
    blended = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= old_len / high) & (wavelen <= old_len / low)
    return np.where(medium, blended, scaled).astype(np.float32)


class RotaryEmbedding(nn.Cell):
    def __init__(self, head_dim: int, max_position: int, theta: float, scaling: dict | None = None):
        super().__init__()
        key = (head_dim, max_position, theta, tuple(sorted((scaling or {}).items())))
        self.cos, self.sin = _tables(*key)

    def construct(self, positions, q, k):
        """q: [T, Hq, D], k: [T, Hk, D] -> rotated, same shapes."""
        return kernels.rope_neox(q, positions, self.cos, self.sin), kernels.rope_neox(k, positions, self.cos, self.sin)

    def normed(self, positions, x, weight, eps: float):
        """x [T, H, D] RMS-normalised per head by `weight` [D], then rotated: one op on CPU (Qwen3's q/k norm)."""
        return kernels.rms_norm_rope(x, weight, eps, positions, self.cos, self.sin)


@functools.cache
def _tables(head_dim: int, max_position: int, theta: float, scaling: tuple):
    """cos/sin [P, D/2], built once per shape and shared by every layer."""
    scaling = dict(scaling) or None
    inv = inv_frequencies(head_dim, theta, scaling)
    freqs = np.outer(np.arange(max_position, dtype=np.float32), inv)
    scale = np.float32(cos_sin_scale(scaling))
    return ms.Tensor((np.cos(freqs) * scale).astype(np.float32)), ms.Tensor((np.sin(freqs) * scale).astype(np.float32))
