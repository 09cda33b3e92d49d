// Register tile and cache blocks of the matrix product (gemm/gemm.h) for
// AVX-512 (32 vector registers; Zen 4 runs one 512-bit FMA a cycle).
// Only kernels_avx512.cpp and kernels_avx512_bf16.cpp include this file
// (in their namespace, SEQCORE_ISA_NS).
#pragma once
#include <cstdint>

namespace seqcore {
namespace SEQCORE_ISA_NS {

// MR rows x NV vectors of C in registers (MR * NV accumulators, NV vectors
// of B and one broadcast of A), so NR = NV * Vec<T>::size columns. KC x NR
// micro-panels of B and MC x KC blocks of A stay in L2, KC x NC panels of B
// in L3. KC is an upper bound: K is cut into equal blocks of at most KC.
template <typename T> struct GemmConfig;

template <> struct GemmConfig<float> {
  static constexpr int MR = 8, NV = 3;
  static constexpr int64_t KC = 1024, MC = 48, NC = 1024;
};

template <> struct GemmConfig<double> {
  static constexpr int MR = 8, NV = 3;
  static constexpr int64_t KC = 512, MC = 48, NC = 1024;
};

}  // namespace SEQCORE_ISA_NS
}  // namespace seqcore
