// A maintained sgemm for the large-M GEMMs, opened by path at run time (nothing is linked in):
// - MKL's `sgemm_`, exported by torch's libtorch_cpu.so (x86_64 builds bundle MKL): ~20-30%
//   faster than oneDNN's at prefill sizes here (benchmarks/probe_gemm.py); SglmsUseMkl;
// - oneDNN's `dnnl_sgemm` from the MindSpore wheel (lib/libdnnl.so.3); SglmsUseOneDnn.
// Sgemm() gives MKL when it was opened and is preferred, else oneDNN. Both run each call on the
// calling thread (oneDNN: threadpool build with no pool set; MKL: its thread count is set to 1 for
// the call), so the kernels split the work over their own OpenMP team.
#pragma once
#include <cstdint>

namespace sglms {

// Row-major C = alpha * op(A) @ op(B) + beta * C (dnnl_sgemm's contract); returns 0 on success.
using SgemmFn = int (*)(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                        int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// nullptr until SglmsUseMkl or SglmsUseOneDnn succeeded: callers then take their own loops.
SgemmFn Sgemm();

}  // namespace sglms
