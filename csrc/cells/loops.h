// The time loops that the three cells share (generic code, see
// isa/kernels_impl.h). A cell supplies only its epilogues: what happens to
// the recurrent product of an iteration, forward and backward.
//
// Forward, iteration s, for each unit u a thread owns, over the rows still
// running (a prefix of the batch, see CellForwardArgs):
//   acc = h_s · W_hhᵀ (unit's columns)   then   epi.apply(row, u, acc[r], y_row)
// and epi.carry(row, u) for the rows past their end.
// Everything kept by iteration is in blocks that skip the finished rows
// (see Rows::offset), so the big products (input projection, dx, dW_ih,
// dW_hh) run over the real rows of a variable-length batch only.
// Backward, iteration s from T-1 down to 0:
//   dh = dGh_{s+1} · W_hh (unit's columns) + dhT (at the row's last step) + dy
//   epi.apply(row, j, n, dh, last, b)  writes dG_s, dGh_s for those hidden units
//                                      and adds them to the bias gradients
// and epi.skip(row, j, n) for the rows past their end. The thread that owns a
// unit in the backward computes both dh and the gate gradients of its hidden
// units, so an iteration needs one meeting of the workers: before dGh_s is
// read whole (forward: before h_s is). The workers are the threads the plan
// gives the call (cells/team.h, plan.h), meeting on a step counter.
//
// An LSTM with a projection (kernels.h: h = m W_hrᵀ, P features) adds a
// second product to each iteration, with a second meeting (m_s, then dh_s,
// is read whole by it), over units of the P features in the forward and of
// the H hidden units in the backward:
//   forward   the cell's epilogue writes m_s (B, H) in place of h; meeting;
//             h_s = m_s · W_hrᵀ (ProjectionEpilogue), written to h and y
//   backward  dh_s = dGh_{s+1} · W_hh + dhT + dy (units of P), kept; meeting;
//             epi.apply(row, j, n, dh_s · W_hr, …) (units of H)
// Both run on the same steps (ForwardStep, BackwardStep) and tile loops as
// the first product; a step's product depth K and output width are its own.
namespace seqcore {
namespace SEQCORE_ISA_NS {

// The rows of a padded batch as the kernels see them: kernel row r is batch
// row batch(r); with lengths, rows are in descending length order.
struct Rows {
  const int64_t* lengths;  // by batch row, or null: all T
  const int64_t* order;    // kernel row -> batch row, or null: identity
  int64_t T, B;
  bool reverse;

  int64_t batch(int64_t r) const { return order != nullptr ? order[r] : r; }
  int64_t length(int64_t r) const { return lengths != nullptr ? lengths[batch(r)] : T; }
  // The time step row r runs at iteration s, -1 past its end.
  int64_t time(int64_t s, int64_t r) const {
    const int64_t n = length(r);
    return s >= n ? -1 : reverse ? n - 1 - s : s;
  }
  // Rows still running at iteration s: [0, active(s)).
  int64_t active(int64_t s) const {
    int64_t n = B;
    while (n > 0 && length(n - 1) <= s) --n;
    return n;
  }
  // Whether every row runs all T steps in batch order: then the blocks
  // below are x's time steps and no gather is needed.
  bool identity() const { return !reverse && order == nullptr && (lengths == nullptr || length(B - 1) == T); }

  // Blocks. What is kept or computed per iteration (Gx and the gates, the
  // states h and c, dG) is stored by block: block s, s = 0 … T, holds
  // count(s) kernel rows from row offset(s) — all B for s = 0, else the
  // rows that ran iteration s-1. Iteration s reads block s (its running
  // rows are a prefix) and writes the states to block s+1, so a row's last
  // state stays in block length(r); products over blocks 0 … T-1 see the
  // real rows plus at most B finished ones. Without lengths block s is rows
  // [s·B, s·B + B): the padded layout.
  //   offset(s) = B + Σ_r min(length(r), s − 1)   (s ≥ 1)
  int64_t offset(int64_t s) const {
    if (s == 0) return 0;
    if (lengths == nullptr) return s * B;
    int64_t n = B;
    for (int64_t r = 0; r < B; ++r) n += length(r) < s - 1 ? length(r) : s - 1;
    return n;
  }
  int64_t count(int64_t s) const { return s == 0 ? B : active(s - 1); }
};

// X_it: blocks s0 … s0+steps-1 of the inputs (from row offset(s0)); kernel
// row r of block s is x at the time step it runs at iteration s, zeros past
// its end.
template <typename T>
void gather_inputs(const Rows& rows, const T* x, int64_t s0, int64_t steps, int64_t D, T* X_it) {
  const int64_t base = rows.offset(s0);
  for (int64_t s = s0; s < s0 + steps; ++s) {
    const int64_t at = rows.offset(s) - base, n = rows.count(s);
    for (int64_t r = 0; r < n; ++r) {
      const int64_t t = rows.time(s, r);
      T* dst = X_it + (at + r) * D;
      if (t < 0) {
        std::memset(dst, 0, sizeof(T) * D);
      } else {
        std::memcpy(dst, x + (t * rows.B + rows.batch(r)) * D, sizeof(T) * D);
      }
    }
  }
}

// dst[r] = src[batch(r)] (to kernel order) or dst[batch(r)] = src[r] (back),
// rows of n elements.
template <typename T>
void to_kernel_rows(const Rows& rows, const T* src, int64_t n, T* dst) {
  for (int64_t r = 0; r < rows.B; ++r) std::memcpy(dst + r * n, src + rows.batch(r) * n, sizeof(T) * n);
}
template <typename T>
void to_batch_rows(const Rows& rows, const T* src, int64_t n, T* dst) {
  for (int64_t r = 0; r < rows.B; ++r) std::memcpy(dst + rows.batch(r) * n, src + r * n, sizeof(T) * n);
}

// dst[batch(r)] = row r of block length(r): each row's last state, from
// the blocks of a training workspace (T+1 blocks of n elements per row).
template <typename T>
void last_states(const Rows& rows, const T* blocks, int64_t n, T* dst) {
  for (int64_t r = 0; r < rows.B; ++r)
    std::memcpy(dst + rows.batch(r) * n, blocks + (rows.offset(rows.length(r)) + r) * n, sizeof(T) * n);
}

// y[t, b] = 0 for the time steps t >= lengths[b] that no iteration writes.
template <typename T>
void zero_padding(const Rows& rows, int64_t H, T* y) {
  if (rows.lengths == nullptr) return;
  for (int64_t b = 0; b < rows.B; ++b)
    for (int64_t t = rows.lengths[b]; t < rows.T; ++t) std::memset(y + (t * rows.B + b) * H, 0, sizeof(T) * H);
}

// The width S of the state h (and of y, dy, dhT, dh0): P with a projection,
// else H.
template <typename Args>
int64_t state_width(const Args& a) {
  return a.P > 0 ? a.P : a.H;
}

// Work of a step of a time loop for the plan (plan.h): the recurrent product
// of depth S, plus the projection's (P·H per row) with one.
template <typename Args>
double step_work(const Args& a, int64_t GH) {
  return loop_step_work(a.B, GH, state_width(a)) + (a.P > 0 ? loop_step_work(a.B, a.P, a.H) : 0.0);
}

// ---------------------------------------------------------------------------
// forward

// Scratch of a forward, in this order: packed W_hh; Gx (the whole sequence
// when training, unless the cell keeps it in ws_gates; one chunk of steps
// for inference); inputs gathered by iteration (unless in batch order); for
// inference two state buffers, used in turn; then `extra` for the cell.
// S: the state's width (state_width; 0 for map.H).
template <typename T>
struct ForwardScratch {
  T *panels, *gx, *x_it, *h_pair, *extra;
  int64_t chunk;

