// The stepper in precision "int8" (StepperSizes::int8, float only; generic
// code, see isa/kernels_impl.h): the products of cells/panel_int8.h, the
// epilogues of stepper.h (stepper_epilogue), the head in float32. Each row's
// logits are, bit for bit, those of the model's forward in "int8" for that
// row alone: every product quantizes its rows one by one (x, the layer
// below's output, h) as cells/forward_int8.h does, and dequantizes in the
// same order; layer 0's table holds each id's product as a step makes it.
// A step's threads (at most kInt8StepperThreads) each quantize the rows they
// read into their own row buffer, so a layer needs no meeting beyond the
// float32 step's.
namespace seqcore {
namespace SEQCORE_ISA_NS {

constexpr int kInt8StepperThreads = 8;

// Offsets (float elements) of the buffer's parts, each on a 64-byte
// boundary; the packed weights of each layer (W_hh, and W_ih but layer 0's
// when in the table) in Int8CellLayout's order, as bytes.
struct StepperLayoutInt8 {
  int64_t weights, weights_block, W_ih0, b_ih, b_hh, head_W, head_b, embedding, table, x0, gx, h_out, h, c, rows,
      rows_block, total;
  int64_t ih_bytes, hh_bytes;  // one layer's packed W_ih (K = H) and W_hh
  PanelMap map;

  explicit StepperLayoutInt8(const StepperSizes& s) : map(stepper_map<float>(s.cell, s.H)) {
    const int64_t G = gate_count(s.cell), GH = G * s.H, BH = s.B * s.H;
    const int64_t cols = map.units() * map.NV * map.V;
    // per layer: panels of W_ih (K = H; layer 0: D, kept in W_ih0), W_hh, then scales and compensations
    ih_bytes = map.units() * int8_panel_bytes(map, s.H);
    hh_bytes = map.units() * int8_panel_bytes(map, s.H);
    int64_t at = 0;
    auto take = [&](int64_t n) {
      const int64_t here = at;
      at += (n + 15) / 16 * 16;
      return here;
    };
    weights_block = (ih_bytes + hh_bytes + 4 * cols * 4 + 63) / 64 * 16;  // floats
    weights = take(s.L * weights_block);
    W_ih0 = take(s.table ? 0 : (map.units() * int8_panel_bytes(map, s.D) + 2 * cols * 4 + 63) / 64 * 16);
    b_ih = take(s.L * GH);
    b_hh = take(s.cell == Cell::gru ? s.L * GH : 0);
    head_W = take(s.V * s.H);
    head_b = take(s.head_bias ? s.V : 0);
    embedding = take(s.embedding && !s.table ? s.V * s.D : 0);
    table = take(s.table ? s.V * GH : 0);
    x0 = take(s.B * s.D);
    gx = take(s.B * GH);
    h_out = take(s.L * BH);
    h = take(s.L * BH);
    c = take(s.cell == Cell::lstm ? s.L * BH : 0);
    // each thread's row buffer: the rows of h and of the layer's input, quantized, and their scales
    const int64_t K = int8_depth(s.D > s.H ? s.D : s.H);
    rows_block = (2 * int8_buffer_rows(s.B) * K + 8 * s.B + 63) / 64 * 16;
    rows = take(kInt8StepperThreads * rows_block);
    total = at;
  }

