// Vanilla RNN (tanh) forward and BPTT (generic code, see
// isa/kernels_impl.h): the epilogues of the shared time loops in
// cells/loops.h. seqcore/reference/rnn.py is the same computation step by step.
namespace seqcore {
namespace SEQCORE_ISA_NS {

constexpr int kRnnForwardNV = 4;   // forward unit: 4·V hidden units
constexpr int kRnnBackwardNV = 2;  // backward unit: 2·V hidden units

// Scratch: packed W_hh and Gx (of the whole sequence for training, of a
// chunk of steps for inference). Backward: packed W_hh and dG (T, B, H).
template <typename T>
int64_t rnn_forward_scratch(int64_t T_, int64_t B, int64_t H, bool train) {
  const PanelMap map{H, kRnnForwardNV, Vec<T>::size, false};
  return map.units() * map.panel_size(H) + (train ? T_ : inference_chunk_steps(T_, B)) * B * H;
}

template <typename T>
int64_t rnn_backward_scratch(int64_t T_, int64_t B, int64_t H) {
  return backward_panels_size<T, kRnnBackwardNV>(H, H) + T_ * B * H;
}

// h_t = tanh(x_t W_ihᵀ + h_{t-1} W_hhᵀ + b) for 4·V hidden units.
template <typename T>
struct RnnForwardEpilogue {
  int64_t H = 0;
  const T* gx = nullptr;  // (B, H)
  const T* b = nullptr;   // (H,)
  T* h_out = nullptr;     // (B, H)

  void apply(int64_t row, int64_t unit, const Vec<T>* acc) const {
    constexpr int V = Vec<T>::size;
    for (int q = 0; q < kRnnForwardNV; ++q) {
      const int64_t j = (unit * kRnnForwardNV + q) * V;
      if (j >= H) break;
      const int n = static_cast<int>(H - j < V ? H - j : V);
      const Vec<T> a = acc[q] + load_n(gx + row * H + j, n) + load_n(b + j, n);
      store_n(vtanh(a), h_out + row * H + j, n);
    }
  }
};

// dG_t = dh ⊙ (1 − h_t²)
template <typename T>
struct RnnBackwardEpilogue {
  int64_t H = 0;
  const T* h = nullptr;  // (B, H) h_t
  T* dG = nullptr;       // (B, H) out

  void apply(int64_t row, int64_t j, int n, Vec<T> dh) const {
    const Vec<T> ht = load_n(h + row * H + j, n);
    store_n(dh * fnmadd(ht, ht, Vec<T>::broadcast(T(1))), dG + row * H + j, n);
  }
};

template <typename T>
void rnn_forward(const CellForwardArgs<T>& a) {
  const int64_t T_ = a.T_, B = a.B, H = a.H;
  const bool train = a.train;
  const PanelMap map{H, kRnnForwardNV, Vec<T>::size, false};
  T* panels = a.scratch;
  T* gx_buf = panels + map.units() * map.panel_size(H);
  const int64_t chunk = train ? T_ : inference_chunk_steps(T_, B);
  forward_loop<T, kRnnForwardNV>(a, H, map, panels, gx_buf, chunk, train, [&](int64_t t, T* gx) {
    RnnForwardEpilogue<T> e;
    e.H = H;
    e.gx = gx;
    e.b = a.b_ih;
    e.h_out = a.y + t * B * H;
    return e;
  });
}

template <typename T>
void rnn_backward(const CellBackwardArgs<T>& a) {
  const int64_t B = a.B, H = a.H;
  T* panels = a.scratch;
  T* dG = panels + backward_panels_size<T, kRnnBackwardNV>(H, H);  // (T, B, H)
  backward_loop<T, kRnnBackwardNV>(a, H, panels, dG, nullptr, [&](int64_t t) {
    RnnBackwardEpilogue<T> e;
    e.H = H;
    e.h = a.y + t * B * H;
    e.dG = dG + t * B * H;
    return e;
  });
  input_and_weight_gradients(a, H, dG, dG);
}

}  // namespace SEQCORE_ISA_NS
}  // namespace seqcore
