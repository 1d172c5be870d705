// Qwen3's per-head q/k norm and rotary embedding in one op: out = RopeNeox(RmsNorm(x, w), positions),
// each head normalised over its D then rotated (row_ops.h: the same rows RmsNorm and RopeNeox compute).
// params: [x (T, H, D) f32, w (D,) f32, eps (1,) f32, positions (T,) i32, cos (P, D/2) f32,
//          sin (P, D/2) f32, out (T, H, D) f32]
#include <cstdint>
#include <cstring>

#include "row_ops.h"
#include "sglms_kernel_abi.h"

extern "C" int RmsNormRope(int nparam, void** params, int* ndims, int64_t** shapes, const char** dtypes,
                           void* /*stream*/, void* /*extra*/) {
  if (nparam != 7 || ndims[0] != 3 || ndims[1] != 1 || ndims[3] != 1 || ndims[4] != 2 || ndims[5] != 2)
    return SGLMS_ERR_BAD_ARGS;
  if (std::strcmp(dtypes[0], "float32") != 0 || std::strcmp(dtypes[1], "float32") != 0 ||
      std::strcmp(dtypes[3], "int32") != 0)
    return SGLMS_ERR_BAD_DTYPE;
  const int64_t T = shapes[0][0], H = shapes[0][1], D = shapes[0][2], half = D / 2, P = shapes[4][0];
  if (D % 2 != 0 || shapes[1][0] != D || shapes[3][0] != T || shapes[4][1] != half || shapes[5][1] != half)
    return SGLMS_ERR_BAD_ARGS;
  const auto* x = static_cast<const float*>(params[0]);
  const auto* w = static_cast<const float*>(params[1]);
  const float eps = *static_cast<const float*>(params[2]);
  const auto* pos = static_cast<const int32_t*>(params[3]);
  const auto* cos = static_cast<const float*>(params[4]);
  const auto* sin = static_cast<const float*>(params[5]);
  auto* out = static_cast<float*>(params[6]);
  return sglms::ForEachRotatedHead(T, H, D, pos, P, cos, sin, [&](int64_t t, int64_t h, const float* c, const float* s) {
    float* o = out + (t * H + h) * D;
    sglms::RmsNormRow(x + (t * H + h) * D, w, eps, D, o);
    sglms::RopeRow(o, c, s, half, o);
  });
}
