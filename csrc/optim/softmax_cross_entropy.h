// Softmax cross-entropy of rows of logits and its gradient, fused (generic
// code, see isa/kernels_impl.h): one read of the logits and two passes over
// the gradient instead of NumPy's dozen, rows shared out to the threads.
// seqcore/reference/losses.py is the same computation in NumPy.
// For each row i of z (N, V), target t_i in [0, V) and weight w_i (0 for a
// row that does not count):
//   m = max_j z_ij,   e_j = exp(z_ij − m),   total = Σ_j e_j
//   nll_i = log(total) − (z_it − m)                    (in double)
//   dz_ij = e_j · (w_i / total) − w_i [j = t_i]
// Returns Σ_i [w_i ≠ 0] nll_i, summed in blocks of kLossRows rows (each in
// row order), the blocks' sums added in order: the same bits at any number
// of threads, as dz (rows are independent). The logits are finite (checked
// by the caller); e_j below the smallest normal number is flushed to 0.
namespace seqcore {
namespace SEQCORE_ISA_NS {

constexpr int64_t kLossRows = 64;

// e^y for y <= 0 (the activations' exponential, cells use it as e^-|x|).
template <typename T>
inline Vec<T> exp_nonpositive(Vec<T> y) {
  const Vec<T> lo = Vec<T>::broadcast(ActConst<T>::sigmoid_lo);
  const ExpParts<T> ep = exp_parts(max(lo, y));
  return select_lt(y, lo, Vec<T>::zero(), fmadd(ep.scale, ep.q, ep.scale));
}

// Row i: writes dz, returns nll.
template <typename T>
double softmax_cross_entropy_row(const T* z, int64_t V, int64_t t, double w, T* dz) {
  constexpr int V_ = Vec<T>::size;
  Vec<T> mv = Vec<T>::broadcast(z[0]);
  int64_t j = 0;
  for (; j + V_ <= V; j += V_) mv = max(mv, Vec<T>::load(z + j));
  T lanes[V_];
  mv.store(lanes);
  T m = lanes[0];
  for (int k = 1; k < V_; ++k) m = lanes[k] > m ? lanes[k] : m;
  for (; j < V; ++j) m = z[j] > m ? z[j] : m;
  const Vec<T> vm = Vec<T>::broadcast(m);
  Vec<T> sum = Vec<T>::zero();
  for (j = 0; j < V; j += V_) {
    const int n = static_cast<int>(V - j < V_ ? V - j : V_);
    const Vec<T> e = exp_nonpositive(load_n(z + j, n) - vm);
    store_n(e, dz + j, n);
    sum = sum + (n == V_ ? e : load_n(dz + j, n));  // load_n zero-fills the lanes past n
  }
  const T total = reduce_add(sum);  // >= 1: the maximum's e is 1
  const Vec<T> scale = Vec<T>::broadcast(static_cast<T>(w / static_cast<double>(total)));
  for (j = 0; j < V; j += V_) {
    const int n = static_cast<int>(V - j < V_ ? V - j : V_);
    store_n(load_n(dz + j, n) * scale, dz + j, n);
  }
  dz[t] -= static_cast<T>(w);
  return std::log(static_cast<double>(total)) - static_cast<double>(z[t] - m);
}

template <typename T>
double softmax_cross_entropy(const T* z, int64_t N, int64_t V, const int64_t* targets, const double* weights,
                             T* dz, int num_threads) {
  const int64_t blocks = (N + kLossRows - 1) / kLossRows;
  GemmBuffer<double> sums(blocks);
  // A team where there are two blocks or more and the plan says it pays: the
  // logits read, the gradient written, then read and written again.
  const int team = blocks < 2 ? 1 : plan_stream_threads(4.0 * sizeof(T) * static_cast<double>(N * V), num_threads);
  stream_blocks(blocks, team, [&](int64_t b) {
    const int64_t i1 = (b + 1) * kLossRows < N ? (b + 1) * kLossRows : N;
    double s = 0;
    for (int64_t i = b * kLossRows; i < i1; ++i) {
      const double nll = softmax_cross_entropy_row(z + i * V, V, targets[i], weights[i], dz + i * V);
      if (weights[i] != 0) s += nll;
    }
    sums.data[b] = s;
  });
  double loss = 0;
  for (int64_t b = 0; b < blocks; ++b) loss += sums.data[b];
  return loss;
}

}  // namespace SEQCORE_ISA_NS
}  // namespace seqcore