  static int64_t size(const PanelMap& map, int64_t T_, int64_t B, int64_t D, int64_t GH,
                      bool train, bool gather, bool gx_in_ws, int64_t extra, int64_t S = 0) {
    const int64_t chunk = train ? T_ : inference_chunk_steps(T_, B);
    if (S == 0) S = map.H;
    return map.units() * map.panel_size(S) + (train && gx_in_ws ? 0 : chunk * B * GH) +
           (gather ? chunk * B * D : 0) + (train ? 0 : 2 * B * S) + extra;
  }

  ForwardScratch(T* p, const PanelMap& map, int64_t T_, int64_t B, int64_t D, int64_t GH,
                 bool train, bool gather, T* ws_gates, int64_t S = 0) {
    chunk = train ? T_ : inference_chunk_steps(T_, B);
    if (S == 0) S = map.H;
    panels = p;
    p += map.units() * map.panel_size(S);
    if (train && ws_gates != nullptr) {
      gx = ws_gates;
    } else {
      gx = p;
      p += chunk * B * GH;
    }
    x_it = gather ? p : nullptr;
    p += gather ? chunk * B * D : 0;
    h_pair = train ? nullptr : p;
    p += train ? 0 : 2 * B * S;
    extra = p;
  }
};

// Where iteration s reads and writes the state h, in kernel row order:
// blocks s and s+1 of ws_h when training (see Rows::offset); for inference
// two (B, H) buffers in turn, the second holding h0 before iteration 0.
// (H here is the state's width, P with a projection.)
template <typename T>
struct StateSlots {
  T* ws_h;    // T+1 blocks of (count, H), or null
  T* h_pair;  // 2 (B, H) buffers for inference
  Rows rows;
  int64_t H;
  T* in(int64_t s) const {
    return ws_h != nullptr ? ws_h + rows.offset(s) * H : h_pair + ((s + 1) % 2) * rows.B * H;
  }
  T* out(int64_t s) const {
    return ws_h != nullptr ? ws_h + rows.offset(s + 1) * H : h_pair + (s % 2) * rows.B * H;
  }
};

// The projection of an LSTM in the forward (see the top): W_hr packed in
// panels of NV vectors of the P features (plain layout, depth H), and where
// iteration s keeps m_s: training, in ws_m, the rows that ran it, at the
// slot of block s+1 of ws_h less B rows (what the backward's dW_hr reads);
// inference, one (B, H) buffer.
template <typename T>
struct Projection {
  int64_t P = 0;        // 0: none
  PanelMap map{};       // over P
  T* panels = nullptr;  // map.units() panels of depth H
  T* ws_m = nullptr;    // training
  T* m_buf = nullptr;   // inference
  T* m(const Rows& rows, int64_t s, int64_t H) const {
    return ws_m != nullptr ? ws_m + (rows.offset(s + 1) - rows.B) * H : m_buf;
  }
};

// The forward's second product with a projection: h = acc (= m W_hrᵀ) for
// NV vectors of the P features of a row, written to h_out and y_row.
template <typename T, int NV>
struct ProjectionEpilogue {
  int64_t P = 0;
  const T* h_prev = nullptr;  // (B, P)
  T* h_out = nullptr;         // (B, P)

  void carry(int64_t row, int64_t unit) const {
    constexpr int V = Vec<T>::size;
    for (int q = 0; q < NV; ++q) {
      const int64_t j = (unit * NV + q) * V, pj = row * P + j;
      if (j >= P) break;
      const int n = static_cast<int>(P - j < V ? P - j : V);
      store_n(load_n(h_prev + pj, n), h_out + pj, n);
    }
  }

