// SwiGLU activation on a packed gate|up projection: out = silu(gate) * up.
// params: [x (T, 2I) f32, out (T, I) f32]
#include <cstdint>
#include <cstring>

#include "sglms_kernel_abi.h"
#include "vec_math.h"

extern "C" int SiluMul(int nparam, void** params, int* ndims, int64_t** shapes, const char** dtypes,
                       void* /*stream*/, void* /*extra*/) {
  if (nparam != 2 || ndims[0] != 2 || shapes[0][1] % 2 != 0) return SGLMS_ERR_BAD_ARGS;
  if (std::strcmp(dtypes[0], "float32") != 0) return SGLMS_ERR_BAD_DTYPE;
  const int64_t T = shapes[0][0], I = shapes[0][1] / 2;
  const auto* x = static_cast<const float*>(params[0]);
  auto* out = static_cast<float*>(params[1]);
#pragma omp parallel for if (T * I > (1 << 16))
  for (int64_t t = 0; t < T; ++t) {
    const float* g = x + t * 2 * I;
    sglms::SiluMulRow(g, g + I, out + t * I, I);
  }
  return 0;
}
