// What the three cells' time loops share (generic code, see
// isa/kernels_impl.h): scratch sizing, the input projection, and the products
// after the backward loop.
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

// out[j] = Σ_i A[i·cols + j], rows summed in order (so the result does not
// depend on the threads), columns split between threads.
template <typename T>
void column_sums(const T* A, int64_t rows, int64_t cols, T* out, int num_threads) {
  constexpr int V = Vec<T>::size;
  const int64_t blocks = (cols + V - 1) / V;
#pragma omp parallel for num_threads(num_threads) schedule(static)
  for (int64_t jb = 0; jb < blocks; ++jb) {
    const int64_t j = jb * V;
    const int n = static_cast<int>(cols - j < V ? cols - j : V);
    Vec<T> s = Vec<T>::zero();
    for (int64_t i = 0; i < rows; ++i) s = s + load_n(A + i * cols + j, n);
    store_n(s, out + j, n);
  }
}

// After the backward loop, with dG (T·B, G·H) the pre-activation gradients
// on the input side and dGh those on the recurrent side (the same array but
// for GRU):
//   dx = dG · W_ih      dW_ih = dGᵀ · X      db_ih = Σ_rows dG
//   dW_hh = Σ_t dGh_tᵀ · h_{t-1} = dGh[1:]ᵀ · y[:-1] + dGh[0]ᵀ · h0
//   db_hh = Σ_rows dGh (GRU only)
template <typename T>
void input_and_weight_gradients(const CellBackwardArgs<T>& a, int64_t GH, const T* dG,
                                const T* dGh) {
  const int64_t TB = a.T_ * a.B, B = a.B, D = a.D, H = a.H;
  const int nt = a.num_threads;
  gemm<T>(false, false, TB, D, GH, T(1), dG, GH, a.W_ih, D, T(0), a.dx, D, nt);
  gemm<T>(true, false, GH, D, TB, T(1), dG, GH, a.x, D, T(0), a.dW_ih, D, nt);
  gemm<T>(true, false, GH, H, B, T(1), dGh, GH, a.h0, H, T(0), a.dW_hh, H, nt);
  gemm<T>(true, false, GH, H, TB - B, T(1), dGh + B * GH, GH, a.y, H, T(1), a.dW_hh, H, nt);
  column_sums(dG, TB, GH, a.db_ih, nt);
  if (a.db_hh != nullptr) column_sums(dGh, TB, GH, a.db_hh, nt);
}

}  // namespace SEQCORE_ISA_NS
}  // namespace seqcore
