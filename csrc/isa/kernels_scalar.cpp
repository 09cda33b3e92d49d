// The kernels built for portable C++ (no vector instructions beyond the x86-64 baseline).
// CMakeLists.txt compiles this file, and only this file, with the flags of
// that instruction set. Everything it defines lives in namespace
// seqcore::scalar; the standard headers come first, outside it.
#include "isa/prelude.h"
#include "simd/scalar.h"
#include "gemm/config_scalar.h"

#define SEQCORE_ISA_NS scalar
#include "isa/kernels_impl.h"
