// y = x @ W^T: x (M, K), W (N, K) row-major, HF's (out, in) layout, which every Linear and the LM
// head store. One op for every row count; the path is chosen here, from M:
// - M <= kTileMaxM (decode batches), where the CPU has AVX-512: register tiles (gemm_tiles.h), one
//   pass over the weights without packing them;
// - larger M: oneDNN's sgemm (onednn.h), N split over this op's OpenMP team, so all of a GEMM's
//   threads are one team, the same one as every other kernel;
// - M <= kRowDotMaxM, or oneDNN could not be opened: a row-dot loop (portable; slowest here).
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>

#include <omp.h>

#include "gemm_tiles.h"
#include "onednn.h"
#include "sglms_kernel_abi.h"
#include "simd.h"


namespace {

// Largest M for the row-dot path. 0: on this machine kind oneDNN won at every M, 1 included
// (benchmarks/probe_gemm.py, README Numbers); the row-dot path remains for when oneDNN is absent.
int64_t kRowDotMaxM = 0;
// Largest M for the AVX-512 register tiles (gemm_tiles.h), where the CPU has them.
int64_t kTileMaxM = 16;

using sglms::SgemmFn;

SGLMS_SIMD_CLONES
void RowsNT(const float* x, const float* w, float* y, int64_t M, int64_t K, int64_t N, int64_t n0, int64_t n1) {
  for (int64_t n = n0; n < n1; ++n) {
    const float* wr = w + n * K;
    for (int64_t m = 0; m < M; ++m) {
      const float* xr = x + m * K;
      float s = 0.f;
#pragma omp simd reduction(+ : s)
      for (int64_t k = 0; k < K; ++k) s += xr[k] * wr[k];
      y[m * N + n] = s;
    }
  }
}

void RowDot(const float* x, const float* w, float* y, int64_t M, int64_t K, int64_t N) {
  constexpr int64_t kRows = 64;
  const int64_t blocks = (N + kRows - 1) / kRows;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < blocks; ++b) RowsNT(x, w, y, M, K, N, b * kRows, std::min(N, (b + 1) * kRows));
}

// fn(n0, n1) on each thread of this op's OpenMP team, for its contiguous band of output columns (a
// band of W rows) whose width is a multiple of `multiple`; a thread left without columns skips.
template <class Fn>
void InBands(int64_t N, int64_t multiple, Fn fn) {
#pragma omp parallel
  {
    const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t band = ((N + threads - 1) / threads + multiple - 1) / multiple * multiple;
    const int64_t n0 = std::min(N, t * band), n1 = std::min(N, n0 + band);
    if (n1 > n0) fn(n0, n1);
  }
}

// One sgemm per band (multiples of 16 columns).
int OneDnn(SgemmFn sgemm, const float* x, const float* w, float* y, int64_t M, int64_t K, int64_t N) {
  std::atomic<int> status{0};
  InBands(N, 16, [&](int64_t n0, int64_t n1) {
    const int rc = sgemm('N', 'T', M, n1 - n0, K, 1.f, x, K, w + n0 * K, K, 0.f, y + n0, N);
    if (rc != 0) status = rc;
  });
  return status.load() == 0 ? 0 : SGLMS_ERR_BAD_ARGS;
}

}  // namespace

extern "C" {

// For probes only: the row count up to which the AVX-512 tiles run (when the CPU has them).
void SglmsSetTileMaxM(int64_t m) { kTileMaxM = m; }
int64_t SglmsTileMaxM() { return sglms::TileGemmAvailable() ? kTileMaxM : 0; }

// For probes only (benchmarks/probe_gemm.py): the row count up to which the row-dot path runs.
void SglmsSetRowDotMaxM(int64_t m) { kRowDotMaxM = m; }
int64_t SglmsRowDotMaxM() { return kRowDotMaxM; }

// params: [x (M, K) f32, W (N, K) f32, out (M, N) f32]
int MatMulNT(int nparam, void** params, int* ndims, int64_t** shapes, const char** dtypes, void* /*stream*/,
             void* /*extra*/) {
  if (nparam != 3 || ndims[0] != 2 || ndims[1] != 2) return SGLMS_ERR_BAD_ARGS;
  if (std::strcmp(dtypes[0], "float32") != 0 || std::strcmp(dtypes[1], "float32") != 0) return SGLMS_ERR_BAD_DTYPE;
  const int64_t M = shapes[0][0], K = shapes[0][1], N = shapes[1][0];
  if (shapes[1][1] != K) return SGLMS_ERR_BAD_ARGS;
  const auto* x = static_cast<const float*>(params[0]);
  const auto* w = static_cast<const float*>(params[1]);
  auto* y = static_cast<float*>(params[2]);
  if (M == 0) return 0;
  if (M <= kTileMaxM && sglms::TileGemmAvailable()) {  // bands of whole W tiles
    InBands(N, sglms::kTileRowsN, [&](int64_t n0, int64_t n1) { sglms::TileGemmNT(x, w, y, M, K, N, n0, n1); });
    return 0;
  }
  const SgemmFn sgemm = sglms::OneDnnSgemm();
  if (M <= kRowDotMaxM || sgemm == nullptr) {
    RowDot(x, w, y, M, K, N);
    return 0;
  }
  return OneDnn(sgemm, x, w, y, M, K, N);
}

}  // extern "C"
