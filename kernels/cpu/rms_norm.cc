// RMSNorm over the last dim: out = x * rsqrt(mean(x^2) + eps) * w.
// params: [x (..., D) f32, w (D,) f32, eps (1,) f32, out (..., D) f32]
#include <cstdint>
#include <cstring>

#include "row_ops.h"
#include "sglms_kernel_abi.h"

extern "C" int RmsNorm(int nparam, void** params, int* ndims, int64_t** shapes, const char** dtypes,
                       void* /*stream*/, void* /*extra*/) {
  if (nparam != 4 || ndims[0] < 1 || ndims[1] != 1) return SGLMS_ERR_BAD_ARGS;
  if (std::strcmp(dtypes[0], "float32") != 0 || std::strcmp(dtypes[1], "float32") != 0) return SGLMS_ERR_BAD_DTYPE;
  const int64_t D = shapes[0][ndims[0] - 1];
  if (shapes[1][0] != D) return SGLMS_ERR_BAD_ARGS;
  int64_t rows = 1;
  for (int d = 0; d < ndims[0] - 1; ++d) rows *= shapes[0][d];
  const auto* x = static_cast<const float*>(params[0]);
  const auto* w = static_cast<const float*>(params[1]);
  const float eps = *static_cast<const float*>(params[2]);
  auto* out = static_cast<float*>(params[3]);
#pragma omp parallel for if (rows * D > (1 << 16))
  for (int64_t r = 0; r < rows; ++r) sglms::RmsNormRow(x + r * D, w, eps, D, out + r * D);
  return 0;
}
