// The time loops that the three cells share (generic code, see
// isa/kernels_impl.h). A cell supplies only its epilogues: what happens to
// the recurrent product of an iteration, forward and backward.
//
// Forward, iteration s, for each unit u a thread owns and each tile of rows:
//   acc = h_{s} · W_hhᵀ (unit's columns)      then  epi.apply(row, u, acc[r], t)
// with t the time step the row runs (-1 past its end: carry the state).
// Backward, iteration s from T-1 down to 0:
//   dh = dGh_{s+1} · W_hh (unit's columns) + dhT (at the row's last step) + dy_t
//   epi.apply(row, j, n, dh, last)  writes dG_s, dGh_s for those hidden units
// The thread that owns a unit in the backward computes both dh and the gate
// gradients of its hidden units, so an iteration needs one barrier: before
// dGh_s is read whole by the next product.
namespace seqcore {
namespace SEQCORE_ISA_NS {

// Which time step iteration s of row b runs (see CellForwardArgs).
struct RowTimes {
  const int64_t* lengths;
  int64_t T;
  bool reverse;

  int64_t length(int64_t b) const { return lengths != nullptr ? lengths[b] : T; }
  // -1 when row b is past its end
  int64_t time(int64_t s, int64_t b) const {
    const int64_t n = length(b);
    return s >= n ? -1 : reverse ? n - 1 - s : s;
  }
  // Whether iteration s reads x_s for every row (no gather needed).
  bool identity() const { return !reverse; }
};

// X_it (steps, B, D): row b of iteration s0 + i is x at the time step it
// runs, zeros past its end.
template <typename T>
void gather_inputs(const RowTimes& times, const T* x, int64_t s0, int64_t steps, int64_t B,
                   int64_t D, T* X_it) {
  for (int64_t i = 0; i < steps; ++i)
    for (int64_t b = 0; b < B; ++b) {
      const int64_t t = times.time(s0 + i, b);
      T* dst = X_it + (i * B + b) * D;
      if (t < 0) {
        std::memset(dst, 0, sizeof(T) * D);
      } else {
        std::memcpy(dst, x + (t * B + b) * D, sizeof(T) * D);
      }
    }
}

// y[t, b] = 0 for the time steps t >= length[b] that no iteration writes.
template <typename T>
void zero_padding(const RowTimes& times, int64_t B, int64_t H, T* y) {
  if (times.lengths == nullptr) return;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = times.length(b); t < times.T; ++t) std::memset(y + (t * B + b) * H, 0, sizeof(T) * H);
}

// ---------------------------------------------------------------------------
// forward

// Scratch of a forward, in this order: packed W_hh; Gx (the whole sequence
// when training, unless the cell keeps it in ws_gates; one chunk of steps
// for inference); inputs gathered by iteration (reverse only); for
// inference two state buffers, used in turn; then `extra` for the cell.
template <typename T>
struct ForwardScratch {
  T *panels, *gx, *x_it, *h_pair, *extra;
  int64_t chunk;

  static int64_t size(const PanelMap& map, int64_t T_, int64_t B, int64_t D, int64_t GH,
                      bool train, bool reverse, bool gx_in_ws, int64_t extra) {
    const int64_t chunk = train ? T_ : inference_chunk_steps(T_, B);
    return map.units() * map.panel_size(map.H) + (train && gx_in_ws ? 0 : chunk * B * GH) +
           (reverse ? chunk * B * D : 0) + (train ? 0 : 2 * B * map.H) + extra;
  }

