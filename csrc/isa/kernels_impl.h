// Generic kernel code, compiled once per instruction set: the including file
// defines SEQCORE_ISA_NS and has included simd/<isa>.h, which gives Vec<T>
// in namespace seqcore::SEQCORE_ISA_NS. Not a normal header: no include
// guard, included exactly once per ISA translation unit.
//
// Rule for this code: call only functions of the ISA namespace, intrinsics
// and <cmath>; no std containers or algorithms, whose inline copies would
// be shared between translation units built with different flags.

#include "kernels.h"
#include "activations/activations.h"
#include "gemm/gemm.h"

namespace seqcore {
namespace SEQCORE_ISA_NS {

#define SEQCORE_STR2(x) #x
#define SEQCORE_STR(x) SEQCORE_STR2(x)

template <typename T>
KernelTable<T> make_table() {
  KernelTable<T> t{};
  t.gemm = &gemm<T>;
  t.sigmoid = &sigmoid_array<T>;
  t.tanh = &tanh_array<T>;
  return t;
}

const IsaKernels& kernels() {
  static const IsaKernels table{SEQCORE_STR(SEQCORE_ISA_NS), make_table<float>(),
                                make_table<double>()};
  return table;
}

#undef SEQCORE_STR
#undef SEQCORE_STR2

}  // namespace SEQCORE_ISA_NS
}  // namespace seqcore
