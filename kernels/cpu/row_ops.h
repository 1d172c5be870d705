// One row of the elementwise kernels, shared by the plain and the fused ops, so a fused op
// computes exactly what the ops it replaces compute.
#pragma once
#include <cmath>
#include <cstdint>

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

}  // namespace sglms
