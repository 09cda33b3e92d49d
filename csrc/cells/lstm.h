// LSTM forward and BPTT (generic code, see isa/kernels_impl.h): the
// epilogues of the shared time loops in cells/loops.h. Gates i, f, g, o as
// PyTorch; seqcore/reference/lstm.py is the same computation step by step.
// With a projection (P > 0, kernels.h) the loops add h = m W_hrᵀ to each
// iteration (cells/loops.h) and the epilogues here see m in place of h.
namespace seqcore {
namespace SEQCORE_ISA_NS {

constexpr int kLstmForwardNV = 4;   // forward unit: the 4 gates of V hidden units
constexpr int kLstmBackwardNV = 2;  // backward unit: 2·V hidden units

template <typename T>
PanelMap lstm_forward_map(int64_t H) { return PanelMap{H, kLstmForwardNV, Vec<T>::size, true}; }

// The projection's panels (the P features in units of the forward's NV
// vectors, depth H) and the backward's (the H hidden units in units of its
// NV vectors, depth P).
template <typename T>
PanelMap lstm_projection_map(int64_t P) { return PanelMap{P, kLstmForwardNV, Vec<T>::size, false}; }
template <typename T>
int64_t lstm_projection_panels(int64_t H, int64_t P) {
  const PanelMap map = lstm_projection_map<T>(P);
  return map.units() * map.panel_size(H);
}
template <typename T>
int64_t lstm_projection_back_panels(int64_t H, int64_t P) {
  const PanelMap map{H, kLstmBackwardNV, Vec<T>::size, false};
  return map.units() * map.panel_size(P);
}

// Forward scratch (see ForwardScratch) plus, for inference, the cell
// state; with a projection, its panels and, for inference, m (B, H).
template <typename T>
int64_t lstm_forward_scratch(int64_t T_, int64_t B, int64_t D, int64_t H, int64_t P, bool train, bool gather) {
  const int64_t projection = P > 0 ? lstm_projection_panels<T>(H, P) + (train ? 0 : B * H) : 0;
  return ForwardScratch<T>::size(lstm_forward_map<T>(H), T_, B, D, 4 * H, train, gather, true,
                                 (train ? 0 : B * H) + projection, P > 0 ? P : H);
}

// Backward scratch plus dc (B, H); with a projection, its panels and dh of
// every iteration (at most T·B rows of P).
template <typename T>
int64_t lstm_backward_scratch(int64_t T_, int64_t B, int64_t D, int64_t H, int64_t P, bool gather) {
  const int64_t projection = P > 0 ? lstm_projection_back_panels<T>(H, P) + T_ * B * P : 0;
  return BackwardScratch<T, kLstmBackwardNV>::size(T_, B, D, H, 4 * H, gather, B * H + projection);
}

// Iteration s, hidden units [unit·V, unit·V + V) of a row: the gates from
// the recurrent product acc = h W_hhᵀ, then c and h (also written to y_row,
// unless null). With a projection h_out is m's buffer, h_prev null (the
// projection carries h) and y_row null.
template <typename T>
struct LstmForwardEpilogue {
  int64_t H = 0;
  const T* gx = nullptr;      // (B, 4H) x W_ihᵀ of this iteration
  const T* b = nullptr;       // (4H,)
  const T* h_prev = nullptr;  // (B, H) or null
  const T* c_prev = nullptr;  // (B, H)
  T* h_out = nullptr;         // (B, H)
  T* c_out = nullptr;         // (B, H), may be c_prev (in place)
  T* gates = nullptr;         // (B, 4H) or null; may be gx (in place)

  // Past the row's end: the state is carried.
  void carry(int64_t row, int64_t unit) const {
    constexpr int V = Vec<T>::size;
    const int64_t j = unit * V, hj = row * H + j;
    const int n = static_cast<int>(H - j < V ? H - j : V);
    if (h_prev != nullptr) store_n(load_n(h_prev + hj, n), h_out + hj, n);
    if (c_out != c_prev) store_n(load_n(c_prev + hj, n), c_out + hj, n);
  }