  void apply(int64_t row, int64_t unit, const Vec<T>* acc, T* y_row) const {
    constexpr int V = Vec<T>::size;
    for (int q = 0; q < NV; ++q) {
      const int64_t j = (unit * NV + q) * V;
      if (j >= P) break;
      const int n = static_cast<int>(P - j < V ? P - j : V);
      store_n(acc[q], h_out + row * P + j, n);
      store_n(acc[q], y_row + j, n);
    }
  }
};

// One iteration's product A · Wᵀ (A: K values a row, the state h, or m with a
// projection) and its epilogue, for one unit at a time.
template <typename T, int NV, typename Epi>
struct ForwardStep {
  int64_t K = 0, width = 0, unit = 0, s = 0;  // K: the product's depth; width: y's
  Rows rows{};
  const T* panel = nullptr;   // this unit's panel (K, NV, V)
  const T* h_prev = nullptr;  // (B, K) A
  T* y = nullptr;             // (T, B, width), or null: the epilogue gets a null y_row
  Epi epi;
  // The next iteration's Gx block (next_rows rows of GH), or null. Its rows
  // are 4·H apart (LSTM), a page at H = 256, where the hardware does not
  // prefetch, and the input projection wrote them long before: asking for
  // this tile's rows of it now, a step ahead, spares the next epilogues a
  // cache miss per gate (LSTM forward 3-12% faster at H = 256).
  const T* gx_next = nullptr;
  int64_t next_rows = 0, GH = 0;
  const PanelMap* map = nullptr;
  Bf16Rows<T> bf16;  // precision "bf16": this thread's row buffer (cells/panel_bf16.h); else rows null

  // Rows [row0, row0 + n) of the next Gx block, unit u's columns (the
  // unit's columns once, then a plain loop over the rows).
  void prefetch_next(int64_t u, int64_t row0, int64_t n) const {
    if (gx_next == nullptr) return;
    int64_t cols[NV];
    int nq = 0;
    for (int q = 0; q < NV && map->hidden(u, q, 0) < map->H; ++q) cols[nq++] = map->column(u, q, 0);
    const int64_t rn = next_rows - row0 < n ? next_rows - row0 : n;
    const T* g = gx_next + row0 * GH;
    for (int64_t r = 0; r < rn; ++r, g += GH)
      for (int q = 0; q < nq; ++q) __builtin_prefetch(g + cols[q], 1, 3);
  }

  void before(int64_t u, int64_t row0, int64_t n) const { prefetch_next(u, row0, n); }

  // The epilogue of row `row` at unit u from its recurrent sums acc.
  void finish_row(int64_t u, int64_t row, const Vec<T>* acc) const {
    const int64_t t = rows.time(s, row);
    epi.apply(row, u, acc, y != nullptr ? y + (t * rows.B + rows.batch(row)) * width : nullptr);
  }