  ForwardScratch(T* p, const PanelMap& map, int64_t T_, int64_t B, int64_t D, int64_t GH,
                 bool train, bool reverse, T* ws_gates) {
    chunk = train ? T_ : inference_chunk_steps(T_, B);
    panels = p;
    p += map.units() * map.panel_size(map.H);
    if (train && ws_gates != nullptr) {
      gx = ws_gates;
    } else {
      gx = p;
      p += chunk * B * GH;
    }
    x_it = reverse ? p : nullptr;
    p += reverse ? chunk * B * D : 0;
    h_pair = train ? nullptr : p;
    p += train ? 0 : 2 * B * map.H;
    extra = p;
  }
};

// Where iteration s reads and writes the state h.
template <typename T>
struct StateSlots {
  const T* h0;
  T* ws_h;    // (T+1, B, H) when training
  T* h_pair;  // 2 (B, H) buffers for inference
  int64_t BH;
  const T* in(int64_t s) const {
    if (ws_h != nullptr) return ws_h + s * BH;
    return s == 0 ? h0 : h_pair + ((s - 1) % 2) * BH;
  }
  T* out(int64_t s) const { return ws_h != nullptr ? ws_h + (s + 1) * BH : h_pair + (s % 2) * BH; }
};

template <typename T, int NV, typename Epi>
struct ForwardStep {
  int64_t H = 0, unit = 0, s = 0;
  RowTimes times{};
  const T* panel = nullptr;   // this unit's panel (H, NV, V)
  const T* h_prev = nullptr;  // (B, H)
  Epi epi;

  template <int R>
  void tile(int64_t row0) {
    Vec<T> acc[R][NV];
    panel_product<T, R, NV>(H, h_prev + row0 * H, H, panel, acc);
    for (int r = 0; r < R; ++r) epi.apply(row0 + r, unit, acc[r], times.time(s, row0 + r));
  }
};

// Runs the forward of a cell with GH = G·H gate columns. epi_at(s, gx,
// h_prev, h_out) gives the epilogue of iteration s, gx (B, GH) being that
// iteration's x · W_ihᵀ. Ends with hT.
template <typename T, int NV, typename EpiAt>
void forward_loop(const CellForwardArgs<T>& a, int64_t GH, const PanelMap& map,
                  const ForwardScratch<T>& scratch, EpiAt epi_at) {
  const int64_t T_ = a.T_, B = a.B, D = a.D, H = a.H;
  const int64_t units = map.units(), psize = map.panel_size(H);
  const RowTimes times{a.lengths, T_, a.reverse};
  const StateSlots<T> slots{a.h0, a.ws_h, scratch.h_pair, B * H};
  if (a.ws_h != nullptr) std::memcpy(a.ws_h, a.h0, sizeof(T) * B * H);
  zero_padding(times, B, H, a.y);
  const int nt = static_cast<int>(units < a.num_threads ? units : a.num_threads);
#pragma omp parallel num_threads(nt)
  {
    int64_t u0, u1;
    split_units(units, omp_get_thread_num(), omp_get_num_threads(), u0, u1);
    pack_panels(map, H, a.W_hh, H, false, u0, u1, scratch.panels);
  }
  const int64_t chunk = scratch.chunk;
  for (int64_t s0 = 0; s0 < T_; s0 += chunk) {
    const int64_t steps = T_ - s0 < chunk ? T_ - s0 : chunk;
    // Gx of these iterations; training keeps the whole sequence's.
    T* gx0 = a.train ? scratch.gx + s0 * B * GH : scratch.gx;
    const T* X = a.x + s0 * B * D;
    if (!times.identity()) {
      gather_inputs(times, a.x, s0, steps, B, D, scratch.x_it);
      X = scratch.x_it;
    }
    project_inputs(X, steps * B, D, a.W_ih, GH, gx0, a.num_threads);
    // One parallel region over the iterations; each thread owns the same
    // units (and keeps their panels in cache) for every iteration.
#pragma omp parallel num_threads(nt)
    {
      int64_t u0, u1;
      split_units(units, omp_get_thread_num(), omp_get_num_threads(), u0, u1);
      for (int64_t i = 0; i < steps; ++i) {
        const int64_t s = s0 + i;
        ForwardStep<T, NV, decltype(epi_at(s, gx0, slots.in(s), slots.out(s)))> step;
        step.H = H;
        step.s = s;
        step.times = times;
        step.h_prev = slots.in(s);
        step.epi = epi_at(s, gx0 + i * B * GH, slots.in(s), slots.out(s));
        for (int64_t u = u0; u < u1; ++u) {
          step.unit = u;
          step.panel = scratch.panels + u * psize;
          for_each_tile<NV>(B, step);
        }
#pragma omp barrier
      }
    }
  }
  std::memcpy(a.hT, T_ > 0 ? slots.out(T_ - 1) : a.h0, sizeof(T) * B * H);
}

// ---------------------------------------------------------------------------
// backward

// Scratch of a backward, in this order: packed W_hh; dG (T, B, GH); then,
// for reverse, the inputs gathered by iteration and dx by iteration (T, B,
// D each); then `extra` for the cell.
template <typename T, int NV>
struct BackwardScratch {
  T *panels, *dG, *x_it, *dx_it, *extra;

