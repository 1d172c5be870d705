#include "gemm_tiles.h"

#include <algorithm>
#include <utility>

#include "simd.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace sglms {

#if defined(__x86_64__)
namespace {

constexpr int kTileM = 4;  // x rows per tile
constexpr int kTileN = kTileRowsN;  // 4 x 6: 24 accumulators + 6 W vectors + 1 x vector = 31 zmm
constexpr int64_t kChunkK = 1024;  // a 6-row W tile of this many columns (24 KB) stays in L1 across x tiles

// `next` (or nullptr): the W block computed after this one (NR rows of `next_k` columns, same row
// stride), prefetched line by line while this one computes, so its memory latency hides behind
// this block's FMAs. Only a full tile is ever followed by another tile, so NR rows are right.
// This call prefetches rows pf_first, pf_first + pf_step, ...: the passes over one W block share
// its prefetches out, so they spread over the whole block instead of bunching in the first pass
// (M=16 GEMMs 8-30% faster in an interleaved A/B).
template <int MR, int NR>
__attribute__((target("avx512f"))) void Tile(const float* x, const float* w, float* y, int64_t K, int64_t ld,
                                             int64_t ldy, bool accumulate, const float* next, int64_t next_k, int pf_first,
                                             int pf_step) {
  __m512 acc[MR][NR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    if (next != nullptr && k < next_k) {
#pragma GCC unroll 8
      for (int j = pf_first; j < NR; j += pf_step) _mm_prefetch(reinterpret_cast<const char*>(next + j * ld + k), _MM_HINT_T0);
    }
    __m512 wv[NR];
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) wv[j] = _mm512_loadu_ps(w + j * ld + k);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512 xv = _mm512_loadu_ps(x + i * ld + k);
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  if (k < K) {
    const __mmask16 mask = static_cast<__mmask16>((1u << (K - k)) - 1);
    __m512 wv[NR];
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) wv[j] = _mm512_maskz_loadu_ps(mask, w + j * ld + k);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512 xv = _mm512_maskz_loadu_ps(mask, x + i * ld + k);
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) {
      const float sum = _mm512_reduce_add_ps(acc[i][j]);
      y[i * ldy + j] = accumulate ? y[i * ldy + j] + sum : sum;
    }
}

using TileFn = void (*)(const float*, const float*, float*, int64_t, int64_t, int64_t, bool, const float*, int64_t, int, int);

template <int MR, int... NRs>
constexpr void FillRow(TileFn* row, std::integer_sequence<int, NRs...>) {
  ((row[NRs] = &Tile<MR, NRs + 1>), ...);
}

template <int... MRs>
constexpr void FillTable(TileFn (*table)[kTileN], std::integer_sequence<int, MRs...>) {
  (FillRow<MRs + 1>(table[MRs], std::make_integer_sequence<int, kTileN>{}), ...);
}

struct TileTable {
  TileFn fn[kTileM][kTileN] = {};
  TileTable() { FillTable(fn, std::make_integer_sequence<int, kTileM>{}); }
};

const TileTable& Tiles() {
  static const TileTable table;
  return table;
}

}  // namespace

bool TileGemmAvailable() { return CpuHasAvx512(); }

void TileGemmNT(const float* x, const float* w, float* y, int64_t M, int64_t K, int64_t N, int64_t n0, int64_t n1) {
  const TileTable& t = Tiles();
  const int passes = static_cast<int>((M + kTileM - 1) / kTileM);  // over each W block, one per x tile
  for (int64_t n = n0; n < n1; n += kTileN) {
    const int nr = static_cast<int>(std::min<int64_t>(kTileN, n1 - n));
    const bool next_tile = n + 2 * kTileN <= n1;  // prefetch only whole tiles inside this band
    for (int64_t k0 = 0; k0 < K; k0 += kChunkK) {
      const int64_t kc = std::min(kChunkK, K - k0);
      // the W block computed after this one: this tile's next chunk, else the next tile's first
      const bool last_chunk = k0 + kc >= K;
      const float* next = !last_chunk ? w + n * K + k0 + kc : (next_tile ? w + (n + kTileN) * K : nullptr);
      const int64_t next_k = std::min(kChunkK, last_chunk ? K : K - k0 - kc);
      for (int64_t m = 0; m < M; m += kTileM) {
        const int mr = static_cast<int>(std::min<int64_t>(kTileM, M - m));
        t.fn[mr - 1][nr - 1](x + m * K + k0, w + n * K + k0, y + m * N + n, kc, K, N, k0 > 0, next, next_k,
                             static_cast<int>(m / kTileM), passes);
      }
    }
  }
}

#else  // no AVX-512 tiles on this architecture: MatMulNT takes its other paths

bool TileGemmAvailable() { return false; }
void TileGemmNT(const float*, const float*, float*, int64_t, int64_t, int64_t, int64_t, int64_t) {}

#endif

}  // namespace sglms
