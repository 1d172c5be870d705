#include "sgemm.h"

#include <dlfcn.h>

#include <atomic>

namespace {

using FortranSgemm = void (*)(const char* transa, const char* transb, const int* m, const int* n, const int* k,
                              const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
                              const float* beta, float* c, const int* ldc);
using SetLocalThreads = int (*)(int);  // MKL_Set_Num_Threads_Local (C API; the lower-case symbol is Fortran)

std::atomic<sglms::SgemmFn> g_onednn{nullptr};
std::atomic<FortranSgemm> g_mkl{nullptr};
std::atomic<SetLocalThreads> g_mkl_threads{nullptr};
std::atomic<bool> g_prefer_mkl{true};

// Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: same flags, operands swapped.
int MklRowMajor(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  constexpr int64_t kIntMax = 2147483647;
  if (M > kIntMax || N > kIntMax || K > kIntMax || lda > kIntMax || ldb > kIntMax || ldc > kIntMax) return -1;
  const int m = static_cast<int>(N), n = static_cast<int>(M), k = static_cast<int>(K);
  const int la = static_cast<int>(ldb), lb = static_cast<int>(lda), lc = static_cast<int>(ldc);
  const int previous = g_mkl_threads.load()(1);  // this call on this thread only: the kernel's team splits the work
  g_mkl.load()(&transb, &transa, &m, &n, &k, &alpha, B, &la, A, &lb, &beta, C, &lc);
  g_mkl_threads.load()(previous);
  return 0;
}

}  // namespace

sglms::SgemmFn sglms::Sgemm() {
  if (g_prefer_mkl.load() && g_mkl.load() != nullptr) return &MklRowMajor;
  return g_onednn.load();
}

extern "C" {
// Opens oneDNN at `path`; returns 0, or -1 with the path unusable.
int SglmsUseOneDnn(const char* path) {
  void* lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) return -1;
  auto fn = reinterpret_cast<sglms::SgemmFn>(dlsym(lib, "dnnl_sgemm"));
  if (fn == nullptr) return -1;
  g_onednn = fn;
  return 0;
}

// Opens MKL's sgemm_ (and its per-thread thread count) from the library at `path` (torch's
// libtorch_cpu.so); returns 0, or -1 when the library or either symbol is missing.
int SglmsUseMkl(const char* path) {
  void* lib = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);  // only a copy the process already loaded
  if (lib == nullptr) return -1;
  auto fn = reinterpret_cast<FortranSgemm>(dlsym(lib, "sgemm_"));
  auto threads = reinterpret_cast<SetLocalThreads>(dlsym(lib, "MKL_Set_Num_Threads_Local"));
  if (fn == nullptr || threads == nullptr) return -1;
  g_mkl_threads = threads;
  g_mkl = fn;
  return 0;
}

// For probes and tests: 1 (default) takes MKL when it is open, 0 takes oneDNN.
void SglmsPreferMkl(int prefer) { g_prefer_mkl = prefer != 0; }

// Which sgemm the large-M paths use now: "MKL", "oneDNN" or "" (none: the kernels' own loops).
const char* SglmsSgemmName() {
  const sglms::SgemmFn fn = sglms::Sgemm();
  return fn == nullptr ? "" : (fn == &MklRowMajor ? "MKL" : "oneDNN");
}
}
