// GRU forward and BPTT (generic code, see isa/kernels_impl.h): the epilogues
// of the shared time loops in cells/loops.h. Gates r, z, n as PyTorch, the
// reset applied after the recurrent product; seqcore/reference/gru.py is the
// same computation step by step.
namespace seqcore {
namespace SEQCORE_ISA_NS {

constexpr int kGruForwardNV = 3;   // forward unit: the 3 gates of V hidden units
constexpr int kGruBackwardNV = 2;  // backward unit: 2·V hidden units

template <typename T>
PanelMap gru_forward_map(int64_t H) { return PanelMap{H, kGruForwardNV, Vec<T>::size, true}; }

template <typename T>
int64_t gru_forward_scratch(int64_t T_, int64_t B, int64_t D, int64_t H, bool train, bool gather) {
  return ForwardScratch<T>::size(gru_forward_map<T>(H), T_, B, D, 3 * H, train, gather, true, 0);
}

// Backward scratch plus dGh (blocks 0 … T-1, at most T·B rows of 3H, row
// stride as dG's) and dh ⊙ z (B, H).
template <typename T>
int64_t gru_backward_scratch(int64_t T_, int64_t B, int64_t D, int64_t H, bool gather) {
  return BackwardScratch<T, kGruBackwardNV>::size(T_, B, D, H, 3 * H, gather,
                                                   T_ * B * gate_grad_stride<T>(3 * H) + B * H);
}

// Iteration s, hidden units [unit·V, unit·V + V) of a row, with
// acc = h_prev W_hhᵀ (h is also written to y_row):
//   r = σ(gx_r + b_ir + acc_r + b_hr)      z = σ(gx_z + b_iz + acc_z + b_hz)
//   hn = acc_n + b_hn      n = tanh(gx_n + b_in + r ⊙ hn)
//   h = n + z ⊙ (h_prev − n)
template <typename T>
struct GruForwardEpilogue {
  int64_t H = 0;
  const T* gx = nullptr;      // (B, 3H) x W_ihᵀ of this iteration
  const T* b_ih = nullptr;    // (3H,)
  const T* b_hh = nullptr;    // (3H,)
  const T* h_prev = nullptr;  // (B, H)
  T* h_out = nullptr;         // (B, H)
  T* gates = nullptr;         // (B, 3H) or null; may be gx (in place)
  T* hn_out = nullptr;        // (B, H) or null

  // Past the row's end: the state is carried.
  void carry(int64_t row, int64_t unit) const {
    constexpr int V = Vec<T>::size;
    const int64_t j = unit * V, hj = row * H + j;
    const int m = static_cast<int>(H - j < V ? H - j : V);
    store_n(load_n(h_prev + hj, m), h_out + hj, m);
  }

  void apply(int64_t row, int64_t unit, const Vec<T>* acc, T* y_row) const {
    constexpr int V = Vec<T>::size;
    const int64_t j = unit * V, hj = row * H + j;
    const int m = static_cast<int>(H - j < V ? H - j : V);
    const Vec<T> hp = load_n(h_prev + hj, m);
    const T* gxr = gx + row * 3 * H + j;
    const Vec<T> r = vsigmoid(acc[0] + load_n(b_hh + j, m) + load_n(gxr, m) + load_n(b_ih + j, m));
    const Vec<T> z = vsigmoid(acc[1] + load_n(b_hh + H + j, m) + load_n(gxr + H, m) +
                              load_n(b_ih + H + j, m));
    const Vec<T> hn = acc[2] + load_n(b_hh + 2 * H + j, m);
    const Vec<T> n = vtanh(fmadd(r, hn, load_n(gxr + 2 * H, m) + load_n(b_ih + 2 * H + j, m)));
    const Vec<T> h = fmadd(z, hp - n, n);
    store_n(h, h_out + hj, m);
    store_n(h, y_row + j, m);
    if (gates != nullptr) {
      T* gr = gates + row * 3 * H + j;
      store_n(r, gr, m);
      store_n(z, gr + H, m);
      store_n(n, gr + 2 * H, m);
      store_n(hn, hn_out + hj, m);
    }
  }
};

// Iteration s back, hidden units [j, j + n), with dh the gradient at h from
// the product and the outputs; dhz adds dh ⊙ z of iteration s+1, the direct
// path h_prev → h.
//   dn = dh(1−z)   dz = dh(h_prev − n)   ân = dn(1−n²)   âz = dz z(1−z)
//   âr = ân hn r(1−r)    dGx = [âr, âz, ân]    dGh = [âr, âz, ân r]
template <typename T>
struct GruBackwardEpilogue {
  int64_t H = 0;
  const T* gates = nullptr;   // (B, 3H) r, z, n of iteration s
  const T* hn = nullptr;      // (B, H)
  const T* h_prev = nullptr;  // (B, H)
  T* dhz = nullptr;           // (B, H) in: from iteration s+1; out: to s-1
  T* dGx = nullptr;           // (B, 3H) out, row stride ldg
  T* dGh = nullptr;           // (B, 3H) out, row stride ldg
  int64_t ldg = 0;
  T* db_ih = nullptr;         // (3H,) Σ dGx, added to
  T* db_hh = nullptr;         // (3H,) Σ dGh, added to

