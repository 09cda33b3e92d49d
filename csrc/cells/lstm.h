// LSTM forward and BPTT (generic code, see isa/kernels_impl.h): the
// epilogues of the shared time loops in cells/loops.h. Gates i, f, g, o as
// PyTorch; seqcore/reference/lstm.py is the same computation step by step.
namespace seqcore {
namespace SEQCORE_ISA_NS {

constexpr int kLstmForwardNV = 4;   // forward unit: the 4 gates of V hidden units
constexpr int kLstmBackwardNV = 2;  // backward unit: 2·V hidden units

// Scratch: packed W_hh; for inference also Gx of a chunk of steps and c.
// Backward: packed W_hh and dG (T, B, 4H).
template <typename T>
int64_t lstm_forward_scratch(int64_t T_, int64_t B, int64_t H, bool train) {
  const PanelMap map{H, kLstmForwardNV, Vec<T>::size, true};
  int64_t n = map.units() * map.panel_size(H);
  if (!train) n += inference_chunk_steps(T_, B) * B * 4 * H + B * H;
  return n;
}

template <typename T>
int64_t lstm_backward_scratch(int64_t T_, int64_t B, int64_t H) {
  return backward_panels_size<T, kLstmBackwardNV>(H, 4 * H) + T_ * B * 4 * H;
}

// Step t, hidden units [unit·V, unit·V + V): the gates from the recurrent
// product acc = h_{t-1} W_hhᵀ, then c_t and h_t.
template <typename T>
struct LstmForwardEpilogue {
  int64_t H = 0;
  const T* gx = nullptr;      // (B, 4H) x_t W_ihᵀ
  const T* b = nullptr;       // (4H,)
  const T* c_prev = nullptr;  // (B, H)
  T* c_out = nullptr;         // (B, H), may be c_prev (in place)
  T* h_out = nullptr;         // (B, H)
  T* gates = nullptr;         // (B, 4H) or null; may be gx (in place)

  void apply(int64_t row, int64_t unit, const Vec<T>* acc) const {
    constexpr int V = Vec<T>::size;
    const int64_t j = unit * V;
    const int n = static_cast<int>(H - j < V ? H - j : V);
    const T* gxr = gx + row * 4 * H + j;
    const Vec<T> i = vsigmoid(acc[0] + load_n(gxr, n) + load_n(b + j, n));
    const Vec<T> f = vsigmoid(acc[1] + load_n(gxr + H, n) + load_n(b + H + j, n));
    const Vec<T> g = vtanh(acc[2] + load_n(gxr + 2 * H, n) + load_n(b + 2 * H + j, n));
    const Vec<T> o = vsigmoid(acc[3] + load_n(gxr + 3 * H, n) + load_n(b + 3 * H + j, n));
    const Vec<T> c = fmadd(f, load_n(c_prev + row * H + j, n), i * g);
    store_n(c, c_out + row * H + j, n);
    store_n(o * vtanh(c), h_out + row * H + j, n);
    if (gates != nullptr) {
      T* gr = gates + row * 4 * H + j;
      store_n(i, gr, n);
      store_n(f, gr + H, n);
      store_n(g, gr + 2 * H, n);
      store_n(o, gr + 3 * H, n);
    }
  }
};

// Step t back, hidden units [j, j + n), with dh the whole gradient at h_t:
//   dc_t = dc + dh ⊙ o ⊙ (1 − tanh²c_t)     dc_{t-1} = dc_t ⊙ f
//   dG_t = [dc_t g i(1−i), dc_t c_{t-1} f(1−f), dc_t i (1−g²), dh tanh(c_t) o(1−o)]
template <typename T>
struct LstmBackwardEpilogue {
  int64_t H = 0;
  const T* gates = nullptr;   // (B, 4H) i, f, g, o of step t
  const T* c = nullptr;       // (B, H) c_t
  const T* c_prev = nullptr;  // (B, H) c_{t-1}
  T* dc = nullptr;            // (B, H) in: from step t+1; out: to step t-1
  T* dG = nullptr;            // (B, 4H) out