  // Layer l's W_ih (l >= 1) and W_hh, packed; layer 0's W_ih (without the table).
  Int8Panels ih(const float* buf, int64_t l, int64_t H) const {
    const uint8_t* p = reinterpret_cast<const uint8_t*>(buf + weights + l * weights_block);
    const int64_t cols = map.units() * map.NV * map.V;
    return Int8Panels{reinterpret_cast<const int8_t*>(p), reinterpret_cast<const float*>(p + ih_bytes + hh_bytes),
                      reinterpret_cast<const int32_t*>(p + ih_bytes + hh_bytes + 2 * cols * 4), H};
  }
  Int8Panels hh(const float* buf, int64_t l, int64_t H) const {
    const uint8_t* p = reinterpret_cast<const uint8_t*>(buf + weights + l * weights_block);
    const int64_t cols = map.units() * map.NV * map.V;
    return Int8Panels{reinterpret_cast<const int8_t*>(p + ih_bytes),
                      reinterpret_cast<const float*>(p + ih_bytes + hh_bytes + cols * 4),
                      reinterpret_cast<const int32_t*>(p + ih_bytes + hh_bytes + 3 * cols * 4), H};
  }
  Int8Panels ih0(const float* buf, int64_t D) const {
    const uint8_t* p = reinterpret_cast<const uint8_t*>(buf + W_ih0);
    const int64_t cols = map.units() * map.NV * map.V, bytes = map.units() * int8_panel_bytes(map, D);
    return Int8Panels{reinterpret_cast<const int8_t*>(p), reinterpret_cast<const float*>(p + bytes),
                      reinterpret_cast<const int32_t*>(p + bytes + cols * 4), D};
  }
};

inline int64_t stepper_size_int8(const StepperSizes& s) { return StepperLayoutInt8(s).total; }

inline int64_t stepper_state_int8(const StepperSizes& s, int which) {
  const StepperLayoutInt8 at(s);
  return which == 0 ? at.h : at.c;
}

// Packs m's parts (panels, scales, comp) from W (N, K) into their places.
inline void stepper_pack_int8_matrix(const PanelMap& map, int64_t K, const float* W, const Int8Panels& m) {
  int8_pack_panels(map, K, W, K, 0, map.units(), const_cast<int8_t*>(m.panels), const_cast<float*>(m.scales),
                   const_cast<int32_t*>(m.comp));
}

// Rows [0, n) of A (n, K) quantized into a row buffer; their scales.
inline void stepper_quantize_rows(const float* A, int64_t n, int64_t K, uint8_t* rows, float* scales) {
  const int64_t Kp = int8_depth(K);
  for (int64_t r = 0; r < n; ++r) scales[r] = int8_quantize_row(A + r * K, K, Kp, rows + r * Kp);
}

// gx's columns of units [u0, u1) = the rows' product with m, dequantized.
template <int NV>
void stepper_int8_columns(const PanelMap& map, const Int8Panels& m, int64_t u0, int64_t u1, const uint8_t* rows,
                          const float* scales, int64_t n, float* gx, int64_t GH) {
  const int64_t Kp = int8_depth(m.K);
  for (int64_t u = u0; u < u1; ++u)
    int8_unit_rows<NV>(m, map, u, rows, Kp, scales, n,
                       [&](int64_t row, const Vec<float>* acc) { int8_store_columns<NV>(map, u, acc, gx + row * GH); });
}

template <int NV>
void stepper_pack_int8_nv(const StepperSizes& s, const StepperWeights<float>& w, float* buf) {
  const StepperLayoutInt8 at(s);
  const int64_t GH = gate_count(s.cell) * s.H, H = s.H;
  for (int64_t l = 0; l < s.L; ++l) {
    if (l > 0) stepper_pack_int8_matrix(at.map, H, w.W_ih[l], at.ih(buf, l, H));
    stepper_pack_int8_matrix(at.map, H, w.W_hh[l], at.hh(buf, l, H));
    std::memcpy(buf + at.b_ih + l * GH, w.b_ih[l], sizeof(float) * GH);
    if (s.cell == Cell::gru) std::memcpy(buf + at.b_hh + l * GH, w.b_hh[l], sizeof(float) * GH);
  }
  std::memcpy(buf + at.head_W, w.head_W, sizeof(float) * s.V * H);
  if (s.head_bias) std::memcpy(buf + at.head_b, w.head_b, sizeof(float) * s.V);
  if (s.table) {
    // each id's row as a step computes it (the forward's input projection of that row)
    const int64_t units = at.map.units(), Kp = int8_depth(s.D);
    const int64_t cols = units * at.map.NV * at.map.V, bytes = units * int8_panel_bytes(at.map, s.D);
    GemmBuffer<uint8_t> packed(bytes + 2 * cols * 4);
    const Int8Panels m{reinterpret_cast<const int8_t*>(packed.data),
                       reinterpret_cast<const float*>(packed.data + bytes),
                       reinterpret_cast<const int32_t*>(packed.data + bytes + cols * 4), s.D};
    stepper_pack_int8_matrix(at.map, s.D, w.W_ih[0], m);
    GemmBuffer<uint8_t> rows(16 * Kp);
    std::memset(rows.data, 0, static_cast<size_t>(16 * Kp));
    const Int8TileScope tiles;
    for (int64_t v = 0; v < s.V; ++v) {
      stepper_inputs(s, w.embedding, &v, 1, buf + at.x0);
      float scale;
      stepper_quantize_rows(buf + at.x0, 1, s.D, rows.data, &scale);
      stepper_int8_columns<NV>(at.map, m, 0, units, rows.data, &scale, 1, buf + at.table + v * GH, GH);
    }
  } else {
    stepper_pack_int8_matrix(at.map, s.D, w.W_ih[0], at.ih0(buf, s.D));
    if (s.embedding) std::memcpy(buf + at.embedding, w.embedding, sizeof(float) * s.V * s.D);
  }
  std::memset(buf + at.h, 0, sizeof(float) * s.L * s.B * H);
  if (s.cell == Cell::lstm) std::memset(buf + at.c, 0, sizeof(float) * s.L * s.B * H);
}

inline void stepper_pack_int8(const StepperSizes& s, const StepperWeights<float>& w, float* buf) {
  switch (s.cell) {
    case Cell::rnn: stepper_pack_int8_nv<kRnnForwardNV>(s, w, buf); break;
    case Cell::lstm: stepper_pack_int8_nv<kLstmForwardNV>(s, w, buf); break;
    case Cell::gru: stepper_pack_int8_nv<kGruForwardNV>(s, w, buf); break;
  }
}

template <int NV>
void stepper_step_int8_nv(const StepperSizes& s, float* buf, const int64_t* ids, int64_t rows, float* logits,
                          int num_threads, bool top_first) {
  const StepperLayoutInt8 at(s);
  const int64_t G = gate_count(s.cell), GH = G * s.H, H = s.H, BH = s.B * H, V = s.V;
  const PanelMap& map = at.map;
  const int64_t units = map.units(), Hp = int8_depth(H), Dp = int8_depth(s.D);
  if (!s.table) {
    stepper_inputs(s, s.embedding ? buf + at.embedding : static_cast<const float*>(nullptr), ids, rows, buf + at.x0);
  }
  int nt = stepper_threads(s, rows, units, num_threads);
  nt = nt < kInt8StepperThreads ? nt : kInt8StepperThreads;
  StepCounter done;
  run_workers(num_threads, nt, [&](int tid, int team) {
    int64_t meetings = 0;
    const Int8TileScope tiles;
    int64_t u0, u1;
    split_units(units, tid, team, u0, u1);
    const int64_t j0 = u0 * map.unit_width() < H ? u0 * map.unit_width() : H;
    const int64_t j1 = u1 * map.unit_width() < H ? u1 * map.unit_width() : H;
    // this thread's row buffers: the input's rows, then h's, then their scales
    uint8_t* in_rows = reinterpret_cast<uint8_t*>(buf + at.rows + tid * at.rows_block);
    const int64_t K = Dp > Hp ? Dp : Hp;
    uint8_t* h_rows = in_rows + int8_buffer_rows(s.B) * K;
    float* in_scales = reinterpret_cast<float*>(h_rows + int8_buffer_rows(s.B) * K);
    float* h_scales = in_scales + s.B;
    float* gx = buf + at.gx;
    for (int64_t q = 0; q < G; ++q) {
      const int64_t col = q * H + j0;
      if (s.table) {
        for (int64_t r = 0; r < rows; ++r)
          std::memcpy(gx + r * GH + col, buf + at.table + ids[r] * GH + col, sizeof(float) * (j1 - j0));
      }
    }
    if (!s.table && u1 > u0) {
      stepper_quantize_rows(buf + at.x0, rows, s.D, in_rows, in_scales);
      stepper_int8_columns<NV>(map, at.ih0(buf, s.D), u0, u1, in_rows, in_scales, rows, gx, GH);
    }
    for (int64_t l = 0; l < s.L; ++l) {
      float* h = buf + at.h + l * BH;
      float* h_out = buf + at.h_out + l * BH;
      if (l > 0 && u1 > u0) {
        stepper_quantize_rows(h_out - BH, rows, H, in_rows, in_scales);
        stepper_int8_columns<NV>(map, at.ih(buf, l, H), u0, u1, in_rows, in_scales, rows, gx, GH);
      }
      if (u1 > u0) stepper_quantize_rows(h, rows, H, h_rows, h_scales);
      const Int8Panels hh = at.hh(buf, l, H);
      stepper_epilogue(s, at, buf, l, gx, [&](const auto& e, auto) {
        for (int64_t j = u0; j < u1; ++j) {
          const int64_t u = unit_in_order(j, u0, u1, top_first ? 1 : 0);
          int8_unit_rows<NV>(hh, map, u, h_rows, Hp, h_scales, rows, [&](int64_t row, const Vec<float>* acc) {
            e.apply(row, u, acc, h_out + row * H);
          });
        }
      });
      // every thread's products have read h: the new state goes in (own columns)
      step_end(&done, tid, team, meetings++);
      for (int64_t r = 0; r < rows; ++r) std::memcpy(h + r * H + j0, h_out + r * H + j0, sizeof(float) * (j1 - j0));
    }
    int64_t v0, v1;
    split_units(V, tid, team, v0, v1);
    rows_dots(rows, v1 - v0, H, buf + at.h_out + (s.L - 1) * BH, H, buf + at.head_W + v0 * H,
              s.head_bias ? buf + at.head_b + v0 : static_cast<const float*>(nullptr), logits + v0, V);
  });
}

inline void stepper_step_int8(const StepperSizes& s, float* buf, const int64_t* ids, int64_t rows, float* logits,
                              int num_threads, bool top_first) {
  switch (s.cell) {
    case Cell::rnn: stepper_step_int8_nv<kRnnForwardNV>(s, buf, ids, rows, logits, num_threads, top_first); break;
    case Cell::lstm: stepper_step_int8_nv<kLstmForwardNV>(s, buf, ids, rows, logits, num_threads, top_first); break;
    case Cell::gru: stepper_step_int8_nv<kGruForwardNV>(s, buf, ids, rows, logits, num_threads, top_first); break;
  }
}

}  // namespace SEQCORE_ISA_NS
}  // namespace seqcore
