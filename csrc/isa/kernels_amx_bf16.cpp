// The kernels built for AVX-512 (F, DQ, BW, VL) with AVX512-BF16 and
// AMX-BF16: the same generic code as kernels_avx512.cpp, whose bfloat16
// products (precision "bf16") use AMX tiles here (gemm/bf16.h,
// cells/panel_bf16.h). dispatch.cpp offers this table only once Linux has
// granted the process the tile data state (arch_prctl).
// CMakeLists.txt compiles this file, and only this file, with the flags of
// that instruction set. Everything it defines lives in namespace
// seqcore::amx_bf16; the standard headers come first, outside it.
#define SEQCORE_ISA_NS amx_bf16
#include "isa/prelude.h"
#include "simd/avx512.h"
#include "gemm/config_avx512.h"

#include "isa/kernels_impl.h"
