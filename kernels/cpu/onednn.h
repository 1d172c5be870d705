// oneDNN's sgemm, from the MindSpore wheel (lib/libdnnl.so.3), opened by path at run time
// (SglmsUseOneDnn, called once from Python). Built with oneDNN's threadpool runtime and no pool
// set, each call runs on the calling thread, so the kernels split work over their own OpenMP team.
#pragma once
#include <cstdint>

namespace sglms {

// Row-major C = alpha * op(A) @ op(B) + beta * C (dnnl_sgemm's contract); returns 0 on success.
using SgemmFn = int (*)(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                        int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// nullptr until SglmsUseOneDnn succeeded: callers then take their own loops.
SgemmFn OneDnnSgemm();

}  // namespace sglms
