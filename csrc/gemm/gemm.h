// Matrix product C = alpha * op(A) op(B) + beta * C (generic code, see
// isa/kernels_impl.h). FIRST VERSION: a plain triple loop, rows split
// between threads; each C element is summed over k in order, so the result
// does not depend on the number of threads.
namespace seqcore {
namespace SEQCORE_ISA_NS {

template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha,
          const T* A, int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc,
          int num_threads) {
#pragma omp parallel for num_threads(num_threads) schedule(static)
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      T acc = T(0);
      for (int64_t k = 0; k < K; ++k) {
        const T a = trans_a ? A[k * lda + i] : A[i * lda + k];
        const T b = trans_b ? B[j * ldb + k] : B[k * ldb + j];
        acc += a * b;
      }
      T* c = C + i * ldc + j;
      *c = beta == T(0) ? alpha * acc : alpha * acc + beta * *c;
    }
  }
}

}  // namespace SEQCORE_ISA_NS
}  // namespace seqcore
