// Register tile and cache blocks of the matrix product (gemm/gemm.h) for
// AVX2 + FMA (16 vector registers).
// Only kernels_avx2.cpp and kernels_avx2_vnni.cpp include this file, each
// after defining SEQCORE_ISA_NS (its namespace: avx2 or avx2_vnni).
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
  static constexpr int MR = 6, NV = 2;
  static constexpr int64_t KC = 512, MC = 48, NC = 2048;
};

template <> struct GemmConfig<double> {
  static constexpr int MR = 6, NV = 2;
  static constexpr int64_t KC = 512, MC = 48, NC = 1024;
};

}  // namespace SEQCORE_ISA_NS
}  // namespace seqcore