  template <int R>
  void tile(int64_t row0) {
    Vec<T> acc[R][NV];
    prefetch_next(unit, row0, R);
    if (bf16.rows != nullptr) {
      if (!bf16.ready) bf16_convert_rows(h_prev, K, rows.active(s), K, bf16);
      panel_product_bf16<R, NV>(K, bf16, row0, panel, acc);
    } else {
      panel_product<T, R, NV>(K, h_prev + row0 * K, K, panel, acc);
    }
    for (int r = 0; r < R; ++r) finish_row(unit, row0 + r, acc[r]);
  }
};

#if defined(__AMX_BF16__)
// Whether a "bf16" step's recurrent product of depth K runs pipelined
// (step_amx_pipelined): K in whole blocks of 32 (no pairs of k left for
// vdpbf16ps).
inline bool amx_pipelined(bool bf16, int64_t K) { return bf16 && K % 32 == 0; }

// A "bf16" time step with AMX over units [u0, u1) and rows [0, running),
// software-pipelined: the work items (a unit and a tile of up to 32 rows,
// the tiles of for_each_tile) are multiplied in turn, and between the
// blocks of item i's tile products, which the AMX unit runs on its own,
// the vector units run item i-1's epilogue a row or two at a time, from
// item i-1's sums (two sets in the row buffer, used in turn). Run one
// after the other, the products and the epilogues took about the same
// time (LSTM, H = 256-512). A (rows of lda, K values each) is h (forward)
// or dGh of the step after (backward); step.before(u, row0, rows) comes
// before an item's product and step.finish_row(u, row, acc) is a row's
// epilogue: the same sums and epilogues as the steps' tile(), the same bits.
template <typename T, int NV, typename Step>
void step_amx_pipelined(Step& step, const T* A, int64_t lda, int64_t K, const T* panels, int64_t psize,
                        int64_t u0, int64_t u1, int64_t running) {
  if constexpr (sizeof(T) == 4) {
    constexpr int MR = bf16_tile_rows<NV>();
    Bf16Rows<T>& b = step.bf16;
    bf16_convert_rows(A, lda, running, K, b);
    const int64_t blocks = K / 32, tiles = (running + MR - 1) / MR;
    const int64_t base = running / tiles, extra = running % tiles;
    const uint32_t* a = reinterpret_cast<const uint32_t*>(b.rows);
    float* sums[2] = {b.sums, b.sums + 2 * NV * 256};
    // the item whose epilogue runs: unit, first row, rows, its sums; rows done
    int64_t p_unit = -1, p_row0 = 0;
    int p_rows = 0, p_done = 0, per_hook = 0;
    const float* p_sums = nullptr;
    auto finish = [&](int n) {
      for (; n > 0 && p_done < p_rows; --n, ++p_done) {
        const int r = p_done;
        const float* sr = p_sums + (r / 16 * NV) * 256 + (r % 16) * 16;
        Vec<T> acc[NV];
        for (int q = 0; q < NV; ++q) acc[q] = Vec<T>(_mm512_loadu_ps(sr + q * 256));
        step.finish_row(p_unit, p_row0 + r, acc);
      }
    };
    int64_t item = 0;
    for (int64_t j = u0; j < u1; ++j) {
      const int64_t u = unit_in_order(j, u0, u1, step.s);
      const uint32_t* p = reinterpret_cast<const uint32_t*>(panels + u * psize);
      int64_t row0 = 0;
      for (int64_t i = 0; i < tiles; ++i, ++item) {
        const int rows = static_cast<int>(base + (i < extra ? 1 : 0));
        step.before(u, row0, rows);
        float* my_sums = sums[item % 2];
        const int64_t hooks = amx_hooks<NV>(blocks, rows);
        per_hook = static_cast<int>((p_rows + hooks - 1) / hooks);
        amx_rows_product<NV>(blocks, a + row0 * b.stride, b.stride, p, rows, my_sums,
                             [&]() { finish(per_hook); });
        finish(p_rows);  // what the hooks left of the previous item
        p_unit = u, p_row0 = row0, p_rows = rows, p_done = 0, p_sums = my_sums;
        row0 += rows;
      }
    }
    finish(p_rows);
  } else {
    (void)step, (void)A, (void)lda, (void)K, (void)panels, (void)psize, (void)u0, (void)u1, (void)running;
  }
}
#endif

// One forward iteration's product and epilogue over units [u0, u1) of a
// worker, rows [0, running) (AMX pipelined where it applies), and for
// inference the state carried for the rows past their end.
template <typename T, int NV, typename Step>
void forward_step_units(Step& step, bool bf16, bool train, const T* panels, int64_t psize, int64_t u0,
                        int64_t u1, int64_t running, int64_t B) {
#if defined(__AMX_BF16__)
  if (running > 0 && amx_pipelined(bf16, step.K)) {
    step_amx_pipelined<T, NV>(step, step.h_prev, step.K, step.K, panels, psize, u0, u1, running);
    if (!train)
      for (int64_t u = u0; u < u1; ++u)
        for (int64_t row = running; row < B; ++row) step.epi.carry(row, u);
    return;
  }
#endif
  for (int64_t j = u0; j < u1; ++j) {
    const int64_t u = unit_in_order(j, u0, u1, step.s);
    step.unit = u;
    step.panel = panels + u * psize;
    if (running > 0) for_each_tile_in<NV>(bf16, running, step);
    if (!train)
      for (int64_t row = running; row < B; ++row) step.epi.carry(row, u);
  }
}

// Runs the forward of a cell with GH = G·H gate columns. epi_at(s, gx,
// h_prev, h_out) gives the epilogue of iteration s, gx (count(s), GH) being
// that iteration's x · W_ihᵀ. Ends with hT. Training keeps no state for the
// rows past their end (block s+1 has only the rows that ran iteration s);
// inference carries it. With a projection (proj, LSTM) the cell's epilogue
// writes m_s (proj->m) and y is written by the projection's.
template <typename T, int NV, typename EpiAt>
void forward_loop(const CellForwardArgs<T>& a, int64_t GH, const PanelMap& map,
                  const ForwardScratch<T>& scratch, EpiAt epi_at, const Projection<T>* proj = nullptr) {
  const int64_t T_ = a.T_, B = a.B, D = a.D, H = a.H, S = state_width(a);
  const int64_t units = map.units(), psize = map.panel_size(S);
  const int64_t proj_units = proj != nullptr ? proj->map.units() : 0, proj_psize = H * NV * Vec<T>::size;
  const int phases = proj != nullptr ? 2 : 1;
  const Rows rows{a.lengths, a.order, T_, B, a.reverse};
  const StateSlots<T> slots{a.ws_h, scratch.h_pair, rows, S};
  to_kernel_rows(rows, a.h0, S, slots.in(0));
  zero_padding(rows, S, a.y);
  const int64_t chunk = scratch.chunk;
  // Workers for the units: as many as a step's work pays for (plan.h).
  const int workers = loop_workers(units, step_work(a, GH), a.train ? T_ : chunk, a.num_threads);
  const int64_t row_buffer = a.bf16 ? bf16_row_buffer<NV>(H, B) : 0;
  GemmBuffer<T> bf16_rows(row_buffer * workers);
  std::memset(bf16_rows.data, 0, sizeof(T) * row_buffer * workers);
  run_workers(a.num_threads, workers, [&](int w, int n) {
    int64_t u0, u1;
    split_units(units, w, n, u0, u1);
    if (a.bf16) {
      pack_panels_bf16(map, S, a.W_hh, S, false, u0, u1, scratch.panels);
    } else {
      pack_panels(map, S, a.W_hh, S, false, u0, u1, scratch.panels);
    }
    if (proj == nullptr) return;
    split_units(proj_units, w, n, u0, u1);
    if (a.bf16) {
      pack_panels_bf16(proj->map, H, a.W_hr, H, false, u0, u1, proj->panels);
    } else {
      pack_panels(proj->map, H, a.W_hr, H, false, u0, u1, proj->panels);
    }
  });
  // Inference in more than one chunk: W_ihᵀ packed once for all of them.
  const bool pack_once = !a.train && chunk < T_;
  GemmBuffer<T> packed_W(pack_once ? input_weights_size<T>(D, GH, a.bf16) : 0);
  if (pack_once) pack_input_weights(a.W_ih, D, GH, a.bf16, packed_W.data);
  for (int64_t s0 = 0; s0 < T_; s0 += chunk) {
    const int64_t steps = T_ - s0 < chunk ? T_ - s0 : chunk;
    // Gx of these iterations' blocks; training keeps the whole sequence's.
    const int64_t base = rows.offset(s0), n_rows = rows.offset(s0 + steps) - base;
    T* gx0 = a.train ? scratch.gx + base * GH : scratch.gx;
    const T* X = a.x + s0 * B * D;
    if (!rows.identity()) {
      gather_inputs(rows, a.x, s0, steps, D, scratch.x_it);
      X = scratch.x_it;
    }
    project_inputs(X, n_rows, D, a.W_ih, GH, gx0, a.num_threads, a.bf16, pack_once ? packed_W.data : nullptr);
    // One parallel region over the iterations; each worker owns the same
    // units (and keeps their panels in cache) for every iteration.
    StepCounter done;
    run_workers(a.num_threads, workers, [&](int w, int n) {
      int64_t u0, u1, pu0 = 0, pu1 = 0;
      split_units(units, w, n, u0, u1);
      if (proj != nullptr) split_units(proj_units, w, n, pu0, pu1);
      const Bf16TileScope tiles(a.bf16);
      for (int64_t i = 0; i < steps; ++i) {
        const int64_t s = s0 + i, running = rows.active(s);
        T* h_out = proj != nullptr ? proj->m(rows, s, H) : slots.out(s);
        ForwardStep<T, NV, decltype(epi_at(s, gx0, slots.in(s), h_out))> step;
        step.K = S;
        step.width = S;
        step.s = s;
        step.rows = rows;
        step.h_prev = slots.in(s);
        step.y = proj != nullptr ? nullptr : a.y;
        step.epi = epi_at(s, gx0 + (rows.offset(s) - base) * GH, slots.in(s), h_out);
        step.GH = GH;
        step.map = &map;
        if (a.bf16) step.bf16 = bf16_thread_rows<NV>(bf16_rows.data, w, H, B);
        step.gx_next = i + 1 < steps ? gx0 + (rows.offset(s + 1) - base) * GH : nullptr;
        step.next_rows = i + 1 < steps ? rows.count(s + 1) : 0;
        forward_step_units<T, NV>(step, a.bf16, a.train, scratch.panels, psize, u0, u1, running, B);
        step_end(&done, w, n, phases * i);
        if (proj == nullptr) continue;
        // h_s = m_s W_hrᵀ, once every unit's m_s is written
        ForwardStep<T, NV, ProjectionEpilogue<T, NV>> second;
        second.K = H;
        second.width = S;
        second.s = s;
        second.rows = rows;
        second.h_prev = h_out;
        second.y = a.y;
        second.epi.P = S;
        second.epi.h_prev = slots.in(s);
        second.epi.h_out = slots.out(s);
        second.map = &proj->map;
        if (a.bf16) second.bf16 = bf16_thread_rows<NV>(bf16_rows.data, w, H, B);
        forward_step_units<T, NV>(second, a.bf16, a.train, proj->panels, proj_psize, pu0, pu1, running, B);
        step_end(&done, w, n, phases * i + 1);
      }
    });
    report_loop(done, phases * steps);
  }
  if (a.train) {
    last_states(rows, a.ws_h, S, a.hT);
  } else {
    to_batch_rows(rows, slots.out(T_ - 1), S, a.hT);
  }
}

// ---------------------------------------------------------------------------
// backward

// Row stride of the backward's gate gradients dG (and GRU's dGh): GH, plus
// a cache line where rows GH apart would be a multiple of 2 KiB apart (LSTM
// with H a multiple of 128, say). The recurrent product reads a tile of up
// to 12 rows side by side, and rows that far apart fall into the same few
// L1 sets and evict one another.
template <typename T>
int64_t gate_grad_stride(int64_t GH) {
  constexpr int64_t line = 64 / static_cast<int64_t>(sizeof(T));
  return GH * static_cast<int64_t>(sizeof(T)) % 2048 == 0 ? GH + line : GH;
}

// Scratch of a backward, in this order: packed W_hh; dG (blocks 0 … T-1,
// see Rows::offset, at most T·B rows of stride ldg = gate_grad_stride(GH));
// then, unless in batch order, the inputs by block, overwritten by dx by
// block (at most T·B rows of D); then `extra` for the cell.
template <typename T, int NV>
struct BackwardScratch {
  T *panels, *dG, *x_it, *extra;
  int64_t ldg;  // dG's row stride, gate_grad_stride(GH)

