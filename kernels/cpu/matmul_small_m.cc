// y = x @ W for few rows (decode): x (M, K), W (K, N) row-major (the layout Linear stores).
// Each thread owns a column block of W and streams it once for all M rows, so decode is
// bound by reading the weights, not by per-row passes. MindSpore's CPU matmul was several
// times slower than memory bandwidth at M=1 on the CI machines.
// params: [x (M, K) f32, W (K, N) f32, out (M, N) f32]
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include <omp.h>

#include "sglms_kernel_abi.h"

namespace {

#ifndef SGLMS_MATMUL_BLOCK_N
#define SGLMS_MATMUL_BLOCK_N 2048
#endif
// 8 KiB of a W row: long enough to stream (few TLB misses per row), short enough that the
// 16 x kBlockN accumulators stay in L2.
constexpr int64_t kBlockN = SGLMS_MATMUL_BLOCK_N;

// x86-64: one AVX2/FMA clone picked at load time; other architectures get the portable build.
#if defined(__x86_64__)
#define SGLMS_SIMD_CLONES __attribute__((target_clones("arch=haswell", "default")))
#else
#define SGLMS_SIMD_CLONES
#endif

SGLMS_SIMD_CLONES
void Block(const float* x, const float* w, float* y, int64_t M, int64_t K, int64_t N, int64_t n0, int64_t n1) {
  thread_local std::vector<float> acc_buf(16 * kBlockN);  // width <= kBlockN
  float* acc = acc_buf.data();
  const int64_t width = n1 - n0;
  for (int64_t m0 = 0; m0 < M; m0 += 16) {
    const int64_t rows = std::min<int64_t>(16, M - m0);
    std::fill(acc, acc + rows * kBlockN, 0.f);
    for (int64_t k = 0; k < K; ++k) {
      const float* wr = w + k * N + n0;
      for (int64_t m = 0; m < rows; ++m) {
        const float a = x[(m0 + m) * K + k];
        float* ar = acc + m * kBlockN;
#pragma omp simd
        for (int64_t n = 0; n < width; ++n) ar[n] += a * wr[n];
      }
    }
    for (int64_t m = 0; m < rows; ++m) std::memcpy(y + (m0 + m) * N + n0, acc + m * kBlockN, width * sizeof(float));
  }
}

}  // namespace

extern "C" int MatMulSmallM(int nparam, void** params, int* ndims, int64_t** shapes, const char** dtypes,
                            void* /*stream*/, void* /*extra*/) {
  if (nparam != 3 || ndims[0] != 2 || ndims[1] != 2) return SGLMS_ERR_BAD_ARGS;
  if (std::strcmp(dtypes[0], "float32") != 0 || std::strcmp(dtypes[1], "float32") != 0) return SGLMS_ERR_BAD_DTYPE;
  const int64_t M = shapes[0][0], K = shapes[0][1], N = shapes[1][1];
  if (shapes[1][0] != K) return SGLMS_ERR_BAD_ARGS;
  const auto* x = static_cast<const float*>(params[0]);
  const auto* w = static_cast<const float*>(params[1]);
  auto* y = static_cast<float*>(params[2]);
  // at least one column block per thread, 16-float aligned, at most kBlockN wide
  const int64_t threads = omp_get_max_threads();
  const int64_t width = std::min<int64_t>(kBlockN, ((N + threads - 1) / threads + 15) / 16 * 16);
  const int64_t blocks = (N + width - 1) / width;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < blocks; ++b) Block(x, w, y, M, K, N, b * width, std::min(N, (b + 1) * width));
  return 0;
}

// y = x @ W^T with W (N, K), e.g. an LM head tied to the (vocab, hidden) embedding table.
// params: [x (M, K) f32, W (N, K) f32, out (M, N) f32]
namespace {

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

}  // namespace

extern "C" int MatMulSmallMNT(int nparam, void** params, int* ndims, int64_t** shapes, const char** dtypes,
                              void* /*stream*/, void* /*extra*/) {
  if (nparam != 3 || ndims[0] != 2 || ndims[1] != 2) return SGLMS_ERR_BAD_ARGS;
  if (std::strcmp(dtypes[0], "float32") != 0 || std::strcmp(dtypes[1], "float32") != 0) return SGLMS_ERR_BAD_DTYPE;
  const int64_t M = shapes[0][0], K = shapes[0][1], N = shapes[1][0];
  if (shapes[1][1] != K) return SGLMS_ERR_BAD_ARGS;
  const auto* x = static_cast<const float*>(params[0]);
  const auto* w = static_cast<const float*>(params[1]);
  auto* y = static_cast<float*>(params[2]);
  constexpr int64_t kRows = 64;
  const int64_t blocks = (N + kRows - 1) / kRows;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < blocks; ++b) RowsNT(x, w, y, M, K, N, b * kRows, std::min(N, (b + 1) * kRows));
  return 0;
}
