// The kernels built for AVX2 + FMA with AVX-VNNI (Alder Lake and later):
// the same generic code as kernels_avx2.cpp, whose int8 products
// (precision "int8") use vpdpbusd on 256-bit vectors here
// (cells/panel_int8.h) instead of widening to 16 bits.
// CMakeLists.txt compiles this file, and only this file, with the flags of
// that instruction set. Everything it defines lives in namespace
// seqcore::avx2_vnni; the standard headers come first, outside it.
#define SEQCORE_ISA_NS avx2_vnni
#include "isa/prelude.h"
#include "simd/avx2.h"
#include "gemm/config_avx2.h"

#include "isa/kernels_impl.h"
