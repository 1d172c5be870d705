// Small-M GEMM on (out, in) weights without packing: y[m, n] = x[m, :] . W[n, :], computed in
// register tiles of 4 x rows by kTileRowsN W rows. Each W tile is read from memory once and reused
// from L1 for every tile of x rows, so a decode batch costs one pass over the weights plus
// close-to-peak FMAs. oneDNN's sgemm packs W on every call, which dominates at these M.
#pragma once
#include <cstdint>

namespace sglms {

constexpr int kTileRowsN = 6;  // W rows per tile: split a GEMM's columns between threads in multiples of it

// True when this CPU runs the AVX-512 tiles (checked once, at run time).
bool TileGemmAvailable();

// y[:, n0:n1] for x (M, K), W (N, K), y (M, N), all row-major. Call only if TileGemmAvailable().
void TileGemmNT(const float* x, const float* w, float* y, int64_t M, int64_t K, int64_t N, int64_t n0, int64_t n1);

}  // namespace sglms
