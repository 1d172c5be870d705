// Paged attention over SGLang's KV pool, for prefill, decode and mixed batches.
//
// Query t of request b sits at position p = seq_len[b] - q_len[b] + i and attends keys
// 0..p of that request; key j lives in pool slot kv_slots[b, j]. GQA: query head h reads KV
// head h / (Hq / Hkv). The pool is reached by reference ({k_addr, v_addr, rows, Hkv}) because
// MindSpore would otherwise copy the whole pool into every op that reads it.
//
// params: [q (T, Hq, D) f32, kv_ref (4,) i64, kv_slots (B, S) i32, seq_lens (B,) i32,
//          q_starts (B,) i32, q_lens (B,) i32, scale (1,) f32, k_written (N,) any, v_written (N,) any,
//          out (T, Hq*D) f32]
// k_written / v_written are unused data, the outputs of the layer's two KV writes: they order this
// op after both (as inputs, not through a Depend node, which costs ~0.1 ms per step and layer in a
// compiled dynamic-shape graph here).
//
// Two paths: a request with at least kGemmMinQ new tokens (prefill, long extends) gathers its
// keys and values per KV head and runs scores and outputs as oneDNN GEMMs over blocks of its
// queries (onednn.h); every other query token (decode, short extends) takes a per-token loop over
// its KV heads, in AVX-512 registers where the CPU and head dim allow (decode_attention.h).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include <omp.h>

#include "decode_attention.h"
#include "onednn.h"
#include "sglms_kernel_abi.h"
#include "simd.h"
#include "vec_math.h"

namespace {

using sglms::Softmax;

struct Work {
  int64_t token, pos, req;
};

inline float Dot(const float* a, const float* b, int64_t n) {
  float s = 0.f;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// Asks for the cache lines of floats [p, p + n) ahead of their use (rows of the pool are scattered).
inline void Prefetch(const float* p, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) __builtin_prefetch(p + i);
}

constexpr int64_t kGemmMinQ = 16;  // new tokens from which a request takes the GEMM path
constexpr int64_t kQueryBlock = 64;  // query rows per score block (bounds the scores buffer)

// Row i of `scores` (keys 0..cols) keeps keys 0..first_visible+i, softmax over them, zeros after.
void CausalSoftmax(float* scores, int64_t rows, int64_t cols, int64_t first_visible) {
  for (int64_t i = 0; i < rows; ++i) {
    float* r = scores + i * cols;
    const int64_t n = first_visible + i + 1;
    Softmax(r, n);
    std::fill(r + n, r + cols, 0.f);
  }
}

// One request x one query head: its keys/values gathered (rows of KV head kvh), then per block
// of queries scores = q k^T * scale (GEMM), causal softmax, out = p v (GEMM).
int RequestHead(sglms::SgemmFn sgemm, const float* q, const float* K, const float* V, const int32_t* row,
                float* out, int64_t q_start, int64_t q_len, int64_t seq_len, int64_t h, int64_t kvh, int64_t Hq,
                int64_t Hkv, int64_t D, float scale, float* keys, float* values, float* scores) {
  for (int64_t j = 0; j < seq_len; ++j) {
    std::memcpy(keys + j * D, K + (row[j] * Hkv + kvh) * D, D * sizeof(float));
    std::memcpy(values + j * D, V + (row[j] * Hkv + kvh) * D, D * sizeof(float));
  }
  const int64_t prefix = seq_len - q_len, ld = Hq * D;
  for (int64_t r0 = 0; r0 < q_len; r0 += kQueryBlock) {
    const int64_t rows = std::min(kQueryBlock, q_len - r0), cols = prefix + r0 + rows;
    const float* qb = q + ((q_start + r0) * Hq + h) * D;
    float* ob = out + ((q_start + r0) * Hq + h) * D;
    if (sgemm('N', 'T', rows, cols, D, scale, qb, ld, keys, D, 0.f, scores, cols) != 0) return SGLMS_ERR_BAD_ARGS;
    CausalSoftmax(scores, rows, cols, prefix + r0);
    if (sgemm('N', 'N', rows, D, cols, 1.f, scores, cols, values, D, 0.f, ob, ld) != 0) return SGLMS_ERR_BAD_ARGS;
  }
  return 0;
}

// Portable per-token item: query heads of KV heads k0 .. k1 - 1 of token row qt over keys 0 .. n - 1
// (pool slots row[...]), written into the token's output row ot. scores: (k1 - k0) * group * n floats.
SGLMS_SIMD_CLONES
void TokenHeads(const float* qt, const float* K, const float* V, const int32_t* row, int64_t n, int64_t Hkv,
                int64_t k0, int64_t k1, int64_t group, int64_t D, float scale, float* scores, float* ot) {
  const int64_t h0 = k0 * group, heads = (k1 - k0) * group;
  for (int64_t j = 0; j < n; ++j) {
    if (j + 1 < n) Prefetch(K + (row[j + 1] * Hkv + k0) * D, (k1 - k0) * D);
    const float* kr = K + row[j] * Hkv * D;
    for (int64_t h = h0; h < h0 + heads; ++h) scores[(h - h0) * n + j] = Dot(qt + h * D, kr + (h / group) * D, D) * scale;
  }
  for (int64_t h = 0; h < heads; ++h) Softmax(scores + h * n, n);
  std::fill(ot + h0 * D, ot + (h0 + heads) * D, 0.f);
  for (int64_t j = 0; j < n; ++j) {
    if (j + 1 < n) Prefetch(V + (row[j + 1] * Hkv + k0) * D, (k1 - k0) * D);
    const float* vr = V + row[j] * Hkv * D;
    for (int64_t h = h0; h < h0 + heads; ++h) {
      const float p = scores[(h - h0) * n + j];
      const float* vv = vr + (h / group) * D;
      float* o = ot + h * D;
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) o[d] += p * vv[d];
    }
  }
}

}  // namespace

