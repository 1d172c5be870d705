// exp-based row math (softmax, SwiGLU) in AVX-512 where the CPU has it: exp from a degree-7
// polynomial after range reduction (within a few ulp of std::exp over float's range; arguments
// are clamped to [-87.3, 88.7], so exp never over- or underflows to inf or 0), else the scalar
// loops over std::exp.
#pragma once
#include <cstdint>

namespace sglms {

// In place: r[0..n) <- softmax(r[0..n)).
void Softmax(float* r, int64_t n);

// o[i] = silu(g[i]) * u[i] for i in [0, n); o may be g or u.
void SiluMulRow(const float* g, const float* u, float* o, int64_t n);

}  // namespace sglms