  void apply(int64_t row, int64_t j, int n, Vec<T> dh) const {
    const Vec<T> one = Vec<T>::broadcast(T(1));
    const T* gr = gates + row * 4 * H + j;
    const Vec<T> i = load_n(gr, n), f = load_n(gr + H, n);
    const Vec<T> g = load_n(gr + 2 * H, n), o = load_n(gr + 3 * H, n);
    const Vec<T> tc = vtanh(load_n(c + row * H + j, n));
    T* dcr = dc + row * H + j;
    const Vec<T> dct = fmadd(dh * o, fnmadd(tc, tc, one), load_n(dcr, n));
    store_n(dct * f, dcr, n);
    T* dgr = dG + row * 4 * H + j;
    store_n(dct * g * i * (one - i), dgr, n);
    store_n(dct * load_n(c_prev + row * H + j, n) * f * (one - f), dgr + H, n);
    store_n(dct * i * fnmadd(g, g, one), dgr + 2 * H, n);
    store_n(dh * tc * o * (one - o), dgr + 3 * H, n);
  }
};

template <typename T>
void lstm_forward(const CellForwardArgs<T>& a) {
  const int64_t T_ = a.T_, B = a.B, H = a.H, GH = 4 * H;
  const bool train = a.train;
  const PanelMap map{H, kLstmForwardNV, Vec<T>::size, true};
  T* panels = a.scratch;
  // Training: Gx goes to ws_gates, overwritten in place by the gates.
  // Inference: Gx of `chunk` steps, and c, in scratch.
  const int64_t chunk = train ? T_ : inference_chunk_steps(T_, B);
  T* gx_buf = train ? a.ws_gates : panels + map.units() * map.panel_size(H);
  T* c_buf = train ? nullptr : gx_buf + chunk * B * GH;
  if (!train) std::memcpy(c_buf, a.c0, sizeof(T) * B * H);
  forward_loop<T, kLstmForwardNV>(a, GH, map, panels, gx_buf, chunk, train, [&](int64_t t, T* gx) {
    LstmForwardEpilogue<T> e;
    e.H = H;
    e.gx = gx;
    e.b = a.b_ih;
    e.h_out = a.y + t * B * H;
    if (train) {
      e.c_prev = t == 0 ? a.c0 : a.ws_c + (t - 1) * B * H;
      e.c_out = a.ws_c + t * B * H;
      e.gates = gx;
    } else {
      e.c_prev = e.c_out = c_buf;
    }
    return e;
  });
  std::memcpy(a.cT, T_ == 0 ? a.c0 : train ? a.ws_c + (T_ - 1) * B * H : c_buf, sizeof(T) * B * H);
}

template <typename T>
void lstm_backward(const CellBackwardArgs<T>& a) {
  const int64_t B = a.B, H = a.H, GH = 4 * H;
  T* panels = a.scratch;
  T* dG = panels + backward_panels_size<T, kLstmBackwardNV>(H, GH);  // (T, B, 4H)
  // dc0 carries dc through the loop, from dcT at the end to dc0 at the start.
  if (a.dcT != nullptr) {
    std::memcpy(a.dc0, a.dcT, sizeof(T) * B * H);
  } else {
    std::memset(a.dc0, 0, sizeof(T) * B * H);
  }
  backward_loop<T, kLstmBackwardNV>(a, GH, panels, dG, nullptr, [&](int64_t t) {
    LstmBackwardEpilogue<T> e;
    e.H = H;
    e.gates = a.ws_gates + t * B * GH;
    e.c = a.ws_c + t * B * H;
    e.c_prev = t == 0 ? a.c0 : a.ws_c + (t - 1) * B * H;
    e.dc = a.dc0;
    e.dG = dG + t * B * GH;
    return e;
  });
  input_and_weight_gradients(a, GH, dG, dG);
}

}  // namespace SEQCORE_ISA_NS
}  // namespace seqcore
