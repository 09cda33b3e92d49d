// The kernels built for AVX-512 (F, DQ, BW, VL).
// CMakeLists.txt compiles this file, and only this file, with the flags of
// that instruction set. Everything it defines lives in namespace
// seqcore::avx512; the standard headers come first, outside it.
#define SEQCORE_ISA_NS avx512
#include "isa/prelude.h"
#include "simd/avx512.h"
#include "gemm/config_avx512.h"

#include "isa/kernels_impl.h"
