// The table of kernels that each instruction set provides. dispatch.cpp picks
// one table at start-up; bindings.cpp calls through it. No ISA code here.
#pragma once
#include <cstdint>

namespace seqcore {

// Kernels for one element type T (float or double). Matrices are row-major.
template <typename T>
struct KernelTable {
  // C (M,N) = alpha * op(A) op(B) + beta * C, op(A): (M,K), op(B): (K,N).
  // A is (M,K) with row stride lda, or (K,M) when trans_a; B likewise.
  // beta == 0 means C is not read. The result does not depend on num_threads.
  void (*gemm)(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha,
               const T* A, int64_t lda, const T* B, int64_t ldb, T beta, T* C,
               int64_t ldc, int num_threads);
  // y[i] = sigmoid(x[i]) and y[i] = tanh(x[i]), i < n, with the vector code
  // the cells use (exposed so tests can measure its error).
  void (*sigmoid)(const T* x, T* y, int64_t n);
  void (*tanh)(const T* x, T* y, int64_t n);
};

struct IsaKernels {
  const char* name;
  KernelTable<float> f32;
  KernelTable<double> f64;
};

// One per ISA translation unit (csrc/isa/kernels_<isa>.cpp).
namespace scalar { const IsaKernels& kernels(); }
namespace avx2 { const IsaKernels& kernels(); }
namespace avx512 { const IsaKernels& kernels(); }

}  // namespace seqcore
