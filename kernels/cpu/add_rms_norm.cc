// Residual add + RMSNorm in one pass (the pre-norm decoder's "residual += sublayer(x); h = norm(residual)"):
// residual += delta, in place, then out = RmsNorm(residual, w). In place because a MindSpore AOT op
// has one inferred output; the caller orders later readers of `residual` after this op
// (mindspore_models/kernels.py: add_rms_norm).
// params: [delta (..., D) f32, residual (..., D) f32 (updated), w (D,) f32, eps (1,) f32, out (..., D) f32]
#include <cstdint>
#include <cstring>

#include "row_ops.h"
#include "sglms_kernel_abi.h"

extern "C" int AddRmsNorm(int nparam, void** params, int* ndims, int64_t** shapes, const char** dtypes,
                          void* /*stream*/, void* /*extra*/) {
  if (nparam != 5 || ndims[0] < 1 || ndims[1] != ndims[0] || ndims[2] != 1) return SGLMS_ERR_BAD_ARGS;
  for (int i = 0; i < 3; ++i)
    if (std::strcmp(dtypes[i], "float32") != 0) return SGLMS_ERR_BAD_DTYPE;
  int64_t rows = 1;
  for (int d = 0; d < ndims[0]; ++d) {
    if (shapes[0][d] != shapes[1][d]) return SGLMS_ERR_BAD_ARGS;
    if (d < ndims[0] - 1) rows *= shapes[0][d];
  }
  const int64_t D = shapes[0][ndims[0] - 1];
  if (shapes[2][0] != D) return SGLMS_ERR_BAD_ARGS;
  const auto* delta = static_cast<const float*>(params[0]);
  auto* residual = static_cast<float*>(params[1]);
  const auto* w = static_cast<const float*>(params[2]);
  const float eps = *static_cast<const float*>(params[3]);
  auto* out = static_cast<float*>(params[4]);
#pragma omp parallel for if (rows * D > (1 << 16))
  for (int64_t r = 0; r < rows; ++r) {
    float* res = residual + r * D;
    const float* d = delta + r * D;
#pragma omp simd
    for (int64_t i = 0; i < D; ++i) res[i] += d[i];
    sglms::RmsNormRow(res, w, eps, D, out + r * D);
  }
  return 0;
}
