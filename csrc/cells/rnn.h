// Vanilla RNN (tanh, or relu: Relu below) forward and BPTT (generic code, see
// isa/kernels_impl.h): the epilogues of the shared time loops in
// cells/loops.h. seqcore/reference/rnn.py is the same computation step by step.
namespace seqcore {
namespace SEQCORE_ISA_NS {

constexpr int kRnnForwardNV = 4;   // forward unit: 4·V hidden units
constexpr int kRnnBackwardNV = 2;  // backward unit: 2·V hidden units

template <typename T>
PanelMap rnn_forward_map(int64_t H) { return PanelMap{H, kRnnForwardNV, Vec<T>::size, false}; }

template <typename T>
int64_t rnn_forward_scratch(int64_t T_, int64_t B, int64_t D, int64_t H, bool train, bool gather) {
  return ForwardScratch<T>::size(rnn_forward_map<T>(H), T_, B, D, H, train, gather, false, 0);
}

template <typename T>
int64_t rnn_backward_scratch(int64_t T_, int64_t B, int64_t D, int64_t H, bool gather) {
  return BackwardScratch<T, kRnnBackwardNV>::size(T_, B, D, H, H, gather, 0);
}

// h = φ(x W_ihᵀ + h_prev W_hhᵀ + b), φ = tanh or (Relu) max(·, 0), for 4·V
// hidden units of a row (also written to y_row).
template <typename T, bool Relu = false>
struct RnnForwardEpilogue {
  int64_t H = 0;
  const T* gx = nullptr;      // (B, H)
  const T* b = nullptr;       // (H,)
  const T* h_prev = nullptr;  // (B, H)
  T* h_out = nullptr;         // (B, H)

  // Past the row's end: the state is carried.
  void carry(int64_t row, int64_t unit) const {
    constexpr int V = Vec<T>::size;
    for (int q = 0; q < kRnnForwardNV; ++q) {
      const int64_t j = (unit * kRnnForwardNV + q) * V, hj = row * H + j;
      if (j >= H) break;
      const int n = static_cast<int>(H - j < V ? H - j : V);
      store_n(load_n(h_prev + hj, n), h_out + hj, n);
    }
  }

  void apply(int64_t row, int64_t unit, const Vec<T>* acc, T* y_row) const {
    constexpr int V = Vec<T>::size;
    for (int q = 0; q < kRnnForwardNV; ++q) {
      const int64_t j = (unit * kRnnForwardNV + q) * V, hj = row * H + j;
      if (j >= H) break;
      const int n = static_cast<int>(H - j < V ? H - j : V);
      const Vec<T> a = acc[q] + load_n(gx + hj, n) + load_n(b + j, n);
      const Vec<T> h = Relu ? max(a, Vec<T>::zero()) : vtanh(a);
      store_n(h, h_out + hj, n);
      store_n(h, y_row + j, n);
    }
  }
};

// dG_s = dh ⊙ (1 − h_s²), or (Relu) dh where h_s > 0, else 0 (PyTorch's
// gradient of relu at 0 is 0)
template <typename T, bool Relu = false>
struct RnnBackwardEpilogue {
  int64_t H = 0;
  const T* h = nullptr;  // (B, H) h after iteration s
  T* dG = nullptr;       // (B, H) out, row stride ldg
  int64_t ldg = 0;
  T* db = nullptr;       // (H,) Σ dG, added to

  void skip(int64_t row, int64_t j, int n) const { store_n(Vec<T>::zero(), dG + row * ldg + j, n); }

  void apply(int64_t row, int64_t j, int n, Vec<T> dh, bool, int64_t) const {
    const Vec<T> ht = load_n(h + row * H + j, n);
    const Vec<T> zero = Vec<T>::zero();
    const Vec<T> d = Relu ? select_lt(zero, ht, dh, zero) : dh * fnmadd(ht, ht, Vec<T>::broadcast(T(1)));
    store_n(d, dG + row * ldg + j, n);
    add_to(db + j, d, n);
  }
};

// The epilogue of one iteration, gx and h_prev -> h_out: what the fp32/bf16
// loop (below) and the int8 loop (forward_int8.h) both run.
template <typename T, bool Relu>
RnnForwardEpilogue<T, Relu> rnn_forward_epilogue(const CellForwardArgs<T>& a, T* gx, const T* h_prev, T* h_out) {
  RnnForwardEpilogue<T, Relu> e;
  e.H = a.H;
  e.gx = gx;
  e.b = a.b_ih;
  e.h_prev = h_prev;
  e.h_out = h_out;
  return e;
}

template <typename T, bool Relu>
void rnn_forward_with(const CellForwardArgs<T>& a) {
  const int64_t B = a.B, H = a.H;
  const PanelMap map = rnn_forward_map<T>(H);
  const Rows rows{a.lengths, a.order, a.T_, B, a.reverse};
  const ForwardScratch<T> scratch(a.scratch, map, a.T_, B, a.D, H, a.train, !rows.identity(), nullptr);
  forward_loop<T, kRnnForwardNV>(a, H, map, scratch, [&](int64_t, T* gx, const T* h_prev, T* h_out) {
    return rnn_forward_epilogue<T, Relu>(a, gx, h_prev, h_out);
  });
}

template <typename T>
void rnn_forward(const CellForwardArgs<T>& a) {
  if (a.relu) {
    rnn_forward_with<T, true>(a);
  } else {
    rnn_forward_with<T, false>(a);
  }
}

template <typename T, bool Relu>
void rnn_backward_with(const CellBackwardArgs<T>& a) {
  const int64_t B = a.B, H = a.H;
  const Rows rows{a.lengths, a.order, a.T_, B, a.reverse};
  const BackwardScratch<T, kRnnBackwardNV> scratch(a.scratch, a.T_, B, a.D, H, H, !rows.identity());
  std::memset(a.db_ih, 0, sizeof(T) * H);
  backward_loop<T, kRnnBackwardNV>(a, H, scratch.panels, scratch.dG, nullptr, [&](int64_t s) {
    RnnBackwardEpilogue<T, Relu> e;
    e.H = H;
    e.h = a.ws_h + rows.offset(s + 1) * H;
    e.ldg = scratch.ldg;
    e.dG = scratch.dG + rows.offset(s) * e.ldg;
    e.db = a.db_ih;
    return e;
  });
  input_and_weight_gradients(a, H, scratch, scratch.dG);
}

template <typename T>
void rnn_backward(const CellBackwardArgs<T>& a) {
  if (a.relu) {
    rnn_backward_with<T, true>(a);
  } else {
    rnn_backward_with<T, false>(a);
  }
}

}  // namespace SEQCORE_ISA_NS
}  // namespace seqcore
