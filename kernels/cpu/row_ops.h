// One row of the elementwise kernels, shared by the plain and the fused ops, so a fused op
// computes exactly what the ops it replaces compute.
#pragma once
#include <cmath>
#include <cstdint>

#include "sglms_kernel_abi.h"

namespace sglms {

// out = x * rsqrt(mean(x^2) + eps) * w over one row of D; out may be x.
inline void RmsNormRow(const float* x, const float* w, float eps, int64_t D, float* out) {
  float ss = 0.f;
#pragma omp simd reduction(+ : ss)
  for (int64_t i = 0; i < D; ++i) ss += x[i] * x[i];
  const float inv = 1.f / std::sqrt(ss / static_cast<float>(D) + eps);
#pragma omp simd
  for (int64_t i = 0; i < D; ++i) out[i] = x[i] * inv * w[i];
}

// NeoX half-rotation of one head (D = 2 * half) by cos/sin c, s of its position; out may be x.
inline void RopeRow(const float* x, const float* c, const float* s, int64_t half, float* out) {
#pragma omp simd
  for (int64_t i = 0; i < half; ++i) {
    const float a = x[i], b = x[i + half];
    out[i] = a * c[i] - b * s[i];
    out[i + half] = b * c[i] + a * s[i];
  }
}

// For x (T, H, D) and int32 positions (T,) into cos/sin tables (P, D/2): fn(t, h, c, s) for every
// token and head, c and s the table rows of the token's position. SGLMS_ERR_BAD_INDEX (nothing
// run) when a position is outside the tables.
template <class Fn>
int ForEachRotatedHead(int64_t T, int64_t H, int64_t D, const int32_t* pos, int64_t P, const float* cos,
                       const float* sin, Fn fn) {
  for (int64_t t = 0; t < T; ++t)
    if (pos[t] < 0 || pos[t] >= P) return SGLMS_ERR_BAD_INDEX;
  const int64_t half = D / 2;
#pragma omp parallel for if (T * H * D > (1 << 16))
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < H; ++h) fn(t, h, cos + pos[t] * half, sin + pos[t] * half);
  return 0;
}

}  // namespace sglms