  static int64_t size(int64_t T_, int64_t B, int64_t D, int64_t H, int64_t GH, bool gather,
                      int64_t extra) {
    const PanelMap map{H, NV, Vec<T>::size, false};
    return map.units() * map.panel_size(GH) + T_ * B * gate_grad_stride<T>(GH) + (gather ? T_ * B * D : 0) +
           extra;
  }

  BackwardScratch(T* p, int64_t T_, int64_t B, int64_t D, int64_t H, int64_t GH, bool gather) {
    const PanelMap map{H, NV, Vec<T>::size, false};
    panels = p;
    p += map.units() * map.panel_size(GH);
    dG = p;
    ldg = gate_grad_stride<T>(GH);
    p += T_ * B * ldg;
    x_it = gather ? p : nullptr;
    p += gather ? T_ * B * D : 0;
    extra = p;
  }
};

template <typename T, int NV, typename Epi>
struct BackwardStep {
  int64_t H = 0, K = 0, ldg = 0, unit = 0, s = 0;
  Rows rows{};
  const T* panel = nullptr;     // this unit's panel (K, NV, V); null at s = T-1
  const T* dGh_next = nullptr;  // (count(s+1), K), row stride ldg: recurrent-side gradient of iteration s+1
  const T* dhT = nullptr;       // (B, H) or null: added at each row's last step
  const T* dy = nullptr;        // (T, B, H) or null
  Bf16Rows<T> bf16;             // precision "bf16": this thread's row buffer; else rows null
  Epi epi;