extern "C" int PagedAttention(int nparam, void** params, int* ndims, int64_t** shapes, const char** dtypes,
                              void* /*stream*/, void* /*extra*/) {
  if (nparam != 10 || ndims[0] != 3 || ndims[2] != 2) return SGLMS_ERR_BAD_ARGS;
  if (std::strcmp(dtypes[0], "float32") != 0 || std::strcmp(dtypes[2], "int32") != 0) return SGLMS_ERR_BAD_DTYPE;
  const int64_t T = shapes[0][0], Hq = shapes[0][1], D = shapes[0][2];
  const int64_t B = shapes[2][0], S = shapes[2][1];
  const auto* q = static_cast<const float*>(params[0]);
  const auto* ref = static_cast<const int64_t*>(params[1]);
  const auto* K = reinterpret_cast<const float*>(static_cast<uintptr_t>(ref[0]));
  const auto* V = reinterpret_cast<const float*>(static_cast<uintptr_t>(ref[1]));
  const int64_t rows = ref[2], Hkv = ref[3];
  const auto* slots = static_cast<const int32_t*>(params[2]);
  const auto* seq_lens = static_cast<const int32_t*>(params[3]);
  const auto* q_starts = static_cast<const int32_t*>(params[4]);
  const auto* q_lens = static_cast<const int32_t*>(params[5]);
  const float scale = *static_cast<const float*>(params[6]);
  auto* out = static_cast<float*>(params[9]);
  if (Hkv <= 0 || Hq % Hkv != 0) return SGLMS_ERR_BAD_ARGS;
  const int64_t group = Hq / Hkv;

  const sglms::SgemmFn sgemm = sglms::OneDnnSgemm();
  std::vector<Work> work;  // per-token path
  std::vector<int64_t> gemm_requests;  // GEMM path
  work.reserve(T);
  for (int64_t b = 0; b < B; ++b) {
    if (seq_lens[b] > S || q_lens[b] > seq_lens[b]) return SGLMS_ERR_BAD_ARGS;
    if (q_starts[b] < 0 || q_starts[b] + q_lens[b] > T) return SGLMS_ERR_BAD_ARGS;
    for (int64_t j = 0; j < seq_lens[b]; ++j) {
      const int32_t slot = slots[b * S + j];
      if (slot < 0 || slot >= rows) return SGLMS_ERR_BAD_INDEX;
    }
    if (sgemm != nullptr && q_lens[b] >= kGemmMinQ) {
      gemm_requests.push_back(b);
      continue;
    }
    for (int64_t i = 0; i < q_lens[b]; ++i) work.push_back({q_starts[b] + i, seq_lens[b] - q_lens[b] + i, b});
  }
  const int64_t gemm_items = static_cast<int64_t>(gemm_requests.size()) * Hq;
  int status = 0;
  if (gemm_items > 0) {
#pragma omp parallel
    {
      std::vector<float> keys(S * D), values(S * D), scores(kQueryBlock * S);
#pragma omp for schedule(dynamic, 1)
      for (int64_t item = 0; item < gemm_items; ++item) {
        const int64_t b = gemm_requests[item / Hq], h = item % Hq;
        const int rc = RequestHead(sgemm, q, K, V, slots + b * S, out, q_starts[b], q_lens[b], seq_lens[b], h,
                                   h / group, Hq, Hkv, D, scale, keys.data(), values.data(), scores.data());
        if (rc != 0) {
#pragma omp atomic write
          status = rc;
        }
      }
    }
  }
  if (status != 0) return status;

  // Per-token path: one item = one query token x a block of its KV heads with all their query heads
  // (GQA), so each K/V row is read once, as one contiguous span, for every head that shares it.
  // The block is as wide as still leaves a few items per thread (whole rows at large batch).
  const int64_t tokens = static_cast<int64_t>(work.size());
  if (tokens == 0) return 0;
  const int64_t want = 4 * omp_get_max_threads();
  const int64_t per_token = std::min(Hkv, std::max<int64_t>(1, (want + tokens - 1) / tokens));
  const int64_t block = (Hkv + per_token - 1) / per_token, blocks = (Hkv + block - 1) / block;
  const bool simd = sglms::DecodeHeadsAvailable(D);  // AVX-512 registers, else the portable loop
#pragma omp parallel
  {
    std::vector<float> scores(std::max<int64_t>(block * group, 2) * S);
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < tokens * blocks; ++item) {
      const Work& w = work[item / blocks];
      const int64_t k0 = (item % blocks) * block, k1 = std::min(Hkv, k0 + block);
      const int64_t n = w.pos + 1;
      const int32_t* row = slots + w.req * S;
      const float* qt = q + w.token * Hq * D;
      float* ot = out + w.token * Hq * D;
      if (simd) {
        for (int64_t g = k0; g < k1; ++g)
          sglms::DecodeHeads(qt, K, V, row, n, Hkv, g, g * group, group, D, scale, scores.data(), ot);
      } else {
        TokenHeads(qt, K, V, row, n, Hkv, k0, k1, group, D, scale, scores.data(), ot);
      }
    }
  }
  return 0;
}
