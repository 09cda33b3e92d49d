// Small pieces the time loops use (generic code, see isa/kernels_impl.h):
// the input projection, bias gradients.
namespace seqcore {
namespace SEQCORE_ISA_NS {

// (inference_chunk_steps, the steps whose input projection inference computes
// at once, is in plan.h: the thread plan needs it too.)

// Gx (rows, G·H) = X (rows, D) · W_ihᵀ; the biases are added in the
// epilogues. bf16: with bfloat16 operands (gemm/bf16.h). packed_W: W_ihᵀ
// packed by pack_input_weights (or null: the product packs it).
template <typename T>
void project_inputs(const T* X, int64_t rows, int64_t D, const T* W_ih, int64_t GH, T* Gx,
                    int num_threads, bool bf16, const T* packed_W = nullptr) {
  gemm_in<T>(bf16, false, true, rows, GH, D, T(1), X, D, W_ih, D, T(0), Gx, GH, num_threads, packed_W);
}

// W_ihᵀ (D, G·H) packed once for the input projections of an inference's
// chunks of steps (each would pack it anew: a quarter of the projection's
// time with B = 64, chunks of 4 steps). Elements it takes, and the packing:
template <typename T>
int64_t input_weights_size(int64_t D, int64_t GH, bool bf16) {
  return gemm_in_packed_b_size<T>(bf16, GH, D);
}
template <typename T>
void pack_input_weights(const T* W_ih, int64_t D, int64_t GH, bool bf16, T* dst) {
  gemm_in_pack_b<T>(bf16, true, GH, D, W_ih, D, dst);
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
