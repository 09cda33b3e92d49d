// GRU forward and BPTT (generic code, see isa/kernels_impl.h): the epilogues
// of the shared time loops in cells/loops.h. Gates r, z, n as PyTorch, the
// reset applied after the recurrent product; seqcore/reference/gru.py is the
// same computation step by step.
namespace seqcore {
namespace SEQCORE_ISA_NS {

constexpr int kGruForwardNV = 3;   // forward unit: the 3 gates of V hidden units
constexpr int kGruBackwardNV = 2;  // backward unit: 2·V hidden units

// Scratch: packed W_hh; for inference also Gx of a chunk of steps.
// Backward: packed W_hh, dGx and dGh (T, B, 3H), and dh ⊙ z (B, H).
template <typename T>
int64_t gru_forward_scratch(int64_t T_, int64_t B, int64_t H, bool train) {
  const PanelMap map{H, kGruForwardNV, Vec<T>::size, true};
  int64_t n = map.units() * map.panel_size(H);
  if (!train) n += inference_chunk_steps(T_, B) * B * 3 * H;
  return n;
}

template <typename T>
int64_t gru_backward_scratch(int64_t T_, int64_t B, int64_t H) {
  return backward_panels_size<T, kGruBackwardNV>(H, 3 * H) + 2 * T_ * B * 3 * H + B * H;
}

// Step t, hidden units [unit·V, unit·V + V), with acc = h_{t-1} W_hhᵀ:
//   r = σ(gx_r + b_ir + acc_r + b_hr)      z = σ(gx_z + b_iz + acc_z + b_hz)
//   hn = acc_n + b_hn      n = tanh(gx_n + b_in + r ⊙ hn)
//   h_t = n + z ⊙ (h_{t-1} − n)
template <typename T>
struct GruForwardEpilogue {
  int64_t H = 0;
  const T* gx = nullptr;      // (B, 3H) x_t W_ihᵀ
  const T* b_ih = nullptr;    // (3H,)
  const T* b_hh = nullptr;    // (3H,)
  const T* h_prev = nullptr;  // (B, H)
  T* h_out = nullptr;         // (B, H)
  T* gates = nullptr;         // (B, 3H) or null; may be gx (in place)
  T* hn_out = nullptr;        // (B, H) or null

  void apply(int64_t row, int64_t unit, const Vec<T>* acc) const {
    constexpr int V = Vec<T>::size;
    const int64_t j = unit * V;
    const int n_ = static_cast<int>(H - j < V ? H - j : V);
    const T* gxr = gx + row * 3 * H + j;
    const Vec<T> r = vsigmoid(acc[0] + load_n(b_hh + j, n_) + load_n(gxr, n_) + load_n(b_ih + j, n_));
    const Vec<T> z = vsigmoid(acc[1] + load_n(b_hh + H + j, n_) + load_n(gxr + H, n_) +
                              load_n(b_ih + H + j, n_));
    const Vec<T> hn = acc[2] + load_n(b_hh + 2 * H + j, n_);
    const Vec<T> n = vtanh(fmadd(r, hn, load_n(gxr + 2 * H, n_) + load_n(b_ih + 2 * H + j, n_)));
    const Vec<T> hp = load_n(h_prev + row * H + j, n_);
    store_n(fmadd(z, hp - n, n), h_out + row * H + j, n_);
    if (gates != nullptr) {
      T* gr = gates + row * 3 * H + j;
      store_n(r, gr, n_);
      store_n(z, gr + H, n_);
      store_n(n, gr + 2 * H, n_);
      store_n(hn, hn_out + row * H + j, n_);
    }
  }
};

// Step t back, hidden units [j, j + n), with dh the gradient at h_t from the
// product and the outputs; dhz adds dh_{t+1} ⊙ z_{t+1}, the direct path.
//   dn = dh(1−z)   dz = dh(h_{t-1} − n)   ân = dn(1−n²)   âz = dz z(1−z)
//   âr = ân hn r(1−r)    dGx = [âr, âz, ân]    dGh = [âr, âz, ân r]
template <typename T>
struct GruBackwardEpilogue {
  int64_t H = 0;
  const T* gates = nullptr;   // (B, 3H) r, z, n of step t
  const T* hn = nullptr;      // (B, H)
  const T* h_prev = nullptr;  // (B, H)
  T* dhz = nullptr;           // (B, H) in: dh_{t+1} ⊙ z_{t+1}; out: dh_t ⊙ z_t
  T* dGx = nullptr;           // (B, 3H) out
  T* dGh = nullptr;           // (B, 3H) out

