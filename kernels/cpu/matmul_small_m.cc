// y = x @ W^T for few rows (decode): x (M, K), W (N, K) row-major, HF's (out, in) layout, which
// every Linear and the LM head store. Each output is one contiguous dot product over a W row, so
// decode streams the weights once at close to the machine's read bandwidth.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include <omp.h>

#include "sglms_kernel_abi.h"

// x86-64: one AVX2/FMA clone picked at load time; other architectures get the portable build.
#if defined(__x86_64__)
#define SGLMS_SIMD_CLONES __attribute__((target_clones("arch=haswell", "default")))
#else
#define SGLMS_SIMD_CLONES
#endif

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
