// Rotary embedding, NeoX half-rotation (HF Llama/Qwen): for each head, with c/s the cos/sin of
// position p at frequency i < D/2:  out[i] = x[i]*c - x[i+D/2]*s,  out[i+D/2] = x[i+D/2]*c + x[i]*s.
// params: [x (T, H, D) f32, positions (T,) i32, cos (P, D/2) f32, sin (P, D/2) f32, out (T, H, D) f32]
#include <cstdint>
#include <cstring>

#include "row_ops.h"
#include "sglms_kernel_abi.h"

extern "C" int RopeNeox(int nparam, void** params, int* ndims, int64_t** shapes, const char** dtypes,
                        void* /*stream*/, void* /*extra*/) {
  if (nparam != 5 || ndims[0] != 3 || ndims[1] != 1 || ndims[2] != 2 || ndims[3] != 2) return SGLMS_ERR_BAD_ARGS;
  if (std::strcmp(dtypes[0], "float32") != 0 || std::strcmp(dtypes[1], "int32") != 0) return SGLMS_ERR_BAD_DTYPE;
  const int64_t T = shapes[0][0], H = shapes[0][1], D = shapes[0][2], half = D / 2, P = shapes[2][0];
  if (D % 2 != 0 || shapes[1][0] != T || shapes[2][1] != half || shapes[3][1] != half) return SGLMS_ERR_BAD_ARGS;
  const auto* x = static_cast<const float*>(params[0]);
  const auto* pos = static_cast<const int32_t*>(params[1]);
  const auto* cos = static_cast<const float*>(params[2]);
  const auto* sin = static_cast<const float*>(params[3]);
  auto* out = static_cast<float*>(params[4]);
  return sglms::ForEachRotatedHead(T, H, D, pos, P, cos, sin, [&](int64_t t, int64_t h, const float* c, const float* s) {
    sglms::RopeRow(x + (t * H + h) * D, c, s, half, out + (t * H + h) * D);
  });
}
