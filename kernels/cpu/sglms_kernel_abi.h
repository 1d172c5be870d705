// Shared by every CPU kernel: the MindSpore AOT custom-op ABI and its error codes.
#pragma once
#include <cstdint>
#include <cstring>

#define SGLMS_ERR_BAD_ARGS 1
#define SGLMS_ERR_BAD_DTYPE 2
#define SGLMS_ERR_BAD_INDEX 3

namespace sglms {

inline int64_t DtypeBytes(const char* dtype) {
  if (std::strcmp(dtype, "float32") == 0 || std::strcmp(dtype, "int32") == 0) return 4;
  if (std::strcmp(dtype, "float16") == 0 || std::strcmp(dtype, "bfloat16") == 0) return 2;
  if (std::strcmp(dtype, "int64") == 0 || std::strcmp(dtype, "float64") == 0) return 8;
  return -1;
}

}  // namespace sglms

extern "C" {
// Writes the library's kernel names, comma separated, so Python can report what is active.
const char* SglmsKernelList();
}
