// Decode attention in AVX-512 registers: one query token against its request's keys, for the query
// heads of one KV head. Each K/V row segment is loaded once for up to two query heads, q and the
// output rows stay in registers over all keys, and the pool rows (scattered slots) are prefetched a
// few keys ahead. paged_attention.cc calls it for every per-token item where it applies and keeps a
// portable loop for the rest.
#pragma once
#include <cstdint>

namespace sglms {

// True when this CPU has AVX-512, head dim D is one of 16, 32, 64, 128, and the path is not
// switched off (SglmsSetDecodeSimd, for tests and probes).
bool DecodeHeadsAvailable(int64_t D);

// Query heads h0 .. h0 + heads - 1 of token row qt (Hq, D), all reading KV head kvh, over keys
// 0 .. n - 1 in pool slots row[0 .. n - 1] of K, V (rows, Hkv, D): writes those heads of the
// token's output row ot (Hq * D). scores: scratch of at least 2 * n floats.
void DecodeHeads(const float* qt, const float* K, const float* V, const int32_t* row, int64_t n, int64_t Hkv,
                 int64_t kvh, int64_t h0, int64_t heads, int64_t D, float scale, float* scores, float* ot);

}  // namespace sglms
