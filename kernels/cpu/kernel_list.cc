#include "sglms_kernel_abi.h"

extern "C" const char* SglmsKernelList() { return "KvCacheWrite,PagedAttention,RmsNorm,AddRmsNorm,RopeNeox,RmsNormRope,QkNormRopeCache,MatMulNT,SiluMul,MoeSwiGLU"; }
