#include "decode_attention.h"

#include <algorithm>

#include "simd.h"
#include "vec_math.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace {
bool decode_simd_on = true;
}

extern "C" {
// For tests and probes only: 0 sends every decode token down the portable loop.
void SglmsSetDecodeSimd(int on) { decode_simd_on = on != 0; }
int SglmsDecodeSimd() { return decode_simd_on ? 1 : 0; }
}

namespace sglms {

#if defined(__x86_64__)
namespace {

constexpr int64_t kPrefetchKeys = 4;  // keys ahead: enough to cover a pool row's memory latency

// DV vectors of 16 floats per head (D = 16 * DV), HB query heads per pass (HB * DV <= 16
// accumulators, plus as many q vectors in the score pass).
template <int DV, int HB>
__attribute__((target("avx512f"))) void Heads(const float* qt, const float* K, const float* V, const int32_t* row,
                                              int64_t n, int64_t Hkv, int64_t kvh, int64_t h0, float scale,
                                              float* scores, float* ot) {
  constexpr int64_t D = 16 * DV;
  const auto seg = [&](const float* pool, int64_t j) { return pool + (row[j] * Hkv + kvh) * D; };
  __m512 q[HB][DV];
  for (int h = 0; h < HB; ++h)
    for (int d = 0; d < DV; ++d) q[h][d] = _mm512_loadu_ps(qt + (h0 + h) * D + 16 * d);
  for (int64_t j = 0; j < n; ++j) {
    if (j + kPrefetchKeys < n)
      for (int d = 0; d < DV; ++d) _mm_prefetch(reinterpret_cast<const char*>(seg(K, j + kPrefetchKeys) + 16 * d), _MM_HINT_T0);
    const float* kr = seg(K, j);
    __m512 acc[HB];
    for (int h = 0; h < HB; ++h) acc[h] = _mm512_setzero_ps();
    for (int d = 0; d < DV; ++d) {
      const __m512 kv = _mm512_loadu_ps(kr + 16 * d);
      for (int h = 0; h < HB; ++h) acc[h] = _mm512_fmadd_ps(q[h][d], kv, acc[h]);
    }
    for (int h = 0; h < HB; ++h) scores[h * n + j] = _mm512_reduce_add_ps(acc[h]) * scale;
  }
  for (int h = 0; h < HB; ++h) Softmax(scores + h * n, n);
  __m512 o[HB][DV];
  for (int h = 0; h < HB; ++h)
    for (int d = 0; d < DV; ++d) o[h][d] = _mm512_setzero_ps();
  for (int64_t j = 0; j < n; ++j) {
    if (j + kPrefetchKeys < n)
      for (int d = 0; d < DV; ++d) _mm_prefetch(reinterpret_cast<const char*>(seg(V, j + kPrefetchKeys) + 16 * d), _MM_HINT_T0);
    const float* vr = seg(V, j);
    __m512 p[HB];
    for (int h = 0; h < HB; ++h) p[h] = _mm512_set1_ps(scores[h * n + j]);
    for (int d = 0; d < DV; ++d) {
      const __m512 vv = _mm512_loadu_ps(vr + 16 * d);
      for (int h = 0; h < HB; ++h) o[h][d] = _mm512_fmadd_ps(p[h], vv, o[h][d]);
    }
  }
  for (int h = 0; h < HB; ++h)
    for (int d = 0; d < DV; ++d) _mm512_storeu_ps(ot + (h0 + h) * D + 16 * d, o[h][d]);
}

using HeadsFn = void (*)(const float*, const float*, const float*, const int32_t*, int64_t, int64_t, int64_t, int64_t,
                         float, float*, float*);

// [log2(DV)][HB - 1]
constexpr HeadsFn kHeads[4][2] = {{&Heads<1, 1>, &Heads<1, 2>},
                                  {&Heads<2, 1>, &Heads<2, 2>},
                                  {&Heads<4, 1>, &Heads<4, 2>},
                                  {&Heads<8, 1>, &Heads<8, 2>}};

int DvIndex(int64_t D) {
  switch (D) {
    case 16: return 0;
    case 32: return 1;
    case 64: return 2;
    case 128: return 3;
    default: return -1;
  }
}

}  // namespace

bool DecodeHeadsAvailable(int64_t D) {
  return CpuHasAvx512() && decode_simd_on && DvIndex(D) >= 0;
}

void DecodeHeads(const float* qt, const float* K, const float* V, const int32_t* row, int64_t n, int64_t Hkv,
                 int64_t kvh, int64_t h0, int64_t heads, int64_t D, float scale, float* scores, float* ot) {
  const HeadsFn* fns = kHeads[DvIndex(D)];
  for (int64_t h = h0; h < h0 + heads; h += 2) {
    const int hb = static_cast<int>(std::min<int64_t>(2, h0 + heads - h));
    fns[hb - 1](qt, K, V, row, n, Hkv, kvh, h, scale, scores, ot);
  }
}

#else  // no AVX-512 path on this architecture: paged_attention.cc keeps its portable loop

bool DecodeHeadsAvailable(int64_t) { return false; }
void DecodeHeads(const float*, const float*, const float*, const int32_t*, int64_t, int64_t, int64_t, int64_t, int64_t,
                 int64_t, float, float*, float*) {}

#endif

}  // namespace sglms
