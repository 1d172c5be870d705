// Sparse MoE experts with SwiGLU (Qwen3-MoE, DeepSeek): for each token t and each of its k
// routed experts e with weight w:  out[t] += w * (silu(x[t] @ G_e) * (x[t] @ U_e)) @ D_e.
// Weights are stacked per expert as (in, out), the layout layers/moe.py's Experts keep (the Linear
// layers keep HF's (out, in)): gate_up (E, H, 2I) with gate columns first, down (E, I, H).
// Tokens run in parallel; each reads only its k experts, so decode touches k of E experts.
// params: [x (T, H) f32, weights (T, k) f32, ids (T, k) i32, gate_up (E, H, 2I) f32,
//          down (E, I, H) f32, out (T, H) f32]
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "sglms_kernel_abi.h"
#include "vec_math.h"

extern "C" int MoeSwiGLU(int nparam, void** params, int* ndims, int64_t** shapes, const char** dtypes,
                         void* /*stream*/, void* /*extra*/) {
  if (nparam != 6 || ndims[0] != 2 || ndims[1] != 2 || ndims[2] != 2 || ndims[3] != 3 || ndims[4] != 3)
    return SGLMS_ERR_BAD_ARGS;
  if (std::strcmp(dtypes[0], "float32") != 0 || std::strcmp(dtypes[2], "int32") != 0) return SGLMS_ERR_BAD_DTYPE;
  const int64_t T = shapes[0][0], H = shapes[0][1], K = shapes[1][1];
  const int64_t E = shapes[3][0], I2 = shapes[3][2], I = I2 / 2;
  if (shapes[3][1] != H || shapes[4][0] != E || shapes[4][1] != I || shapes[4][2] != H || shapes[2][1] != K)
    return SGLMS_ERR_BAD_ARGS;
  const auto* x = static_cast<const float*>(params[0]);
  const auto* w = static_cast<const float*>(params[1]);
  const auto* ids = static_cast<const int32_t*>(params[2]);
  const auto* gate_up = static_cast<const float*>(params[3]);
  const auto* down = static_cast<const float*>(params[4]);
  auto* out = static_cast<float*>(params[5]);
  for (int64_t i = 0; i < T * K; ++i)
    if (ids[i] < 0 || ids[i] >= E) return SGLMS_ERR_BAD_INDEX;
#pragma omp parallel
  {
    std::vector<float> h(I2), act(I);
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < T; ++t) {
      float* o = out + t * H;
      std::fill(o, o + H, 0.f);
      for (int64_t j = 0; j < K; ++j) {
        const int64_t e = ids[t * K + j];
        const float* gu = gate_up + e * H * I2;
        std::fill(h.begin(), h.end(), 0.f);
        for (int64_t c = 0; c < H; ++c) {
          const float a = x[t * H + c];
          const float* row = gu + c * I2;
#pragma omp simd
          for (int64_t n = 0; n < I2; ++n) h[n] += a * row[n];
        }
        sglms::SiluMulRow(h.data(), h.data() + I, act.data(), I);
        const float scale = w[t * K + j];
        const float* d = down + e * I * H;
        for (int64_t n = 0; n < I; ++n) {
          const float a = act[n] * scale;
          const float* row = d + n * H;
#pragma omp simd
          for (int64_t c = 0; c < H; ++c) o[c] += a * row[c];
        }
      }
    }
  }
  return 0;
}