  void apply(int64_t row, int64_t j, int n_, Vec<T> dh) const {
    const Vec<T> one = Vec<T>::broadcast(T(1));
    const T* gr = gates + row * 3 * H + j;
    const Vec<T> r = load_n(gr, n_), z = load_n(gr + H, n_), n = load_n(gr + 2 * H, n_);
    T* dhzr = dhz + row * H + j;
    dh = dh + load_n(dhzr, n_);
    store_n(dh * z, dhzr, n_);
    const Vec<T> dan = dh * (one - z) * fnmadd(n, n, one);
    const Vec<T> daz = dh * (load_n(h_prev + row * H + j, n_) - n) * z * (one - z);
    const Vec<T> dar = dan * load_n(hn + row * H + j, n_) * r * (one - r);
    T* gx = dGx + row * 3 * H + j;
    T* gh = dGh + row * 3 * H + j;
    store_n(dar, gx, n_);
    store_n(daz, gx + H, n_);
    store_n(dan, gx + 2 * H, n_);
    store_n(dar, gh, n_);
    store_n(daz, gh + H, n_);
    store_n(dan * r, gh + 2 * H, n_);
  }
};

template <typename T>
void gru_forward(const CellForwardArgs<T>& a) {
  const int64_t T_ = a.T_, B = a.B, H = a.H, GH = 3 * H;
  const bool train = a.train;
  const PanelMap map{H, kGruForwardNV, Vec<T>::size, true};
  T* panels = a.scratch;
  const int64_t chunk = train ? T_ : inference_chunk_steps(T_, B);
  T* gx_buf = train ? a.ws_gates : panels + map.units() * map.panel_size(H);
  forward_loop<T, kGruForwardNV>(a, GH, map, panels, gx_buf, chunk, train, [&](int64_t t, T* gx) {
    GruForwardEpilogue<T> e;
    e.H = H;
    e.gx = gx;
    e.b_ih = a.b_ih;
    e.b_hh = a.b_hh;
    e.h_prev = t == 0 ? a.h0 : a.y + (t - 1) * B * H;
    e.h_out = a.y + t * B * H;
    if (train) {
      e.gates = gx;
      e.hn_out = a.ws_hn + t * B * H;
    }
    return e;
  });
}

template <typename T>
void gru_backward(const CellBackwardArgs<T>& a) {
  const int64_t T_ = a.T_, B = a.B, H = a.H, GH = 3 * H;
  T* panels = a.scratch;
  T* dGx = panels + backward_panels_size<T, kGruBackwardNV>(H, GH);  // (T, B, 3H)
  T* dGh = dGx + T_ * B * GH;                                        // (T, B, 3H)
  T* dhz = dGh + T_ * B * GH;                                        // (B, H)
  std::memset(dhz, 0, sizeof(T) * B * H);
  backward_loop<T, kGruBackwardNV>(a, GH, panels, dGh, dhz, [&](int64_t t) {
    GruBackwardEpilogue<T> e;
    e.H = H;
    e.gates = a.ws_gates + t * B * GH;
    e.hn = a.ws_hn + t * B * H;
    e.h_prev = t == 0 ? a.h0 : a.y + (t - 1) * B * H;
    e.dhz = dhz;
    e.dGx = dGx + t * B * GH;
    e.dGh = dGh + t * B * GH;
    return e;
  });
  input_and_weight_gradients(a, GH, dGx, dGh);
}

}  // namespace SEQCORE_ISA_NS
}  // namespace seqcore