  static int64_t size(int64_t T_, int64_t B, int64_t D, int64_t H, int64_t GH, bool reverse,
                      int64_t extra) {
    const PanelMap map{H, NV, Vec<T>::size, false};
    return map.units() * map.panel_size(GH) + T_ * B * GH + (reverse ? 2 * T_ * B * D : 0) + extra;
  }

  BackwardScratch(T* p, int64_t T_, int64_t B, int64_t D, int64_t H, int64_t GH, bool reverse) {
    const PanelMap map{H, NV, Vec<T>::size, false};
    panels = p;
    p += map.units() * map.panel_size(GH);
    dG = p;
    p += T_ * B * GH;
    x_it = reverse ? p : nullptr;
    dx_it = reverse ? p + T_ * B * D : nullptr;
    p += reverse ? 2 * T_ * B * D : 0;
    extra = p;
  }
};

template <typename T, int NV, typename Epi>
struct BackwardStep {
  int64_t H = 0, K = 0, unit = 0, s = 0, B = 0;
  RowTimes times{};
  const T* panel = nullptr;     // this unit's panel (K, NV, V); null at s = T-1
  const T* dGh_next = nullptr;  // (B, K) recurrent-side gradient of iteration s+1
  const T* dhT = nullptr;       // (B, H) or null: added at each row's last step
  const T* dy = nullptr;        // (T, B, H) or null
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
      const int64_t row = row0 + r, t = times.time(s, row);
      const bool last = s == times.length(row) - 1;
      for (int q = 0; q < NV; ++q) {
        const int64_t j = (unit * NV + q) * V;
        if (j >= H) break;
        const int n = static_cast<int>(H - j < V ? H - j : V);
        if (t < 0) {
          epi.skip(row, j, n);
          continue;
        }
        Vec<T> dh = acc[r][q];
        if (last && dhT != nullptr) dh = dh + load_n(dhT + row * H + j, n);
        if (dy != nullptr) dh = dh + load_n(dy + (t * B + row) * H + j, n);
        epi.apply(row, j, n, dh, last);
      }
    }
  }
};

// dh0 = dGh_0 · W_hh (+ extra, when given; + dhT for rows of length 0) for
// one unit and a tile of rows.
template <typename T, int NV>
struct InitialStateGradient {
  int64_t H = 0, K = 0, unit = 0;
  RowTimes times{};
  const T* panel = nullptr;  // (K, NV, V)
  const T* dGh = nullptr;    // (B, K)
  const T* extra = nullptr;  // (B, H) or null
  const T* dhT = nullptr;    // (B, H) or null
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
        if (dhT != nullptr && times.length(row) == 0) d = d + load_n(dhT + row * H + j, n);
        store_n(d, dh0 + row * H + j, n);
      }
  }
};

