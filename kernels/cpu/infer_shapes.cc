// Output shapes of every kernel, for MindSpore's shape inference (`{Kernel}InferShape`, found by
// name next to the kernel). Python `out_shape` callables only work in PyNative; these also work
// in compiled graphs with dynamic shapes, where an input's size is only known at run time.
#include <cstdint>
#include <vector>

namespace {
std::vector<int64_t> SameAs(int index, int* ndims, int64_t** shapes) {
  return std::vector<int64_t>(shapes[index], shapes[index] + ndims[index]);
}
// A dimension not known until run time is negative (-1) while a graph compiles.
int64_t Times(int64_t a, int64_t b) { return a < 0 || b < 0 ? -1 : a * b; }
}  // namespace

// `extra` is MindSpore's AotExtra (attributes): unused, no kernel has attributes.
extern "C" {
std::vector<int64_t> KvCacheWriteInferShape(int*, int64_t**, void*) { return {1}; }
std::vector<int64_t> PagedAttentionInferShape(int*, int64_t** s, void*) { return {s[0][0], Times(s[0][1], s[0][2])}; }
std::vector<int64_t> RmsNormInferShape(int* n, int64_t** s, void*) { return SameAs(0, n, s); }
std::vector<int64_t> AddRmsNormInferShape(int* n, int64_t** s, void*) { return SameAs(0, n, s); }
std::vector<int64_t> RopeNeoxInferShape(int* n, int64_t** s, void*) { return SameAs(0, n, s); }
std::vector<int64_t> RmsNormRopeInferShape(int* n, int64_t** s, void*) { return SameAs(0, n, s); }
std::vector<int64_t> QkNormRopeCacheInferShape(int*, int64_t** s, void*) { return {s[0][0], s[1][0], 2 * s[6][1]}; }
std::vector<int64_t> MatMulNTInferShape(int*, int64_t** s, void*) { return {s[0][0], s[1][0]}; }
std::vector<int64_t> SiluMulInferShape(int*, int64_t** s, void*) { return {s[0][0], s[0][1] < 0 ? -1 : s[0][1] / 2}; }
std::vector<int64_t> MoeSwiGLUInferShape(int* n, int64_t** s, void*) { return SameAs(0, n, s); }
}