  void apply(int64_t row, int64_t unit, const Vec<T>* acc, T* y_row) const {
    constexpr int V = Vec<T>::size;
    const int64_t j = unit * V, hj = row * H + j;
    const int n = static_cast<int>(H - j < V ? H - j : V);
    const T* gxr = gx + row * 4 * H + j;
    const Vec<T> i = vsigmoid(acc[0] + load_n(gxr, n) + load_n(b + j, n));
    const Vec<T> f = vsigmoid(acc[1] + load_n(gxr + H, n) + load_n(b + H + j, n));
    const Vec<T> g = vtanh(acc[2] + load_n(gxr + 2 * H, n) + load_n(b + 2 * H + j, n));
    const Vec<T> o = vsigmoid(acc[3] + load_n(gxr + 3 * H, n) + load_n(b + 3 * H + j, n));
    const Vec<T> c = fmadd(f, load_n(c_prev + hj, n), i * g);
    const Vec<T> h = o * vtanh(c);
    store_n(c, c_out + hj, n);
    store_n(h, h_out + hj, n);
    if (y_row != nullptr) store_n(h, y_row + j, n);
    if (gates != nullptr) {
      T* gr = gates + row * 4 * H + j;
      store_n(i, gr, n);
      store_n(f, gr + H, n);
      store_n(g, gr + 2 * H, n);
      store_n(o, gr + 3 * H, n);
    }
  }
};

// Iteration s back, hidden units [j, j + n), with dh the whole gradient at
// the row's h (dcT joins dc at the row's last step):
//   dc_s = dc + dh ⊙ o ⊙ (1 − tanh²c_s)     dc_{s-1} = dc_s ⊙ f
//   dG_s = [dc_s g i(1−i), dc_s c_{s-1} f(1−f), dc_s i (1−g²), dh tanh(c_s) o(1−o)]
template <typename T>
struct LstmBackwardEpilogue {
  int64_t H = 0;
  const T* gates = nullptr;   // (B, 4H) i, f, g, o of iteration s
  const T* c = nullptr;       // (B, H) c_s
  const T* c_prev = nullptr;  // (B, H) c_{s-1}
  const T* dcT = nullptr;     // (B, H) or null, batch order
  T* dc = nullptr;            // (B, H) in: from iteration s+1; out: to s-1
  T* dG = nullptr;            // (B, 4H) out, row stride ldg
  int64_t ldg = 0;
  T* db = nullptr;            // (4H,) Σ dG over the iterations and rows, added to

  void skip(int64_t row, int64_t j, int n) const {
    T* dgr = dG + row * ldg + j;
    for (int k = 0; k < 4; ++k) store_n(Vec<T>::zero(), dgr + k * H, n);
  }