// Runs the backward loop of a cell with GH = G·H gate columns: epi_at(s)
// gives the epilogue of iteration s, which writes dGh_s (B, GH), the
// gradient of the recurrent-side pre-activations, into dGh + s·B·GH. Ends
// with dh0 (plus dh0_extra, when given).
template <typename T, int NV, typename EpiAt>
void backward_loop(const CellBackwardArgs<T>& a, int64_t GH, T* panels, const T* dGh,
                   const T* dh0_extra, EpiAt epi_at) {
  const int64_t T_ = a.T_, B = a.B, H = a.H;
  const PanelMap map{H, NV, Vec<T>::size, false};
  const int64_t units = map.units(), psize = map.panel_size(GH);
  const RowTimes times{a.lengths, T_, a.reverse};
  const int nt = static_cast<int>(units < a.num_threads ? units : a.num_threads);
#pragma omp parallel num_threads(nt)
  {
    int64_t u0, u1;
    split_units(units, omp_get_thread_num(), omp_get_num_threads(), u0, u1);
    pack_panels(map, GH, a.W_hh, H, true, u0, u1, panels);
    for (int64_t s = T_ - 1; s >= 0; --s) {
      BackwardStep<T, NV, decltype(epi_at(s))> step;
      step.H = H;
      step.K = GH;
      step.B = B;
      step.s = s;
      step.times = times;
      step.dGh_next = s == T_ - 1 ? nullptr : dGh + (s + 1) * B * GH;
      step.dhT = a.dhT;
      step.dy = a.dy;
      step.epi = epi_at(s);
      for (int64_t u = u0; u < u1; ++u) {
        step.unit = u;
        step.panel = s == T_ - 1 ? nullptr : panels + u * psize;
        for_each_tile<NV>(B, step);
      }
#pragma omp barrier
    }
    InitialStateGradient<T, NV> first;
    first.H = H;
    first.K = GH;
    first.times = times;
    first.dGh = dGh;
    first.extra = dh0_extra;
    first.dhT = a.dhT;
    first.dh0 = a.dh0;
    for (int64_t u = u0; u < u1; ++u) {
      first.unit = u;
      first.panel = panels + u * psize;
      for_each_tile<NV>(B, first);
    }
  }
}

// After the backward loop, with dG (T·B, GH) the pre-activation gradients
// on the input side and dGh those on the recurrent side (the same array but
// for GRU), by iteration:
//   dx = dG · W_ih      dW_ih = dGᵀ · X      db_ih = Σ_rows dG
//   dW_hh = Σ_s dGh_sᵀ · h_s = dGhᵀ · ws_h[0:T]      db_hh = Σ_rows dGh (GRU)
// For reverse, X is gathered by iteration and dx scattered back to time.
template <typename T, int NV>
void input_and_weight_gradients(const CellBackwardArgs<T>& a, int64_t GH,
                                const BackwardScratch<T, NV>& scratch, const T* dGh) {
  const int64_t TB = a.T_ * a.B, B = a.B, D = a.D, H = a.H;
  const int nt = a.num_threads;
  const T* dG = scratch.dG;
  const RowTimes times{a.lengths, a.T_, a.reverse};
  const T* X = a.x;
  T* dX = a.dx;
  if (!times.identity()) {
    gather_inputs(times, a.x, 0, a.T_, B, D, scratch.x_it);
    X = scratch.x_it;
    dX = scratch.dx_it;
  }
  gemm<T>(false, false, TB, D, GH, T(1), dG, GH, a.W_ih, D, T(0), dX, D, nt);
  gemm<T>(true, false, GH, D, TB, T(1), dG, GH, X, D, T(0), a.dW_ih, D, nt);
  gemm<T>(true, false, GH, H, TB, T(1), dGh, GH, a.ws_h, H, T(0), a.dW_hh, H, nt);
  column_sums(dG, TB, GH, a.db_ih, nt);
  if (a.db_hh != nullptr) column_sums(dGh, TB, GH, a.db_hh, nt);
  if (!times.identity()) {
    // dx[t, b] = dx_it[s, b] for the iteration s that ran t; 0 past the end
    std::memset(a.dx, 0, sizeof(T) * TB * D);
    for (int64_t s = 0; s < a.T_; ++s)
      for (int64_t b = 0; b < B; ++b) {
        const int64_t t = times.time(s, b);
        if (t >= 0) std::memcpy(a.dx + (t * B + b) * D, dX + (s * B + b) * D, sizeof(T) * D);
      }
  }
}

}  // namespace SEQCORE_ISA_NS
}  // namespace seqcore
