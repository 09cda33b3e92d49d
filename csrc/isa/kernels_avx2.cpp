// The kernels built for AVX2 + FMA.
// CMakeLists.txt compiles this file, and only this file, with the flags of
// that instruction set. Everything it defines lives in namespace
// seqcore::avx2; the standard headers come first, outside it.
#define SEQCORE_ISA_NS avx2
#include "isa/prelude.h"
#include "simd/avx2.h"
#include "gemm/config_avx2.h"

#include "isa/kernels_impl.h"
