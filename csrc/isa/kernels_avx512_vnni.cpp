// The kernels built for AVX-512 (F, DQ, BW, VL) with AVX512-VNNI (Cascade
// Lake, Ice Lake and later): the same generic code as kernels_avx512.cpp,
// whose int8 products (precision "int8") use vpdpbusd here
// (cells/panel_int8.h) instead of widening to 16 bits.
// CMakeLists.txt compiles this file, and only this file, with the flags of
// that instruction set. Everything it defines lives in namespace
// seqcore::avx512_vnni; the standard headers come first, outside it.
#define SEQCORE_ISA_NS avx512_vnni
#include "isa/prelude.h"
#include "simd/avx512.h"
#include "gemm/config_avx512.h"

#include "isa/kernels_impl.h"
