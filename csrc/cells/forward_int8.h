// The forward of a cell in precision "int8" (inference, float32; generic
// code, see isa/kernels_impl.h): the products of cells/panel_int8.h fed to
// the cells' own forward epilogues (rnn.h, lstm.h, gru.h), as the float32
// and bfloat16 products are in cells/loops.h.
//
// The weights are quantized and packed once (int8_pack, into a buffer the
// caller keeps: the model's cache), W_ih and W_hh each in the panels of the
// cell's forward map. A call then, for each chunk of steps: quantizes the
// rows of x, Gx = dequantized x_q · W_ih_qᵀ (threads split the units); and
// in one parallel region over the chunk's iterations, each worker quantizes
// the running rows of h (all of them, into its own row buffer: no meeting
// for that), multiplies them by its units' W_hh panels and runs the
// epilogue; the workers meet once an iteration, as the float32 loop's.
namespace seqcore {
namespace SEQCORE_ISA_NS {

template <int NV>
struct Int8CellLayout {
  PanelMap map;
  int64_t ih_panels, hh_panels, ih_scales, hh_scales, ih_comp, hh_comp, total;  // byte offsets

  Int8CellLayout(Cell cell, int64_t D, int64_t H) : map(int8_map(cell, H)) {
    const int64_t cols = map.units() * map.NV * map.V;
    int64_t at = 0;
    auto take = [&](int64_t bytes) {
      const int64_t here = at;
      at += (bytes + 63) / 64 * 64;
      return here;
    };
    ih_panels = take(map.units() * int8_panel_bytes(map, D));
    hh_panels = take(map.units() * int8_panel_bytes(map, H));
    ih_scales = take(cols * 4);
    hh_scales = take(cols * 4);
    ih_comp = take(cols * 4);
    hh_comp = take(cols * 4);
    total = at;
  }

  static PanelMap int8_map(Cell cell, int64_t H) {
    return cell == Cell::lstm ? lstm_forward_map<float>(H) : cell == Cell::gru ? gru_forward_map<float>(H)
                                                                              : rnn_forward_map<float>(H);
  }

