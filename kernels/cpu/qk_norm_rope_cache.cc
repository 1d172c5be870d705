// The attention prologue in one op, straight from the packed qkv projection: each query head
// RMS-normalised (Qwen3's q/k norm; skipped when the norm weights are empty, as for Llama and
// Qwen2) and rotated into the output; each key head normalised, rotated and written into its
// KV-pool slot; each value head copied into its slot. Replaces the split of qkv (whose strided
// views MindSpore copies before every custom op), two RmsNormRope and two KvCacheWrite launches.
// The rows are computed by row_ops.h, as RmsNormRope and KvCacheWrite compute them.
// params: [qkv (T, (Hq + 2 Hkv) D) f32, q_heads (Hq,) any (only its shape is read: the output's
//          head count), q_w (D,) or (0,) f32, k_w (D,) or (0,) f32, eps (1,) f32, positions (T,) i32,
//          cos (P, D/2) f32, sin (P, D/2) f32, kv_ref (4,) i64 {k_addr, v_addr, rows, Hkv} (f32 pools),
//          slots (T,) i64, out q (T, Hq, D) f32]
#include <cstdint>
#include <cstring>

#include "row_ops.h"
#include "sglms_kernel_abi.h"

extern "C" int QkNormRopeCache(int nparam, void** params, int* ndims, int64_t** shapes, const char** dtypes,
                               void* /*stream*/, void* /*extra*/) {
  if (nparam != 11 || ndims[0] != 2 || ndims[1] != 1 || ndims[2] != 1 || ndims[3] != 1 || ndims[5] != 1 ||
      ndims[6] != 2 || ndims[7] != 2 || ndims[8] != 1 || shapes[8][0] != 4 || ndims[9] != 1)
    return SGLMS_ERR_BAD_ARGS;
  if (std::strcmp(dtypes[0], "float32") != 0 || std::strcmp(dtypes[2], "float32") != 0 ||
      std::strcmp(dtypes[3], "float32") != 0 || std::strcmp(dtypes[5], "int32") != 0 ||
      std::strcmp(dtypes[8], "int64") != 0 || std::strcmp(dtypes[9], "int64") != 0)
    return SGLMS_ERR_BAD_DTYPE;
  const auto* ref = static_cast<const int64_t*>(params[8]);
  auto* K = reinterpret_cast<float*>(static_cast<uintptr_t>(ref[0]));
  auto* V = reinterpret_cast<float*>(static_cast<uintptr_t>(ref[1]));
  const int64_t rows = ref[2], Hkv = ref[3];
  const int64_t T = shapes[0][0], Hq = shapes[1][0], half = shapes[6][1], D = 2 * half, P = shapes[6][0];
  const int64_t width = (Hq + 2 * Hkv) * D;
  const bool norm = shapes[2][0] != 0;
  if (shapes[0][1] != width || shapes[2][0] != shapes[3][0] || (norm && shapes[2][0] != D) || shapes[5][0] != T ||
      shapes[7][1] != half || shapes[9][0] != T)
    return SGLMS_ERR_BAD_ARGS;
  const auto* qkv = static_cast<const float*>(params[0]);
  const auto* q_w = static_cast<const float*>(params[2]);
  const auto* k_w = static_cast<const float*>(params[3]);
  const float eps = *static_cast<const float*>(params[4]);
  const auto* pos = static_cast<const int32_t*>(params[5]);
  const auto* cos = static_cast<const float*>(params[6]);
  const auto* sin = static_cast<const float*>(params[7]);
  const auto* slots = static_cast<const int64_t*>(params[9]);
  auto* out = static_cast<float*>(params[10]);
  for (int64_t t = 0; t < T; ++t)  // checked before anything is written: a bad slot leaves the pool as it was
    if (slots[t] < 0 || slots[t] >= rows) return SGLMS_ERR_BAD_INDEX;
  // "heads" Hq query + Hkv key heads are rotated; value heads are copied after them, per token
  return sglms::ForEachRotatedHead(T, Hq + Hkv, D, pos, P, cos, sin, [&](int64_t t, int64_t h, const float* c, const float* s) {
    const float* x = qkv + t * width + h * D;
    float* dst = h < Hq ? out + (t * Hq + h) * D : K + (slots[t] * Hkv + h - Hq) * D;
    if (norm) {
      sglms::RmsNormRow(x, h < Hq ? q_w : k_w, eps, D, dst);
      sglms::RopeRow(dst, c, s, half, dst);
    } else {
      sglms::RopeRow(x, c, s, half, dst);
    }
    if (h == Hq + Hkv - 1)
      std::memcpy(V + slots[t] * Hkv * D, qkv + t * width + (Hq + Hkv) * D, static_cast<size_t>(Hkv * D) * sizeof(float));
  });
}
