#include "onednn.h"

#include <dlfcn.h>

#include <atomic>

namespace {
std::atomic<sglms::SgemmFn> g_sgemm{nullptr};
}  // namespace

sglms::SgemmFn sglms::OneDnnSgemm() { return g_sgemm.load(); }

extern "C" {
// Opens oneDNN at `path`; returns 0, or -1 with the path unusable.
int SglmsUseOneDnn(const char* path) {
  void* lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) return -1;
  auto fn = reinterpret_cast<sglms::SgemmFn>(dlsym(lib, "dnnl_sgemm"));
  if (fn == nullptr) return -1;
  g_sgemm = fn;
  return 0;
}
}
