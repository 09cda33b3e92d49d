// The kernels built for AVX-512 (F, DQ, BW, VL) with AVX512-BF16: the same
// generic code as kernels_avx512.cpp, whose bfloat16 products (precision
// "bf16") use vdpbf16ps here (gemm/bf16.h, cells/panel_bf16.h) instead of
// rounding to bfloat16 and multiplying in float32.
// CMakeLists.txt compiles this file, and only this file, with the flags of
// that instruction set. Everything it defines lives in namespace
// seqcore::avx512_bf16; the standard headers come first, outside it.
#define SEQCORE_ISA_NS avx512_bf16
#include "isa/prelude.h"
#include "simd/avx512.h"
#include "gemm/config_avx512.h"

#include "isa/kernels_impl.h"
