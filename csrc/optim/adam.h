// The Adam update, fused: one pass over the parameters instead of NumPy's
// dozen (generic code, see isa/kernels_impl.h). seqcore/reference/optim.py
// is the same computation in NumPy, and this code gives its results bit for
// bit: the same operations in the same order (torch's _single_tensor_adam),
// each rounded to T, the constants rounded to T first, as NumPy rounds a
// Python float meeting a T array; no FMA: GCC would fuse a multiply and an
// add into one (in C++ it does by default), so this function forbids it.
//   m = m + (1 − β1)·(g − m)
//   v = v·β2 + ((1 − β2)·g)·g
//   p = p − (step_size·m) / (√v / bias2 + eps)
// Elementwise, so the result does not depend on the threads.
namespace seqcore {
namespace SEQCORE_ISA_NS {

#if defined(__GNUC__) && !defined(__clang__)
#define SEQCORE_NO_FMA_CONTRACTION __attribute__((optimize("fp-contract=off")))
#else
#define SEQCORE_NO_FMA_CONTRACTION  // clang fuses only within one expression, and never across our operators
#endif

// The constants of adam_lanes, rounded to T.
template <typename T>
struct AdamConstants {
  Vec<T> one_minus_beta1, beta2, one_minus_beta2, step_size, bias2, eps;
  explicit AdamConstants(const AdamArgs& a)
      : one_minus_beta1(Vec<T>::broadcast(static_cast<T>(1 - a.beta1))),
        beta2(Vec<T>::broadcast(static_cast<T>(a.beta2))),
        one_minus_beta2(Vec<T>::broadcast(static_cast<T>(1 - a.beta2))),
        step_size(Vec<T>::broadcast(static_cast<T>(a.step_size))),
        bias2(Vec<T>::broadcast(static_cast<T>(a.bias2))),
        eps(Vec<T>::broadcast(static_cast<T>(a.eps))) {}
};

// Elements [i, i + k) of one vector, k <= V.
template <typename T>
SEQCORE_NO_FMA_CONTRACTION inline void adam_lanes(T* p, const T* g, T* m, T* v, int64_t i, int k,
                                                  const AdamConstants<T>& c) {
  const Vec<T> gi = load_n(g + i, k), m0 = load_n(m + i, k);
  const Vec<T> mi = m0 + c.one_minus_beta1 * (gi - m0);
  const Vec<T> vi = load_n(v + i, k) * c.beta2 + c.one_minus_beta2 * gi * gi;
  const Vec<T> pi = load_n(p + i, k) - c.step_size * mi / (sqrt(vi) / c.bias2 + c.eps);
  store_n(mi, m + i, k);
  store_n(vi, v + i, k);
  store_n(pi, p + i, k);
}

template <typename T>
SEQCORE_NO_FMA_CONTRACTION void adam_range(T* p, const T* g, T* m, T* v, int64_t n, const AdamArgs& a) {
  constexpr int V = Vec<T>::size;
  const AdamConstants<T> c(a);
  int64_t i = 0;
  for (; i + V <= n; i += V) adam_lanes(p, g, m, v, i, V, c);
  if (i < n) adam_lanes(p, g, m, v, i, static_cast<int>(n - i), c);
}

// Blocks of kAdamBlock elements shared out to the threads; below two blocks
// one thread does it all, and above where the plan says a team costs more
// than it saves (plan_stream_threads: seven arrays' bytes read or written).
// The team is all the threads offered, as for every region (see gemm_threads).
constexpr int64_t kAdamBlock = 16384;

template <typename T>
void adam_update(T* p, const T* g, T* m, T* v, int64_t n, const AdamArgs& a, int num_threads) {
  const int64_t blocks = (n + kAdamBlock - 1) / kAdamBlock;
  const int team = blocks < 2 ? 1 : plan_stream_threads(7.0 * sizeof(T) * static_cast<double>(n), num_threads);
  stream_blocks(blocks, team, [&](int64_t b) {
    const int64_t i = b * kAdamBlock, len = n - i < kAdamBlock ? n - i : kAdamBlock;
    adam_range(p + i, g + i, m + i, v + i, len, a);
  });
}

#undef SEQCORE_NO_FMA_CONTRACTION

}  // namespace SEQCORE_ISA_NS
}  // namespace seqcore
