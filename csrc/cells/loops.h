// The time loops that the three cells share (generic code, see
// isa/kernels_impl.h). A cell supplies only its epilogues: what happens to
// the recurrent product of a step, forward and backward.
//
// Forward, per step t, for each unit u a thread owns and each tile of rows:
//   acc = h_{t-1} · W_hhᵀ (unit's columns)   then   epi.apply(row, u, acc[r])
// Backward, per step t from T-1 down to 0:
//   dh  = dGh_{t+1} · W_hh (unit's columns)  (dhT at t = T-1)  + dy_t
//   epi.apply(row, j, n, dh)   writes dG_t, dGh_t for those hidden units
// The thread that owns a unit in the backward computes both dh and the gate
// gradients of its hidden units, so a step needs one barrier: before dGh_t is
// read whole by the next product.
namespace seqcore {
namespace SEQCORE_ISA_NS {

// ---------------------------------------------------------------------------
// forward

template <typename T, int NV, typename Epi>
struct ForwardStep {
  int64_t H = 0, unit = 0;
  const T* panel = nullptr;   // this unit's panel (H, NV, V)
  const T* h_prev = nullptr;  // (B, H)
  Epi epi;

  template <int R>
  void tile(int64_t row0) {
    Vec<T> acc[R][NV];
    panel_product<T, R, NV>(H, h_prev + row0 * H, H, panel, acc);
    for (int r = 0; r < R; ++r) epi.apply(row0 + r, unit, acc[r]);
  }
};

// Runs the forward of a cell with G·H = GH gate columns. epi_at(t, gx) gives
// the epilogue of step t, where gx (B, GH) is x_t · W_ihᵀ. Gx of `chunk`
// steps at a time goes to gx_buf (the whole sequence for training).
template <typename T, int NV, typename EpiAt>
void forward_loop(const CellForwardArgs<T>& a, int64_t GH, const PanelMap& map, T* panels,
                  T* gx_buf, int64_t chunk, bool gx_whole_sequence, EpiAt epi_at) {
  const int64_t T_ = a.T_, B = a.B, D = a.D, H = a.H;
  const int64_t units = map.units(), psize = map.panel_size(H);
  const int nt = static_cast<int>(units < a.num_threads ? units : a.num_threads);
#pragma omp parallel num_threads(nt)
  {
    int64_t u0, u1;
    split_units(units, omp_get_thread_num(), omp_get_num_threads(), u0, u1);
    pack_panels(map, H, a.W_hh, H, false, u0, u1, panels);
  }
  for (int64_t t0 = 0; t0 < T_; t0 += chunk) {
    const int64_t steps = T_ - t0 < chunk ? T_ - t0 : chunk;
    T* gx0 = gx_whole_sequence ? gx_buf + t0 * B * GH : gx_buf;
    project_inputs(a.x + t0 * B * D, steps * B, D, a.W_ih, GH, gx0, a.num_threads);
    // One parallel region over the steps; each thread owns the same units
    // (and keeps their panels in cache) for every step.
#pragma omp parallel num_threads(nt)
    {
      int64_t u0, u1;
      split_units(units, omp_get_thread_num(), omp_get_num_threads(), u0, u1);
      for (int64_t s = 0; s < steps; ++s) {
        const int64_t t = t0 + s;
        ForwardStep<T, NV, decltype(epi_at(t, gx0))> step;
        step.H = H;
        step.h_prev = t == 0 ? a.h0 : a.y + (t - 1) * B * H;
        step.epi = epi_at(t, gx0 + s * B * GH);
        for (int64_t u = u0; u < u1; ++u) {
          step.unit = u;
          step.panel = panels + u * psize;
          for_each_tile<NV>(B, step);
        }
#pragma omp barrier
      }
    }
  }
  std::memcpy(a.hT, T_ > 0 ? a.y + (T_ - 1) * B * H : a.h0, sizeof(T) * B * H);
}

// ---------------------------------------------------------------------------
// backward

template <typename T, int NV, typename Epi>
struct BackwardStep {
  int64_t H = 0, K = 0, unit = 0;
  const T* panel = nullptr;    // this unit's panel (K, NV, V); null at t = T-1
  const T* dGh_next = nullptr; // (B, K) recurrent-side gradient of step t+1
  const T* dh_last = nullptr;  // (B, H) dhT or null, used at t = T-1
  const T* dy = nullptr;       // (B, H) or null
  Epi epi;

