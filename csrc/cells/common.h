// Small pieces the time loops use (generic code, see isa/kernels_impl.h):
// the inference chunk, the input projection, bias gradients.
namespace seqcore {
namespace SEQCORE_ISA_NS {

// Steps whose input projection inference computes at once: enough rows for
// an efficient product, and a bound independent of T, so inference needs
// O(B·H) memory whatever the sequence length.
inline int64_t inference_chunk_steps(int64_t T, int64_t B) {
  int64_t steps = 256 / (B > 0 ? B : 1);
  steps = steps < 4 ? 4 : steps > 64 ? 64 : steps;
  return steps < T ? steps : T;
}

// Gx (rows, G·H) = X (rows, D) · W_ihᵀ; the biases are added in the epilogues.
template <typename T>
void project_inputs(const T* X, int64_t rows, int64_t D, const T* W_ih, int64_t GH, T* Gx,
                    int num_threads) {
  gemm<T>(false, true, rows, GH, D, T(1), X, D, W_ih, D, T(0), Gx, GH, num_threads);
}

// out[j] = Σ_i A[i·lda + j], rows summed in order (so the result does not
// depend on the threads), columns split between threads.
template <typename T>
void column_sums(const T* A, int64_t rows, int64_t cols, int64_t lda, T* out, int num_threads) {
  constexpr int V = Vec<T>::size;
  const int64_t blocks = (cols + V - 1) / V;
  const int team = static_cast<int>(blocks < num_threads ? (blocks > 0 ? blocks : 1) : num_threads);
#pragma omp parallel for num_threads(team) schedule(static)
  for (int64_t jb = 0; jb < blocks; ++jb) {
    const int64_t j = jb * V;
    const int n = static_cast<int>(cols - j < V ? cols - j : V);
    Vec<T> s = Vec<T>::zero();
    for (int64_t i = 0; i < rows; ++i) s = s + load_n(A + i * lda + j, n);
    store_n(s, out + j, n);
  }
}

}  // namespace SEQCORE_ISA_NS
}  // namespace seqcore
