// SIMD helpers shared by the kernels.
#pragma once

// x86-64: a function marked SGLMS_SIMD_CLONES gets an AVX2/FMA clone picked at load time next to
// the portable build (the library itself is built for the x86-64 baseline, so that it loads on
// any x86-64 CPU); other architectures get the portable build only.
#if defined(__x86_64__)
#define SGLMS_SIMD_CLONES __attribute__((target_clones("arch=haswell", "default")))
#else
#define SGLMS_SIMD_CLONES
#endif

namespace sglms {

// True when this CPU runs AVX-512F code (asked once; always false off x86-64).
inline bool CpuHasAvx512() {
#if defined(__x86_64__)
  static const bool ok = __builtin_cpu_supports("avx512f");
  return ok;
#else
  return false;
#endif
}

}  // namespace sglms