  template <int R>
  void tile(int64_t row0) {
    constexpr int V = Vec<T>::size;
    Vec<T> acc[R][NV];
    if (panel != nullptr) {
      panel_product<T, R, NV>(K, dGh_next + row0 * K, K, panel, acc);
    } else {
      for (int r = 0; r < R; ++r)
        for (int q = 0; q < NV; ++q) acc[r][q] = Vec<T>::zero();
    }
    for (int r = 0; r < R; ++r) {
      const int64_t row = row0 + r;
      for (int q = 0; q < NV; ++q) {
        const int64_t j = (unit * NV + q) * V;
        if (j >= H) break;
        const int n = static_cast<int>(H - j < V ? H - j : V);
        Vec<T> dh = acc[r][q];
        if (panel == nullptr && dh_last != nullptr) dh = dh + load_n(dh_last + row * H + j, n);
        if (dy != nullptr) dh = dh + load_n(dy + row * H + j, n);
        epi.apply(row, j, n, dh);
      }
    }
  }
};

// dh0 = dGh_0 · W_hh (+ extra, when given) for one unit and a tile of rows.
template <typename T, int NV>
struct InitialStateGradient {
  int64_t H = 0, K = 0, unit = 0;
  const T* panel = nullptr;  // (K, NV, V)
  const T* dGh = nullptr;    // (B, K)
  const T* extra = nullptr;  // (B, H) or null
  T* dh0 = nullptr;          // (B, H) out

  template <int R>
  void tile(int64_t row0) {
    constexpr int V = Vec<T>::size;
    Vec<T> acc[R][NV];
    panel_product<T, R, NV>(K, dGh + row0 * K, K, panel, acc);
    for (int r = 0; r < R; ++r)
      for (int q = 0; q < NV; ++q) {
        const int64_t j = (unit * NV + q) * V, row = row0 + r;
        if (j >= H) break;
        const int n = static_cast<int>(H - j < V ? H - j : V);
        Vec<T> d = acc[r][q];
        if (extra != nullptr) d = d + load_n(extra + row * H + j, n);
        store_n(d, dh0 + row * H + j, n);
      }
  }
};

// Runs the backward loop of a cell with GH = G·H gate columns: epi_at(t)
// gives the epilogue of step t, which writes dGh_t (B, GH), the gradient of
// the recurrent-side pre-activations, into dGh + t·B·GH. Ends with dh0
// (plus dh0_extra, when given).
template <typename T, int NV, typename EpiAt>
void backward_loop(const CellBackwardArgs<T>& a, int64_t GH, T* panels, const T* dGh,
                   const T* dh0_extra, EpiAt epi_at) {
  const int64_t T_ = a.T_, B = a.B, H = a.H;
  const PanelMap map{H, NV, Vec<T>::size, false};
  const int64_t units = map.units(), psize = map.panel_size(GH);
  const int nt = static_cast<int>(units < a.num_threads ? units : a.num_threads);
#pragma omp parallel num_threads(nt)
  {
    int64_t u0, u1;
    split_units(units, omp_get_thread_num(), omp_get_num_threads(), u0, u1);
    pack_panels(map, GH, a.W_hh, H, true, u0, u1, panels);
    for (int64_t t = T_ - 1; t >= 0; --t) {
      BackwardStep<T, NV, decltype(epi_at(t))> step;
      step.H = H;
      step.K = GH;
      step.dGh_next = t == T_ - 1 ? nullptr : dGh + (t + 1) * B * GH;
      step.dh_last = a.dhT;
      step.dy = a.dy != nullptr ? a.dy + t * B * H : nullptr;
      step.epi = epi_at(t);
      for (int64_t u = u0; u < u1; ++u) {
        step.unit = u;
        step.panel = t == T_ - 1 ? nullptr : panels + u * psize;
        for_each_tile<NV>(B, step);
      }
#pragma omp barrier
    }
    InitialStateGradient<T, NV> last;
    last.H = H;
    last.K = GH;
    last.dGh = dGh;
    last.extra = dh0_extra;
    last.dh0 = a.dh0;
    for (int64_t u = u0; u < u1; ++u) {
      last.unit = u;
      last.panel = panels + u * psize;
      for_each_tile<NV>(B, last);
    }
  }
}

template <typename T, int NV>
int64_t backward_panels_size(int64_t H, int64_t GH) {
  const PanelMap map{H, NV, Vec<T>::size, false};
  return map.units() * map.panel_size(GH);
}

}  // namespace SEQCORE_ISA_NS
}  // namespace seqcore