  void apply(int64_t row, int64_t j, int n, Vec<T> dh, bool last, int64_t b) const {
    const Vec<T> one = Vec<T>::broadcast(T(1));
    const int64_t hj = row * H + j;
    const T* gr = gates + row * 4 * H + j;
    const Vec<T> i = load_n(gr, n), f = load_n(gr + H, n);
    const Vec<T> g = load_n(gr + 2 * H, n), o = load_n(gr + 3 * H, n);
    const Vec<T> tc = vtanh(load_n(c + hj, n));
    Vec<T> dc_in = load_n(dc + hj, n);
    if (last && dcT != nullptr) dc_in = dc_in + load_n(dcT + b * H + j, n);
    const Vec<T> dcs = fmadd(dh * o, fnmadd(tc, tc, one), dc_in);
    store_n(dcs * f, dc + hj, n);
    const Vec<T> d[4] = {dcs * g * i * (one - i), dcs * load_n(c_prev + hj, n) * f * (one - f),
                         dcs * i * fnmadd(g, g, one), dh * tc * o * (one - o)};
    T* dgr = dG + row * ldg + j;
    for (int k = 0; k < 4; ++k) {
      store_n(d[k], dgr + k * H, n);
      add_to(db + k * H + j, d[k], n);
    }
  }
};

// The epilogue of one iteration: gx, h_prev and c_prev -> h_out (m with a
// projection: h_prev then unused) and c_out; what the fp32/bf16 loop below
// and the int8 loop (forward_int8.h) both run. Training adds the gates.
template <typename T>
LstmForwardEpilogue<T> lstm_forward_epilogue(const CellForwardArgs<T>& a, T* gx, const T* h_prev, T* h_out,
                                             T* c_prev, T* c_out) {
  LstmForwardEpilogue<T> e;
  e.H = a.H;
  e.gx = gx;
  e.b = a.b_ih;
  e.h_prev = a.P > 0 ? nullptr : h_prev;
  e.h_out = h_out;
  e.c_prev = c_prev;
  e.c_out = c_out;
  return e;
}

template <typename T>
void lstm_forward(const CellForwardArgs<T>& a) {
  const int64_t T_ = a.T_, B = a.B, D = a.D, H = a.H, GH = 4 * H, P = a.P;
  const PanelMap map = lstm_forward_map<T>(H);
  const Rows rows{a.lengths, a.order, T_, B, a.reverse};
  // Training: Gx goes to ws_gates, overwritten in place by the gates.
  const ForwardScratch<T> scratch(a.scratch, map, T_, B, D, GH, a.train, !rows.identity(), a.ws_gates,
                                  state_width(a));
  // Training: c of iteration s in block s+1 of ws_c (c0 in block 0, as
  // ws_h); inference: c updated in place.
  T* c_buf = a.train ? a.ws_c : scratch.extra;
  to_kernel_rows(rows, a.c0, H, c_buf);
  Projection<T> proj;
  if (P > 0) {
    proj.P = P;
    proj.map = lstm_projection_map<T>(P);
    proj.panels = scratch.extra + (a.train ? 0 : B * H);
    proj.ws_m = a.train ? a.ws_m : nullptr;
    proj.m_buf = a.train ? nullptr : proj.panels + lstm_projection_panels<T>(H, P);
  }
  forward_loop<T, kLstmForwardNV>(a, GH, map, scratch, [&](int64_t s, T* gx, const T* h_prev, T* h_out) {
    LstmForwardEpilogue<T> e = lstm_forward_epilogue(a, gx, h_prev, h_out,
                                                     a.train ? a.ws_c + rows.offset(s) * H : c_buf,
                                                     a.train ? a.ws_c + rows.offset(s + 1) * H : c_buf);
    e.gates = a.train ? gx : nullptr;
    return e;
  }, P > 0 ? &proj : nullptr);
  if (a.train) {
    last_states(rows, a.ws_c, H, a.cT);
  } else {
    to_batch_rows(rows, c_buf, H, a.cT);
  }
}

template <typename T>
void lstm_backward(const CellBackwardArgs<T>& a) {
  const int64_t T_ = a.T_, B = a.B, D = a.D, H = a.H, GH = 4 * H, P = a.P;
  const Rows rows{a.lengths, a.order, T_, B, a.reverse};
  const BackwardScratch<T, kLstmBackwardNV> scratch(a.scratch, T_, B, D, H, GH, !rows.identity());
  // dc, in kernel order: zero until a row's last step adds dcT (a row of
  // length 0 passes dcT straight through to dc0).
  T* dc = scratch.extra;
  BackwardProjection<T> proj;
  proj.panels = scratch.extra + B * H;
  proj.dh = proj.panels + (P > 0 ? lstm_projection_back_panels<T>(H, P) : 0);
  std::memset(a.db_ih, 0, sizeof(T) * GH);
  for (int64_t r = 0; r < B; ++r) {
    if (a.dcT != nullptr && rows.length(r) == 0) {
      std::memcpy(dc + r * H, a.dcT + rows.batch(r) * H, sizeof(T) * H);
    } else {
      std::memset(dc + r * H, 0, sizeof(T) * H);
    }
  }
  backward_loop<T, kLstmBackwardNV>(a, GH, scratch.panels, scratch.dG, nullptr, [&](int64_t s) {
    LstmBackwardEpilogue<T> e;
    e.H = H;
    const int64_t at = rows.offset(s);
    e.gates = a.ws_gates + at * GH;
    e.c = a.ws_c + rows.offset(s + 1) * H;
    e.c_prev = a.ws_c + at * H;
    e.dcT = a.dcT;
    e.dc = dc;
    e.ldg = scratch.ldg;
    e.dG = scratch.dG + at * e.ldg;
    e.db = a.db_ih;
    return e;
  }, P > 0 ? &proj : nullptr);
  to_batch_rows(rows, dc, H, a.dc0);
  input_and_weight_gradients(a, GH, scratch, scratch.dG);
  if (P > 0) {
    // dW_hr = Σ_s dh_sᵀ m_s: dh and ws_m hold the rows that ran each iteration
    const int64_t N = rows.offset(T_ + 1) - B;
    if (N == 0) {
      std::memset(a.dW_hr, 0, sizeof(T) * P * H);
    } else {
      gemm_in<T>(a.bf16, true, false, P, H, N, T(1), proj.dh, P, a.ws_m, H, T(0), a.dW_hr, H, a.num_threads);
    }
  }
}

}  // namespace SEQCORE_ISA_NS
}  // namespace seqcore