  template <int R>
  void tile(int64_t row0) {
    constexpr int V = Vec<T>::size;
    Vec<T> acc[R][NV];
    if (panel != nullptr && bf16.rows != nullptr) {
      if (!bf16.ready) bf16_convert_rows(dGh_next, ldg, rows.active(s), K, bf16);
      panel_product_bf16<R, NV>(K, bf16, row0, panel, acc);
    } else if (panel != nullptr) {
      panel_product<T, R, NV>(K, dGh_next + row0 * ldg, ldg, panel, acc);
    } else {
      for (int r = 0; r < R; ++r)
        for (int q = 0; q < NV; ++q) acc[r][q] = Vec<T>::zero();
    }
    for (int r = 0; r < R; ++r) finish_row(unit, row0 + r, acc[r]);
  }

  void before(int64_t, int64_t, int64_t) const {}

  // The epilogue of row `row` at unit u from the recurrent sums acc.
  void finish_row(int64_t u, int64_t row, const Vec<T>* acc) const {
    constexpr int V = Vec<T>::size;
    const int64_t b = rows.batch(row), t = rows.time(s, row);
    const bool last = s == rows.length(row) - 1;
    for (int q = 0; q < NV; ++q) {
      const int64_t j = (u * NV + q) * V;
      if (j >= H) break;
      const int n = static_cast<int>(H - j < V ? H - j : V);
      Vec<T> dh = acc[q];
      if (last && dhT != nullptr) dh = dh + load_n(dhT + b * H + j, n);
      if (dy != nullptr) dh = dh + load_n(dy + (t * rows.B + b) * H + j, n);
      epi.apply(row, j, n, dh, last, b);
    }
  }

  // The rows past their end: no gradient at this iteration.
  void skip(int64_t row) {
    constexpr int V = Vec<T>::size;
    for (int q = 0; q < NV; ++q) {
      const int64_t j = (unit * NV + q) * V;
      if (j >= H) break;
      epi.skip(row, j, static_cast<int>(H - j < V ? H - j : V));
    }
  }
};

// dh0 = dGh_0 · W_hh (+ extra, when given; + dhT for rows of length 0) for
// one unit and a tile of rows, written in batch order.
template <typename T, int NV>
struct InitialStateGradient {
  int64_t H = 0, K = 0, ldg = 0, unit = 0;
  Rows rows{};
  const T* panel = nullptr;  // (K, NV, V)
  const T* dGh = nullptr;    // (B, K), row stride ldg
  const T* extra = nullptr;  // (B, H) or null, kernel order
  const T* dhT = nullptr;    // (B, H) or null
  T* dh0 = nullptr;          // (B, H) out
  Bf16Rows<T> bf16;          // precision "bf16": this thread's row buffer; else rows null

  template <int R>
  void tile(int64_t row0) {
    constexpr int V = Vec<T>::size;
    Vec<T> acc[R][NV];
    if (bf16.rows != nullptr) {
      if (!bf16.ready) bf16_convert_rows(dGh, ldg, rows.B, K, bf16);
      panel_product_bf16<R, NV>(K, bf16, row0, panel, acc);
    } else {
      panel_product<T, R, NV>(K, dGh + row0 * ldg, ldg, panel, acc);
    }
    for (int r = 0; r < R; ++r)
      for (int q = 0; q < NV; ++q) {
        const int64_t j = (unit * NV + q) * V, row = row0 + r, b = rows.batch(row);
        if (j >= H) break;
        const int n = static_cast<int>(H - j < V ? H - j : V);
        Vec<T> d = acc[r][q];
        if (extra != nullptr) d = d + load_n(extra + row * H + j, n);
        if (dhT != nullptr && rows.length(row) == 0) d = d + load_n(dhT + b * H + j, n);
        store_n(d, dh0 + b * H + j, n);
      }
  }
};

// The projection of an LSTM in the backward (see the top): W_hr packed
// k-major in panels of NV vectors of the H hidden units (depth P), and dh_s
// of every iteration, kept for dW_hr (rows as Projection's ws_m).
template <typename T>
struct BackwardProjection {
  T* panels = nullptr;
  T* dh = nullptr;  // (T·B at most, P)
};

// The first product of a backward iteration with a projection: dh_s of the
// running rows, kept (the rows past their end keep nothing).
template <typename T>
struct KeepRows {
  int64_t P = 0;
  T* dh = nullptr;  // (running, P) of this iteration

