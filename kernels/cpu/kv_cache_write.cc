// KV-cache write: cache[slots[i], ...] = values[i, ...] for every new token i.
//
// Called from MindSpore as an AOT custom op (ops.Custom(func_type="aot")). The cache is
// SGLang's own KV pool, shared with MindSpore zero-copy through DLPack, so the kernel writes
// straight into the buffer torch owns. MindSpore's own indexed setitem copies on CPU instead
// of writing through, which is why this kernel exists.
//
// MindSpore hands an AOT op a private copy of each input tensor, so the cache cannot be passed
// as a tensor: it is passed by reference, as {address, rows} of the live buffer, and the
// caller (mindspore_models/kernels.py) keeps that buffer alive and checks dtype and row size.
// out receives the number of rows written (the op needs an output; callers may ignore it).
#include <cstdint>
#include <cstring>

#include "sglms_kernel_abi.h"

namespace {

template <typename Index>
int Write(char* cache, const Index* slots, const char* values, int64_t n_slots, int64_t n_tokens,
          int64_t row_bytes) {
  for (int64_t i = 0; i < n_tokens; ++i) {
    const int64_t slot = static_cast<int64_t>(slots[i]);
    if (slot < 0 || slot >= n_slots) return SGLMS_ERR_BAD_INDEX;
    std::memcpy(cache + slot * row_bytes, values + i * row_bytes, static_cast<size_t>(row_bytes));
  }
  return 0;
}

}  // namespace

extern "C" int KvCacheWrite(int nparam, void** params, int* ndims, int64_t** shapes, const char** dtypes,
                            void* /*stream*/, void* /*extra*/) {
  // params: [cache_ref (2,) int64 = {address, rows}, slots (T,), values (T, ...), out (1,) int32]
  if (nparam != 4 || ndims[0] != 1 || shapes[0][0] != 2 || ndims[1] != 1 || ndims[2] < 1) return SGLMS_ERR_BAD_ARGS;
  if (std::strcmp(dtypes[0], "int64") != 0) return SGLMS_ERR_BAD_DTYPE;
  const int64_t* ref = static_cast<const int64_t*>(params[0]);
  auto* cache = reinterpret_cast<char*>(static_cast<uintptr_t>(ref[0]));
  const int64_t n_slots = ref[1];
  const int64_t n_tokens = shapes[1][0];
  if (shapes[2][0] != n_tokens) return SGLMS_ERR_BAD_ARGS;
  int64_t row_elems = 1;
  for (int d = 1; d < ndims[2]; ++d) row_elems *= shapes[2][d];
  const int64_t row_bytes = row_elems * sglms::DtypeBytes(dtypes[2]);
  if (row_bytes <= 0) return SGLMS_ERR_BAD_DTYPE;
  const auto* values = static_cast<const char*>(params[2]);
  int rc;
  if (std::strcmp(dtypes[1], "int32") == 0) {
    rc = Write(cache, static_cast<const int32_t*>(params[1]), values, n_slots, n_tokens, row_bytes);
  } else if (std::strcmp(dtypes[1], "int64") == 0) {
    rc = Write(cache, static_cast<const int64_t*>(params[1]), values, n_slots, n_tokens, row_bytes);
  } else {
    return SGLMS_ERR_BAD_DTYPE;
  }
  *static_cast<int32_t*>(params[3]) = rc == 0 ? static_cast<int32_t>(n_tokens) : -1;
  return rc;
}