  void skip(int64_t row, int64_t j, int m) const {
    for (int k = 0; k < 3; ++k) {
      store_n(Vec<T>::zero(), dGx + row * ldg + k * H + j, m);
      store_n(Vec<T>::zero(), dGh + row * ldg + k * H + j, m);
    }
  }

  void apply(int64_t row, int64_t j, int m, Vec<T> dh, bool, int64_t) const {
    const Vec<T> one = Vec<T>::broadcast(T(1));
    const int64_t hj = row * H + j;
    const T* gr = gates + row * 3 * H + j;
    const Vec<T> r = load_n(gr, m), z = load_n(gr + H, m), n = load_n(gr + 2 * H, m);
    dh = dh + load_n(dhz + hj, m);
    store_n(dh * z, dhz + hj, m);
    const Vec<T> dan = dh * (one - z) * fnmadd(n, n, one);
    const Vec<T> daz = dh * (load_n(h_prev + hj, m) - n) * z * (one - z);
    const Vec<T> dar = dan * load_n(hn + hj, m) * r * (one - r);
    const Vec<T> dx[3] = {dar, daz, dan}, dhh[3] = {dar, daz, dan * r};
    T* gx = dGx + row * ldg + j;
    T* gh = dGh + row * ldg + j;
    for (int k = 0; k < 3; ++k) {
      store_n(dx[k], gx + k * H, m);
      store_n(dhh[k], gh + k * H, m);
      add_to(db_ih + k * H + j, dx[k], m);
      add_to(db_hh + k * H + j, dhh[k], m);
    }
  }
};

// The epilogue of one iteration, gx and h_prev -> h_out, as inference runs it
// (the fp32/bf16 loop below, the int8 loop in forward_int8.h); training
// adds where the gates and h_n go.
template <typename T>
GruForwardEpilogue<T> gru_forward_epilogue(const CellForwardArgs<T>& a, T* gx, const T* h_prev, T* h_out) {
  GruForwardEpilogue<T> e;
  e.H = a.H;
  e.gx = gx;
  e.b_ih = a.b_ih;
  e.b_hh = a.b_hh;
  e.h_prev = h_prev;
  e.h_out = h_out;
  return e;
}

template <typename T>
void gru_forward(const CellForwardArgs<T>& a) {
  const int64_t B = a.B, H = a.H, GH = 3 * H;
  const PanelMap map = gru_forward_map<T>(H);
  const Rows rows{a.lengths, a.order, a.T_, B, a.reverse};
  const ForwardScratch<T> scratch(a.scratch, map, a.T_, B, a.D, GH, a.train, !rows.identity(), a.ws_gates);
  forward_loop<T, kGruForwardNV>(a, GH, map, scratch, [&](int64_t s, T* gx, const T* h_prev, T* h_out) {
    GruForwardEpilogue<T> e = gru_forward_epilogue(a, gx, h_prev, h_out);
    if (a.train) {
      e.gates = gx;
      e.hn_out = a.ws_hn + rows.offset(s) * H;
    }
    return e;
  });
}

template <typename T>
void gru_backward(const CellBackwardArgs<T>& a) {
  const int64_t T_ = a.T_, B = a.B, H = a.H, GH = 3 * H;
  const Rows rows{a.lengths, a.order, T_, B, a.reverse};
  const BackwardScratch<T, kGruBackwardNV> scratch(a.scratch, T_, B, a.D, H, GH, !rows.identity());
  const int64_t ldg = scratch.ldg;
  T* dGh = scratch.extra;       // (T, B, 3H), row stride ldg
  T* dhz = dGh + T_ * B * ldg;  // (B, H)
  std::memset(dhz, 0, sizeof(T) * B * H);
  std::memset(a.db_ih, 0, sizeof(T) * GH);
  std::memset(a.db_hh, 0, sizeof(T) * GH);
  backward_loop<T, kGruBackwardNV>(a, GH, scratch.panels, dGh, dhz, [&](int64_t s) {
    GruBackwardEpilogue<T> e;
    e.H = H;
    const int64_t at = rows.offset(s);
    e.gates = a.ws_gates + at * GH;
    e.hn = a.ws_hn + at * H;
    e.h_prev = a.ws_h + at * H;
    e.dhz = dhz;
    e.ldg = ldg;
    e.dGx = scratch.dG + at * ldg;
    e.dGh = dGh + at * ldg;
    e.db_ih = a.db_ih;
    e.db_hh = a.db_hh;
    return e;
  });
  input_and_weight_gradients(a, GH, scratch, dGh);
}

}  // namespace SEQCORE_ISA_NS
}  // namespace seqcore
