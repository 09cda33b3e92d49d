// Register tile and cache blocks of the matrix product (gemm/gemm.h) for
// portable C++ (one-lane vectors; x86-64 has 16 SSE registers).
// Only kernels_scalar.cpp includes this file.
#pragma once
#include <cstdint>

namespace seqcore {
namespace scalar {

// MR rows x NV vectors of C in registers (MR * NV accumulators, NV vectors
// of B and one broadcast of A), so NR = NV * Vec<T>::size columns. KC x NR
// micro-panels of B and MC x KC blocks of A stay in L2, KC x NC panels of B
// in L3. KC is an upper bound: K is cut into equal blocks of at most KC.
template <typename T> struct GemmConfig;

template <> struct GemmConfig<float> {
  static constexpr int MR = 4, NV = 8;
  static constexpr int64_t KC = 256, MC = 64, NC = 2048;
};

template <> struct GemmConfig<double> {
  static constexpr int MR = 4, NV = 8;
  static constexpr int64_t KC = 256, MC = 64, NC = 1024;
};

}  // namespace scalar
}  // namespace seqcore