  void skip(int64_t, int64_t, int) const {}
  void apply(int64_t row, int64_t j, int n, Vec<T> dh_row, bool, int64_t) const {
    store_n(dh_row, dh + row * P + j, n);
  }
};

// One backward iteration's product and epilogues over units [u0, u1) of a
// worker: rows [0, running) (AMX pipelined where it applies), and skip for
// the rows [running, n_rows) past their end. No product (zeros) without A.
template <typename T, int NV, typename Step>
void backward_step_units(Step& step, bool bf16, bool has_product, const T* panels, int64_t psize,
                         int64_t u0, int64_t u1, int64_t running, int64_t n_rows) {
#if defined(__AMX_BF16__)
  // (pipelined only for K <= 1024: the LSTM backward at H = 512, K = 2048,
  // measured 10-29% slower pipelined, RNN at K = 256-1024 12-14% faster)
  if (running > 0 && has_product && amx_pipelined(bf16, step.K) && step.K <= 1024) {
    step_amx_pipelined<T, NV>(step, step.dGh_next, step.ldg, step.K, panels, psize, u0, u1, running);
    for (int64_t u = u0; u < u1; ++u) {
      step.unit = u;
      for (int64_t row = running; row < n_rows; ++row) step.skip(row);
    }
    return;
  }
#endif
  for (int64_t j = u0; j < u1; ++j) {
    const int64_t u = unit_in_order(j, u0, u1, step.s);
    step.unit = u;
    step.panel = has_product ? panels + u * psize : nullptr;
    if (running > 0) for_each_tile_in<NV>(bf16, running, step);
    for (int64_t row = running; row < n_rows; ++row) step.skip(row);
  }
}

// Runs the backward loop of a cell with GH = G·H gate columns: epi_at(s)
// gives the epilogue of iteration s, which writes dGh_s (count(s), GH; row
// stride gate_grad_stride(GH)), the
// gradient of the recurrent-side pre-activations, into block s of dGh
// (zeros for the rows past their end). Ends with dh0 (plus dh0_extra, when
// given). With a projection (proj, LSTM), panels hold W_hh's over the P
// features and the epilogue gets dh_s · W_hr.
template <typename T, int NV, typename EpiAt>
void backward_loop_units(const CellBackwardArgs<T>& a, int64_t GH, T* panels, const T* dGh,
                         const T* dh0_extra, EpiAt epi_at, int planned,
                         const BackwardProjection<T>* proj = nullptr) {
  const int64_t T_ = a.T_, B = a.B, H = a.H, S = state_width(a);
  const PanelMap map{S, NV, Vec<T>::size, false}, hidden_map{H, NV, Vec<T>::size, false};
  const int64_t units = map.units(), psize = map.panel_size(GH), ldg = gate_grad_stride<T>(GH);
  const int64_t proj_psize = hidden_map.panel_size(S);
  const int phases = proj != nullptr ? 2 : 1;
  const Rows rows{a.lengths, a.order, T_, B, a.reverse};
  const int64_t most_units = proj != nullptr ? hidden_map.units() : units;
  const int workers = static_cast<int>(most_units < planned ? most_units : planned);
  const int64_t row_buffer = a.bf16 ? bf16_row_buffer<NV>(GH, B) : 0;
  GemmBuffer<T> bf16_rows(row_buffer * workers);
  std::memset(bf16_rows.data, 0, sizeof(T) * row_buffer * workers);
  StepCounter done;
  run_workers(a.num_threads, workers, [&](int w, int n) {
    int64_t u0, u1, hu0 = 0, hu1 = 0;
    split_units(units, w, n, u0, u1);
    const Bf16Rows<T> my_rows = a.bf16 ? bf16_thread_rows<NV>(bf16_rows.data, w, GH, B) : Bf16Rows<T>{};
    const Bf16TileScope tiles(a.bf16);
    if (a.bf16) {
      pack_panels_bf16(map, GH, a.W_hh, S, true, u0, u1, panels);
    } else {
      pack_panels(map, GH, a.W_hh, S, true, u0, u1, panels);
    }
    if (proj != nullptr) {
      split_units(hidden_map.units(), w, n, hu0, hu1);
      if (a.bf16) {
        pack_panels_bf16(hidden_map, S, a.W_hr, H, true, hu0, hu1, proj->panels);
      } else {
        pack_panels(hidden_map, S, a.W_hr, H, true, hu0, hu1, proj->panels);
      }
    }
    for (int64_t s = T_ - 1; s >= 0; --s) {
      const int64_t running = rows.active(s), n_rows = rows.count(s);
      const int64_t i = phases * (T_ - 1 - s);
      if (proj == nullptr) {
        BackwardStep<T, NV, decltype(epi_at(s))> step;
        step.H = H;
        step.K = GH;
        step.ldg = ldg;
        step.s = s;
        step.rows = rows;
        step.dGh_next = s == T_ - 1 ? nullptr : dGh + rows.offset(s + 1) * ldg;
        step.dhT = a.dhT;
        step.dy = a.dy;
        step.bf16 = my_rows;
        step.epi = epi_at(s);
        backward_step_units<T, NV>(step, a.bf16, s < T_ - 1, panels, psize, u0, u1, running, n_rows);
        step_end(&done, w, n, i);
        continue;
      }
      // dh_s (units of the P features), kept; then the cell's epilogue from
      // dh_s W_hr (units of the H hidden units)
      T* dh_s = proj->dh + (rows.offset(s + 1) - B) * S;
      BackwardStep<T, NV, KeepRows<T>> first;
      first.H = S;
      first.K = GH;
      first.ldg = ldg;
      first.s = s;
      first.rows = rows;
      first.dGh_next = s == T_ - 1 ? nullptr : dGh + rows.offset(s + 1) * ldg;
      first.dhT = a.dhT;
      first.dy = a.dy;
      first.bf16 = my_rows;
      first.epi.P = S;
      first.epi.dh = dh_s;
      backward_step_units<T, NV>(first, a.bf16, s < T_ - 1, panels, psize, u0, u1, running, n_rows);
      step_end(&done, w, n, i);
      BackwardStep<T, NV, decltype(epi_at(s))> second;
      second.H = H;
      second.K = S;
      second.ldg = S;
      second.s = s;
      second.rows = rows;
      second.dGh_next = dh_s;
      second.bf16 = my_rows;
      second.epi = epi_at(s);
      backward_step_units<T, NV>(second, a.bf16, true, proj->panels, proj_psize, hu0, hu1, running, n_rows);
      step_end(&done, w, n, i + 1);
    }
    InitialStateGradient<T, NV> first;
    first.H = S;
    first.K = GH;
    first.ldg = ldg;
    first.rows = rows;
    first.dGh = dGh;
    first.extra = dh0_extra;
    first.dhT = a.dhT;
    first.dh0 = a.dh0;
    first.bf16 = my_rows;
    for (int64_t u = u0; u < u1; ++u) {
      first.unit = u;
      first.panel = panels + u * psize;
      for_each_tile_in<NV>(a.bf16, B, first);
    }
  });
  report_loop(done, phases * T_);
}

// Whether every tile for_each_tile<NV> makes of m rows has R·NV >= 8
// accumulators: then panel_product sums each of them in one chain over k,
// in order, whatever the tile's shape.
template <int NV>
bool one_chain_tiles(int64_t m) {
  if (m == 0) return true;
  constexpr int MR = tile_rows<NV>();
  const int64_t tiles = (m + MR - 1) / MR;
  return m / tiles * NV >= 8;
}

// The backward loop (above) in units of NV vectors of hidden units, or of
// one vector where the plan gives more workers than there are units of NV
// (H = 256 with AVX-512: 8 units of 32, 16 of 16) and that gives the same
// bits: when every step's tiles, and the initial state gradient's, are
// summed in one chain at either width. The scratch holds the panels at
// either width (one vector's take no more room).
template <typename T, int NV, typename EpiAt>
void backward_loop(const CellBackwardArgs<T>& a, int64_t GH, T* panels, const T* dGh,
                   const T* dh0_extra, EpiAt epi_at, const BackwardProjection<T>* proj = nullptr) {
  const int planned = plan_loop_threads(step_work(a, GH), a.T_, a.num_threads);
  if (proj != nullptr) {  // (units of one vector not tried with a projection)
    backward_loop_units<T, NV>(a, GH, panels, dGh, dh0_extra, epi_at, planned, proj);
    return;
  }
  if constexpr (NV > 1) {
    const PanelMap map{a.H, NV, Vec<T>::size, false};
    const Rows rows{a.lengths, a.order, a.T_, a.B, a.reverse};
    // (bfloat16's tiles and pair sums are another arithmetic: not switched)
    bool same = !a.bf16 && planned > map.units() && one_chain_tiles<1>(a.B) && one_chain_tiles<NV>(a.B);
    for (int64_t s = 0; same && s < a.T_; ++s) {
      const int64_t m = rows.active(s);
      same = one_chain_tiles<1>(m) && one_chain_tiles<NV>(m);
    }
    if (same) {
      backward_loop_units<T, 1>(a, GH, panels, dGh, dh0_extra, epi_at, planned);
      return;
    }
  }
  backward_loop_units<T, NV>(a, GH, panels, dGh, dh0_extra, epi_at, planned);
}

// After the backward loop, with dG the pre-activation gradients on the
// input side and dGh those on the recurrent side (the same array but for
// GRU), blocks 0 … T-1 (N = offset(T) rows, zeros past each row's end):
//   dx = dG · W_ih      dW_ih = dGᵀ · X
//   dW_hh = Σ_s dGh_sᵀ · h_s = dGhᵀ · ws_h[blocks 0 … T-1]
// (the bias gradients Σ_rows dG, dGh were summed by the epilogues), with
// bfloat16 operands in precision "bf16".
// Unless in batch order, X is gathered by block, then overwritten by dx by
// block (dW_ih first), which is scattered back.
template <typename T, int NV>
void input_and_weight_gradients(const CellBackwardArgs<T>& a, int64_t GH,
                                const BackwardScratch<T, NV>& scratch, const T* dGh) {
  const int64_t B = a.B, D = a.D, S = state_width(a);
  const int nt = a.num_threads;
  const T* dG = scratch.dG;
  const Rows rows{a.lengths, a.order, a.T_, B, a.reverse};
  const int64_t N = rows.offset(a.T_), ldg = scratch.ldg;
  const T* X = a.x;
  T* dX = a.dx;
  if (!rows.identity()) {
    gather_inputs(rows, a.x, 0, a.T_, D, scratch.x_it);
    X = scratch.x_it;
    dX = scratch.x_it;
  }
  gemm_in<T>(a.bf16, true, false, GH, D, N, T(1), dG, ldg, X, D, T(0), a.dW_ih, D, nt);
  gemm_in<T>(a.bf16, false, false, N, D, GH, T(1), dG, ldg, a.W_ih, D, T(0), dX, D, nt);
  gemm_in<T>(a.bf16, true, false, GH, S, N, T(1), dGh, ldg, a.ws_h, S, T(0), a.dW_hh, S, nt);
  if (!rows.identity()) {
    // dx[t, b] = row r of block s for the iteration s that ran t; 0 past the end
    zero_padding(rows, D, a.dx);
    for (int64_t s = 0; s < a.T_; ++s) {
      const T* block = dX + rows.offset(s) * D;
      for (int64_t r = 0, n = rows.active(s); r < n; ++r) {
        const int64_t t = rows.time(s, r);
        std::memcpy(a.dx + (t * B + rows.batch(r)) * D, block + r * D, sizeof(T) * D);
      }
    }
  }
}

}  // namespace SEQCORE_ISA_NS
}  // namespace seqcore
