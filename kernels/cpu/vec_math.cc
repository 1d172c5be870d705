#include "vec_math.h"

#include <algorithm>
#include <cmath>

#include "simd.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace sglms {
namespace {

void SoftmaxScalar(float* r, int64_t n) {
  const float mx = *std::max_element(r, r + n);
  float sum = 0.f;
  for (int64_t j = 0; j < n; ++j) sum += (r[j] = std::exp(r[j] - mx));
  const float inv = 1.f / sum;
  for (int64_t j = 0; j < n; ++j) r[j] *= inv;
}

void SiluMulScalar(const float* g, const float* u, float* o, int64_t n) {
  for (int64_t i = 0; i < n; ++i) o[i] = g[i] / (1.f + std::exp(-g[i])) * u[i];
}

#if defined(__x86_64__)
// e^x = 2^k * e^r, k = round(x / ln 2), r = x - k ln 2 (ln 2 split in two for exactness),
// |r| <= ln2 / 2, where the Taylor series to r^7 is off by < 6e-9 relative.
__attribute__((target("avx512f"))) inline __m512 Exp(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.33654f)), _mm512_set1_ps(88.72283f));
  const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(k, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.f / 5040);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 720));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  return _mm512_scalef_ps(p, k);
}

// Lanes of the 16-float vector at i that fall inside [0, n): all of them but in a row's tail.
inline __mmask16 Lanes(int64_t i, int64_t n) {
  return n - i >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (n - i)) - 1);
}

__attribute__((target("avx512f"))) void SoftmaxAvx512(float* r, int64_t n) {
  __m512 mx = _mm512_set1_ps(-INFINITY);
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = Lanes(j, n);
    mx = _mm512_mask_max_ps(mx, m, mx, _mm512_maskz_loadu_ps(m, r + j));
  }
  const __m512 top = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
  __m512 sum = _mm512_setzero_ps();
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = Lanes(j, n);
    const __m512 e = Exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, r + j), top));
    _mm512_mask_storeu_ps(r + j, m, e);
    sum = _mm512_mask_add_ps(sum, m, sum, e);
  }
  const __m512 inv = _mm512_set1_ps(1.f / _mm512_reduce_add_ps(sum));
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = Lanes(j, n);
    _mm512_mask_storeu_ps(r + j, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, r + j), inv));
  }
}

__attribute__((target("avx512f"))) void SiluMulAvx512(const float* g, const float* u, float* o, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = Lanes(i, n);
    const __m512 gv = _mm512_maskz_loadu_ps(m, g + i);
    const __m512 s = _mm512_div_ps(gv, _mm512_add_ps(_mm512_set1_ps(1.f), Exp(_mm512_sub_ps(_mm512_setzero_ps(), gv))));
    _mm512_mask_storeu_ps(o + i, m, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, u + i)));
  }
}
#else
void SoftmaxAvx512(float*, int64_t) {}
void SiluMulAvx512(const float*, const float*, float*, int64_t) {}
#endif

}  // namespace

void Softmax(float* r, int64_t n) {
  if (n <= 0) return;
  if (CpuHasAvx512()) return SoftmaxAvx512(r, n);
  SoftmaxScalar(r, n);
}

void SiluMulRow(const float* g, const float* u, float* o, int64_t n) {
  if (CpuHasAvx512()) return SiluMulAvx512(g, u, o, n);
  SiluMulScalar(g, u, o, n);
}

}  // namespace sglms
