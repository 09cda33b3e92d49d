// Small pieces the time loops use (generic code, see isa/kernels_impl.h):
// the input projection, bias gradients.
namespace seqcore {
namespace SEQCORE_ISA_NS {

// (inference_chunk_steps, the steps whose input projection inference computes
// at once, is in plan.h: the thread plan needs it too.)

// Gx (rows, G·H) = X (rows, D) · W_ihᵀ; the biases are added in the
// epilogues. bf16: with bfloat16 operands (gemm/bf16.h).
template <typename T>
void project_inputs(const T* X, int64_t rows, int64_t D, const T* W_ih, int64_t GH, T* Gx,
                    int num_threads, bool bf16) {
  gemm_in<T>(bf16, false, true, rows, GH, D, T(1), X, D, W_ih, D, T(0), Gx, GH, num_threads);
}

// acc[0, n) += v: the bias gradients are summed by the backward epilogues
// as they make the gate gradients, in a fixed order (iterations from the
// last, rows in order) whatever the threads; each thread owns its units'
// columns.
template <typename T>
inline void add_to(T* acc, Vec<T> v, int n) {
  store_n(load_n(acc, n) + v, acc, n);
}

}  // namespace SEQCORE_ISA_NS
}  // namespace seqcore