  Int8Panels ih(const uint8_t* buf, int64_t D) const {
    return Int8Panels{reinterpret_cast<const int8_t*>(buf + ih_panels), reinterpret_cast<const float*>(buf + ih_scales),
                      reinterpret_cast<const int32_t*>(buf + ih_comp), D};
  }
  Int8Panels hh(const uint8_t* buf, int64_t H) const {
    return Int8Panels{reinterpret_cast<const int8_t*>(buf + hh_panels), reinterpret_cast<const float*>(buf + hh_scales),
                      reinterpret_cast<const int32_t*>(buf + hh_comp), H};
  }
};

template <int NV>
void int8_pack_cell(Cell cell, int64_t D, int64_t H, const float* W_ih, const float* W_hh, uint8_t* buf,
                    int num_threads) {
  const Int8CellLayout<NV> at(cell, D, H);
  const PanelMap& map = at.map;
  const int64_t units = map.units();
  run_workers(num_threads, static_cast<int>(units < num_threads ? units : num_threads), [&](int w, int n) {
    int64_t u0, u1;
    split_units(units, w, n, u0, u1);
    int8_pack_panels(map, D, W_ih, D, u0, u1, reinterpret_cast<int8_t*>(buf + at.ih_panels),
                     reinterpret_cast<float*>(buf + at.ih_scales), reinterpret_cast<int32_t*>(buf + at.ih_comp));
    int8_pack_panels(map, H, W_hh, H, u0, u1, reinterpret_cast<int8_t*>(buf + at.hh_panels),
                     reinterpret_cast<float*>(buf + at.hh_scales), reinterpret_cast<int32_t*>(buf + at.hh_comp));
  });
}

// Gx (n, GH) = rows [0, n) of X (n, D) quantized, times W_ih's panels,
// dequantized; columns as the map says (lanes past H not written).
template <int NV>
void int8_project_inputs(const PanelMap& map, const Int8Panels& ih, const float* X, int64_t n, int64_t D,
                         int64_t GH, uint8_t* xq, float* xs, float* Gx, int num_threads) {
  const int64_t Dp = int8_depth(D), units = map.units();
  for (int64_t r = 0; r < n; ++r) xs[r] = int8_quantize_row(X + r * D, D, Dp, xq + r * Dp);
  const int nt = static_cast<int>(plan_product_threads(n, GH, D, num_threads));
  run_workers(num_threads, static_cast<int>(units < nt ? units : nt), [&](int w, int team) {
    const Int8TileScope tiles;
    int64_t u0, u1;
    split_units(units, w, team, u0, u1);
    for (int64_t u = u0; u < u1; ++u)
      int8_unit_rows<NV>(ih, map, u, xq, Dp, xs, n,
                         [&](int64_t row, const Vec<float>* acc) { int8_store_columns<NV>(map, u, acc, Gx + row * GH); });
  });
}

// The loop; epi_at(gx, h_prev, h_out) gives an iteration's epilogue.
template <int NV, typename EpiAt>
void forward_loop_int8(const CellForwardArgs<float>& a, int64_t GH, const Int8CellLayout<NV>& at,
                       const uint8_t* weights, float* h_pair, EpiAt epi_at) {
  const int64_t T_ = a.T_, B = a.B, D = a.D, H = a.H;
  const PanelMap& map = at.map;
  const Int8Panels ih = at.ih(weights, D), hh = at.hh(weights, H);
  const int64_t units = map.units(), Dp = int8_depth(D), Hp = int8_depth(H);
  const Rows rows{a.lengths, a.order, T_, B, a.reverse};
  const StateSlots<float> slots{nullptr, h_pair, rows, H};
  to_kernel_rows(rows, a.h0, H, slots.in(0));
  zero_padding(rows, H, a.y);
  const int64_t chunk = inference_chunk_steps(T_, B);
  const int workers = loop_workers(units, loop_step_work(B, GH, H), chunk, a.num_threads);
  const int64_t row_bytes = int8_buffer_rows(B) * Hp + 64;
  GemmBuffer<float> gx(chunk * B * GH);
  GemmBuffer<float> x_it(rows.identity() ? 0 : chunk * B * D);
  GemmBuffer<uint8_t> xq(int8_buffer_rows(chunk * B) * Dp);
  GemmBuffer<float> xs(chunk * B);
  GemmBuffer<uint8_t> hq(row_bytes * workers);
  GemmBuffer<float> hs(B * workers);
  std::memset(xq.data, 0, static_cast<size_t>(int8_buffer_rows(chunk * B) * Dp));
  std::memset(hq.data, 0, static_cast<size_t>(row_bytes * workers));
  for (int64_t s0 = 0; s0 < T_; s0 += chunk) {
    const int64_t steps = T_ - s0 < chunk ? T_ - s0 : chunk;
    const int64_t base = rows.offset(s0), n_rows = rows.offset(s0 + steps) - base;
    const float* X = a.x + s0 * B * D;
    if (!rows.identity()) {
      gather_inputs(rows, a.x, s0, steps, D, x_it.data);
      X = x_it.data;
    }
    int8_project_inputs<NV>(map, ih, X, n_rows, D, GH, xq.data, xs.data, gx.data, a.num_threads);
    StepCounter done;
    run_workers(a.num_threads, workers, [&](int w, int n) {
      const Int8TileScope tiles;
      int64_t u0, u1;
      split_units(units, w, n, u0, u1);
      uint8_t* my_rows = hq.data + w * row_bytes;
      float* my_scales = hs.data + w * B;
      for (int64_t i = 0; i < steps; ++i) {
        const int64_t s = s0 + i, running = rows.active(s);
        const float* h_prev = slots.in(s);
        const auto epi = epi_at(gx.data + (rows.offset(s) - base) * GH, h_prev, slots.out(s));
        if (u1 > u0)
          for (int64_t r = 0; r < running; ++r)
            my_scales[r] = int8_quantize_row(h_prev + r * H, H, Hp, my_rows + r * Hp);
        for (int64_t j = u0; j < u1; ++j) {
          const int64_t u = unit_in_order(j, u0, u1, s);
          int8_unit_rows<NV>(hh, map, u, my_rows, Hp, my_scales, running, [&](int64_t row, const Vec<float>* acc) {
            const int64_t t = rows.time(s, row);
            epi.apply(row, u, acc, a.y + (t * B + rows.batch(row)) * H);
          });
          for (int64_t row = running; row < B; ++row) epi.carry(row, u);
        }
        step_end(&done, w, n, i);
      }
    });
    report_loop(done, steps);
  }
  to_batch_rows(rows, slots.out(T_ - 1), H, a.hT);
}

inline int64_t int8_weights_size(Cell cell, int64_t D, int64_t H) {
  switch (cell) {
    case Cell::rnn: return Int8CellLayout<kRnnForwardNV>(cell, D, H).total;
    case Cell::lstm: return Int8CellLayout<kLstmForwardNV>(cell, D, H).total;
    case Cell::gru: return Int8CellLayout<kGruForwardNV>(cell, D, H).total;
  }
  return 0;
}

inline void int8_pack(Cell cell, int64_t D, int64_t H, const float* W_ih, const float* W_hh, uint8_t* buf,
                      int num_threads) {
  switch (cell) {
    case Cell::rnn: int8_pack_cell<kRnnForwardNV>(cell, D, H, W_ih, W_hh, buf, num_threads); break;
    case Cell::lstm: int8_pack_cell<kLstmForwardNV>(cell, D, H, W_ih, W_hh, buf, num_threads); break;
    case Cell::gru: int8_pack_cell<kGruForwardNV>(cell, D, H, W_ih, W_hh, buf, num_threads); break;
  }
}

// One layer, one direction, inference in precision "int8"; weights: int8_pack's.
inline void cell_forward_int8(Cell cell, const CellForwardArgs<float>& a, const uint8_t* weights) {
  const int64_t B = a.B, H = a.H;
  GemmBuffer<float> state(3 * B * H);  // the two h buffers, then c (LSTM)
  float* h_pair = state.data;
  if (cell == Cell::lstm) {
    const Rows rows{a.lengths, a.order, a.T_, B, a.reverse};
    float* c = state.data + 2 * B * H;
    to_kernel_rows(rows, a.c0, H, c);
    forward_loop_int8<kLstmForwardNV>(a, 4 * H, Int8CellLayout<kLstmForwardNV>(cell, a.D, H), weights, h_pair,
                                      [&](float* gx, const float* h_prev, float* h_out) {
                                        return lstm_forward_epilogue(a, gx, h_prev, h_out, c, c);
                                      });
    to_batch_rows(rows, c, H, a.cT);
  } else if (cell == Cell::gru) {
    forward_loop_int8<kGruForwardNV>(a, 3 * H, Int8CellLayout<kGruForwardNV>(cell, a.D, H), weights, h_pair,
                                     [&](float* gx, const float* h_prev, float* h_out) {
                                       return gru_forward_epilogue(a, gx, h_prev, h_out);
                                     });
  } else {
    // relu: the same loop, the epilogue's other nonlinearity (a compile-time flag)
    const auto run = [&](auto relu) {
      forward_loop_int8<kRnnForwardNV>(a, H, Int8CellLayout<kRnnForwardNV>(cell, a.D, H), weights, h_pair,
                                       [&](float* gx, const float* h_prev, float* h_out) {
                                         return rnn_forward_epilogue<float, decltype(relu)::value>(a, gx, h_prev,
                                                                                                   h_out);
                                       });
    };
    if (a.relu) {
      run(std::true_type{});
    } else {
      run(std::false_type{});
    }
  }
}

// For tests: S (M, N) int32 = the exact sums of A (M, K) and W (N, K), both
// quantized per row (sa (M,), sw (N,) their scales), through the packed
// panels of a plain map of NV (1, 3 or 4) vectors a unit.
template <int NV>
void int8_sums_nv(int64_t M, int64_t N, int64_t K, const float* A, const float* W, int32_t* S, float* sa, float* sw,
                  int num_threads) {
  constexpr int V = Vec<float>::size;
  const PanelMap map{N, NV, V, false};
  const int64_t units = map.units(), Kp = int8_depth(K);
  GemmBuffer<int8_t> panels(units * int8_panel_bytes(map, K));
  GemmBuffer<float> scales(units * NV * V);
  GemmBuffer<int32_t> comp(units * NV * V);
  GemmBuffer<uint8_t> rows(int8_buffer_rows(M) * Kp);
  std::memset(rows.data, 0, static_cast<size_t>(int8_buffer_rows(M) * Kp));
  int8_pack_panels(map, K, W, K, 0, units, panels.data, scales.data, comp.data);
  for (int64_t n = 0; n < N; ++n) sw[n] = scales.data[n];  // a plain map: column n at n
  for (int64_t r = 0; r < M; ++r) sa[r] = int8_quantize_row(A + r * K, K, Kp, rows.data + r * Kp);
  const Int8Panels m{panels.data, scales.data, comp.data, K};
  run_workers(num_threads, static_cast<int>(units < num_threads ? units : num_threads), [&](int w, int team) {
    const Int8TileScope tiles;
    int64_t u0, u1;
    split_units(units, w, team, u0, u1);
    for (int64_t u = u0; u < u1; ++u)
      int8_unit_sums<NV>(m, map, u, rows.data, Kp, M, [&](int64_t r, const int32_t* s) {
        for (int i = 0; i < NV * V && u * NV * V + i < N; ++i) S[r * N + u * NV * V + i] = s[i];
      });
  });
}

inline void int8_sums(int64_t M, int64_t N, int64_t K, const float* A, const float* W, int32_t* S, float* sa,
                      float* sw, int nv, int num_threads) {
  if (nv == 4) {
    int8_sums_nv<4>(M, N, K, A, W, S, sa, sw, num_threads);
  } else if (nv == 3) {
    int8_sums_nv<3>(M, N, K, A, W, S, sa, sw, num_threads);
  } else {
    int8_sums_nv<1>(M, N, K, A, W, S, sa, sw, num_threads);
  }
}

}  // namespace SEQCORE_ISA_NS
}  // namespace seqcore
