// Generation: a language model prepared for stepping one token at a time
// (generic code, see isa/kernels_impl.h). The stepper's buffer holds a copy
// of every weight, W_hh packed once as the forward packs it per call, and
// the state; a step runs embedding -> every layer -> head for B rows with
// no allocation.
//
// Each row gets, bit for bit, the logits a one-row forward gives it
// (LanguageModel.forward on ids (1, 1) with the state carried), whatever
// the number of rows: the input projections and the head are the one-row
// product's dot products (gemm_vector_dots, rows_dots below), and the
// recurrent product keeps the one-row tile's chains (panel_chains<1, NV>)
// for tiles of several rows. So a batch of samples is a batch of single
// samples, and sampling gives the text the step-by-step forward gives.
// In precision "bf16" (StepperSizes::bf16) the same holds against the bf16
// forward: stepper_bf16.h's products, stepper_product_bf16 below; in "int8"
// against the int8 forward: stepper_int8.h (included at the end).
// A step's threads (run_workers) meet on a step counter (cells/team.h).
#include <type_traits>

#include "generate/stepper_bf16.h"

namespace seqcore {
namespace SEQCORE_ISA_NS {

// ---------------------------------------------------------------------------
// products

// C[i][j] = Σ_k A[i·lda + k] W[j·K + k] (+ bias[j]) for rows i < M, j < N;
// W (N, K) read in place. Every C[i][j] is the chain gemm_vector_dots makes
// for it (vectors along k, the last one partial, then a sum across lanes),
// so each row gets what a one-row gemm gives it, whatever M. Tiles of four
// rows of A times four rows of W share the loads; W is read once, a block
// of about 16 KB at a time that stays in L1 while every row of A passes.
template <typename T>
void rows_dots(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* W,
               const T* bias, T* C, int64_t ldc) {
  constexpr int V = Vec<T>::size, AR = 4, WR = 4;
  const int64_t k_full = K / V * V;
  const int k_rest = static_cast<int>(K - k_full);
  const int64_t block_rows = (16384 / static_cast<int64_t>(sizeof(T)) / (K > 0 ? K : 1)) / WR * WR;
  const int64_t JB = block_rows > WR ? block_rows : WR;
  for (int64_t jb = 0; jb < N; jb += JB) {
    const int64_t jb1 = N - jb < JB ? N : jb + JB;
    for (int64_t i0 = 0; i0 < M; i0 += AR) {
      const int ar = static_cast<int>(M - i0 < AR ? M - i0 : AR);
      const T* a[AR];
      for (int i = 0; i < AR; ++i) a[i] = A + (i0 + (i < ar ? i : 0)) * lda;  // past M: row i0 again
      for (int64_t j0 = jb; j0 < jb1; j0 += WR) {
        const int wr = static_cast<int>(jb1 - j0 < WR ? jb1 - j0 : WR);
        const T* w[WR];
        for (int r = 0; r < WR; ++r) w[r] = W + (j0 + (r < wr ? r : 0)) * K;
        Vec<T> acc[AR][WR];
        for (int i = 0; i < AR; ++i)
          for (int r = 0; r < WR; ++r) acc[i][r] = Vec<T>::zero();
        for (int64_t k = 0; k < k_full; k += V) {
          Vec<T> wk[WR];
          for (int r = 0; r < WR; ++r) wk[r] = Vec<T>::load(w[r] + k);
          for (int i = 0; i < AR; ++i) {
            const Vec<T> ak = Vec<T>::load(a[i] + k);
            for (int r = 0; r < WR; ++r) acc[i][r] = fmadd(ak, wk[r], acc[i][r]);
          }
        }
        if (k_rest > 0) {
          Vec<T> wk[WR];
          for (int r = 0; r < WR; ++r) wk[r] = Vec<T>::load_partial(w[r] + k_full, k_rest);
          for (int i = 0; i < AR; ++i) {
            const Vec<T> ak = Vec<T>::load_partial(a[i] + k_full, k_rest);
            for (int r = 0; r < WR; ++r) acc[i][r] = fmadd(ak, wk[r], acc[i][r]);
          }
        }
        for (int i = 0; i < ar; ++i) {
          T* c = C + (i0 + i) * ldc + j0;
          for (int r = 0; r < wr; ++r) {
            const T dot = reduce_add(acc[i][r]);
            c[r] = bias != nullptr ? dot + bias[j0 + r] : dot;  // numpy's y += bias, after the product
          }
        }
      }
    }
  }
}

// The sums of panel_product<T, R, NV, KS> (chain s: the k ≡ s mod KS in
// order, then the chains added in order), one chain after the other for all
// R rows: the same arithmetic with R·NV accumulators instead of KS·R·NV, so
// a tile takes more rows and each line of the panel serves all of them.
template <typename T, int R, int NV, int KS>
inline void panel_product_by_chain(int64_t K, const T* A, int64_t lda, const T* P, Vec<T> (&acc)[R][NV]) {
  constexpr int V = Vec<T>::size;
  for (int s = 0; s < KS; ++s) {
    Vec<T> chain[R][NV];
    for (int r = 0; r < R; ++r)
      for (int q = 0; q < NV; ++q) chain[r][q] = Vec<T>::zero();
    for (int64_t k = s; k < K; k += KS) {
      Vec<T> w[NV];
      for (int q = 0; q < NV; ++q) w[q] = Vec<T>::load(P + (k * NV + q) * V);
      for (int r = 0; r < R; ++r) {
        const Vec<T> a = Vec<T>::broadcast(A[r * lda + k]);
        for (int q = 0; q < NV; ++q) chain[r][q] = fmadd(a, w[q], chain[r][q]);
      }
    }
    for (int r = 0; r < R; ++r)
      for (int q = 0; q < NV; ++q) acc[r][q] = s == 0 ? chain[r][q] : acc[r][q] + chain[r][q];
  }
}

// panel_product_bf16<R, NV> with the chains of a one-row tile (KS), so that
// each row gets what a one-row forward gives it: the AMX blocks (each row's
// sums its own), then the pairs of k past them in KS chains, one chain
// after the other for all R rows (as panel_product_by_chain).
template <int R, int NV, int KS>
inline void stepper_product_bf16(int64_t K, const Bf16Rows<float>& b, int64_t row0, const float* P,
                                 Vec<float> (&acc)[R][NV]) {
#if defined(__AVX512BF16__)
  constexpr int V = Vec<float>::size;
  const int64_t kp_n = (K + 1) / 2, stride = b.stride;
  const uint32_t* a = reinterpret_cast<const uint32_t*>(b.rows) + row0 * stride;
  const uint32_t* p = reinterpret_cast<const uint32_t*>(P);
  int64_t kp_start = 0;
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < NV; ++q) acc[r][q] = Vec<float>::zero();
#if defined(__AMX_BF16__)
  if (K >= 32) {
    for (int r0 = 0; r0 < R; r0 += 16) {
      amx_panel_blocks<NV>(K / 32, a + r0 * stride, stride, p, b.sums);
      for (int r = r0; r < R && r < r0 + 16; ++r)
        for (int q = 0; q < NV; ++q) acc[r][q] = Vec<float>::load(b.sums + q * 256 + (r - r0) * 16);
    }
    kp_start = K / 32 * 16;
  }
#endif
  if (kp_start == kp_n) {  // chain 0 alone: + 0 for each other chain, which only makes -0 +0
    if (KS > 1)
      for (int r = 0; r < R; ++r)
        for (int q = 0; q < NV; ++q) acc[r][q] = acc[r][q] + Vec<float>::zero();
    return;
  }
  // panel_product_bf16's remainder: chain s takes kp_start + s, + KS, …;
  // chain 0 starts from the AMX sums; then the chains are added in order.
  for (int s = 0; s < KS; ++s) {
    __m512 chain[R][NV];
    for (int r = 0; r < R; ++r)
      for (int q = 0; q < NV; ++q) chain[r][q] = s == 0 ? acc[r][q].v : _mm512_setzero_ps();
    for (int64_t kp = kp_start + s; kp < kp_n; kp += KS) {
      __m512bh w[NV];
      for (int q = 0; q < NV; ++q) w[q] = (__m512bh)_mm512_loadu_si512(p + (kp * NV + q) * V);
      for (int r = 0; r < R; ++r) {
        const __m512bh x = (__m512bh)_mm512_set1_epi32(static_cast<int>(a[r * stride + kp]));
        for (int q = 0; q < NV; ++q) chain[r][q] = _mm512_dpbf16_ps(chain[r][q], x, w[q]);
      }
    }
    for (int r = 0; r < R; ++r)
      for (int q = 0; q < NV; ++q) acc[r][q] = s == 0 ? Vec<float>(chain[r][q]) : acc[r][q] + Vec<float>(chain[r][q]);
  }
#else
  panel_product_by_chain<float, R, NV, KS>(K, b.rows + row0 * b.stride, b.stride, P, acc);
#endif
}

// A tile's recurrent product with the chains of a one-row tile (KS): one
// row interleaves them (its FMAs would wait on one another otherwise);
// several rows take them one after the other.
template <typename T, int R, int NV, int KS>
inline void stepper_product(int64_t K, const T* A, int64_t lda, const T* P, Vec<T> (&acc)[R][NV]) {
  if constexpr (R == 1) {
    panel_product<T, R, NV, KS>(K, A, lda, P, acc);
  } else {
    panel_product_by_chain<T, R, NV, KS>(K, A, lda, P, acc);
  }
}

// The recurrent product of one unit for a tile of R rows, with the chains
// of a one-row tile (KS), then the cell's epilogue; h_out: (B, H).
template <typename T, int NV, int KS, typename Epi>
struct StepperTile {
  int64_t H = 0, unit = 0;
  const T* panel = nullptr;   // (H, NV, V)
  const T* h_prev = nullptr;  // (B, H)
  T* h_out = nullptr;         // (B, H)
  Epi epi;

  template <int R>
  void tile(int64_t row0) {
    Vec<T> acc[R][NV];
    stepper_product<T, R, NV, KS>(H, h_prev + row0 * H, H, panel, acc);
    for (int r = 0; r < R; ++r) epi.apply(row0 + r, unit, acc[r], h_out + (row0 + r) * H);
  }
};

// The recurrent product alone, kept for a later epilogue: acc of (row,
// unit, q) at acc_out[row · ld + (unit · NV + q) · V].
template <typename T, int NV, int KS>
struct StepperProduct {
  int64_t H = 0, unit = 0, ld = 0;
  const T* panel = nullptr;
  const T* h_prev = nullptr;
  T* acc_out = nullptr;

  template <int R>
  void tile(int64_t row0) {
    constexpr int V = Vec<T>::size;
    Vec<T> acc[R][NV];
    stepper_product<T, R, NV, KS>(H, h_prev + row0 * H, H, panel, acc);
    for (int r = 0; r < R; ++r)
      for (int q = 0; q < NV; ++q) acc[r][q].store(acc_out + (row0 + r) * ld + (unit * NV + q) * V);
  }
};

// One layer's recurrent product and epilogue for rows [0, rows), units
// [u0, u1) (hidden units [u0, u1) · map.unit_width()).
template <typename T, int NV, typename Epi>
void stepper_layer(const PanelMap& map, int64_t u0, int64_t u1, int64_t rows, const T* panels, const T* h_prev,
                   T* h_out, const Epi& epi, int64_t pass) {
  constexpr int KS = panel_chains<1, NV>();
  constexpr int RS = tile_rows<NV>();  // rows a tile's NV·R accumulators allow (chain by chain)
  StepperTile<T, NV, KS, Epi> t;
  t.H = map.H;
  t.h_prev = h_prev;
  t.h_out = h_out;
  t.epi = epi;
  const int64_t psize = map.panel_size(map.H);
  for (int64_t j = u0; j < u1; ++j) {
    const int64_t u = unit_in_order(j, u0, u1, pass);
    t.unit = u;
    t.panel = panels + u * psize;
    for_each_tile<NV, RS>(rows, t);
  }
}

// The same in two halves: the product into acc (rows, units · NV · V) now,
// the epilogue from it later; the same arithmetic as stepper_layer.
template <typename T, int NV>
void stepper_layer_product(const PanelMap& map, int64_t u0, int64_t u1, int64_t rows, const T* panels,
                           const T* h_prev, T* acc, int64_t pass) {
  constexpr int KS = panel_chains<1, NV>();
  constexpr int RS = tile_rows<NV>();
  StepperProduct<T, NV, KS> t;
  t.H = map.H;
  t.ld = map.units() * NV * Vec<T>::size;
  t.h_prev = h_prev;
  t.acc_out = acc;
  for (int64_t j = u0; j < u1; ++j) {
    const int64_t u = unit_in_order(j, u0, u1, pass);
    t.unit = u;
    t.panel = panels + u * map.panel_size(map.H);
    for_each_tile<NV, RS>(rows, t);
  }
}

template <typename T, int NV, typename Epi>
void stepper_layer_epilogue(const PanelMap& map, int64_t u0, int64_t u1, int64_t rows, const T* acc, T* h_out,
                            const Epi& epi) {
  constexpr int V = Vec<T>::size;
  const int64_t ld = map.units() * NV * V;
  for (int64_t u = u0; u < u1; ++u)
    for (int64_t r = 0; r < rows; ++r) {
      Vec<T> a[NV];
      for (int q = 0; q < NV; ++q) a[q] = Vec<T>::load(acc + r * ld + (u * NV + q) * V);
      epi.apply(r, u, a, h_out + r * map.H);
    }
}

// ---------------------------------------------------------------------------
// the buffer

template <typename T>
PanelMap stepper_map(Cell cell, int64_t H) {
  return cell == Cell::lstm ? lstm_forward_map<T>(H) : cell == Cell::gru ? gru_forward_map<T>(H)
                                                                        : rnn_forward_map<T>(H);
}

// Offsets (elements) of the buffer's parts, each on a 64-byte boundary. In
// precision "bf16" (float only) the products' weights are packed for
// stepper_bf16.h (W_hh's panels as the forward's, W_ih per gate and the
// head as Wc), and the step keeps its rows converted: each layer's state
// (the recurrent product's rows) and the last two layers' outputs (the
// next layer's and the head's rows).
template <typename T>
struct StepperLayout {
  int64_t unit_panel, panels, panel_block, W_ih0, W_ih0_gate, W_ih, W_ih_gate, b_ih, b_hh, head_W, head_b, embedding, table,
      x0, gx, h_out, acc, h, c, state_rows, state_block, out_rows, out_block, x0_rows, total;

  explicit StepperLayout(const StepperSizes& s) {
    const int64_t G = gate_count(s.cell), GH = G * s.H, BH = s.B * s.H;
    const PanelMap map = stepper_map<T>(s.cell, s.H);
    const Bf16ColsBlocks kh(s.H), kd(s.D);
    const int64_t brows = bf16_buffer_rows(s.B);
    unit_panel = s.bf16 ? bf16_unit_panel(map) : map.panel_size(s.H);
    panel_block = round(map.units() * unit_panel);
    W_ih0_gate = s.bf16 ? kd.packed_size(s.H) : s.H * s.D;
    W_ih_gate = s.bf16 ? kh.packed_size(s.H) : s.H * s.H;
    int64_t at = 0;
    auto take = [&](int64_t n) {
      const int64_t here = at;
      at += round(n);
      return here;
    };
    panels = take(s.L * panel_block);
    W_ih0 = take(s.table ? 0 : G * W_ih0_gate);       // layer 0's, unless in the table
    W_ih = take((s.L - 1) * G * W_ih_gate);           // layers 1 … L-1
    b_ih = take(s.L * GH);
    b_hh = take(s.cell == Cell::gru ? s.L * GH : 0);
    head_W = take(s.bf16 ? kh.packed_size(s.V) : s.V * s.H);
    head_b = take(s.head_bias ? s.V : 0);
    embedding = take(s.embedding && !s.table ? s.V * s.D : 0);
    table = take(s.table ? s.V * GH : 0);            // (V, GH) x W_ihᵀ of each id
    x0 = take(s.B * s.D);                            // layer 0's input rows
    gx = take(s.B * GH);
    h_out = take(s.L * BH);                          // each layer's new h, the next one's input
    acc = take(s.B * map.units() * map.NV * map.V);  // the top layer's recurrent product, on odd steps
    h = take(s.L * BH);
    c = take(s.cell == Cell::lstm ? s.L * BH : 0);
    state_block = s.bf16 ? round(brows * bf16_row_stride(s.H)) : 0;
    state_rows = take(s.L * state_block);
    out_block = s.bf16 ? round(brows * kh.row_size()) : 0;
    out_rows = take(2 * out_block);
    x0_rows = take(s.bf16 && !s.table ? brows * kd.row_size() : 0);
    total = at;
  }

 private:
  static int64_t round(int64_t n) {
    constexpr int64_t line = 64 / static_cast<int64_t>(sizeof(T));
    return (n + line - 1) / line * line;
  }
};

// precision "int8" (float only): generate/stepper_int8.h, included at the end
inline int64_t stepper_size_int8(const StepperSizes& s);
inline int64_t stepper_state_int8(const StepperSizes& s, int which);
inline void stepper_pack_int8(const StepperSizes& s, const StepperWeights<float>& w, float* buf);
inline void stepper_step_int8(const StepperSizes& s, float* buf, const int64_t* ids, int64_t rows, float* logits,
                              int num_threads, bool top_first);

template <typename T>
int64_t stepper_size(const StepperSizes& s) {
  if constexpr (sizeof(T) == 4) {
    if (s.int8) return stepper_size_int8(s);
  }
  return StepperLayout<T>(s).total;
}

template <typename T>
int64_t stepper_state(const StepperSizes& s, int which) {
  if constexpr (sizeof(T) == 4) {
    if (s.int8) return stepper_state_int8(s, which);
  }
  const StepperLayout<T> at(s);
  return which == 0 ? at.h : at.c;
}

// Rows [0, rows) of layer 0's input for ids: embedding rows or one-hot.
template <typename T>
void stepper_inputs(const StepperSizes& s, const T* embedding, const int64_t* ids, int64_t rows, T* x0) {
  for (int64_t r = 0; r < rows; ++r) {
    if (embedding != nullptr) {
      std::memcpy(x0 + r * s.D, embedding + ids[r] * s.D, sizeof(T) * s.D);
    } else {
      std::memset(x0 + r * s.D, 0, sizeof(T) * s.D);
      x0[r * s.D + ids[r]] = T(1);
    }
  }
}

// stepper_pack in precision "bf16": the weights rounded to bfloat16 once,
// packed for the products of stepper_bf16.h; layer 0's table made by the
// product a step would make (so by the forward's).
inline void stepper_pack_bf16(const StepperSizes& s, const StepperWeights<float>& w, float* buf) {
  const StepperLayout<float> at(s);
  const int64_t G = gate_count(s.cell), GH = G * s.H, H = s.H;
  const PanelMap map = stepper_map<float>(s.cell, H);
  const Bf16ColsBlocks kh(H), kd(s.D);
  auto copy = [](float* dst, const float* src, int64_t n) { std::memcpy(dst, src, sizeof(float) * n); };
  std::memset(buf + at.state_rows, 0, sizeof(float) * (at.total - at.state_rows));  // the rows' padding: zeros
  GemmBuffer<float> panels(map.units() * map.panel_size(H));
  float* unit = panels.data;
  for (int64_t l = 0; l < s.L; ++l) {
    // the forward's panels, each unit's part of them side by side
    pack_panels_bf16(map, H, w.W_hh[l], H, false, 0, map.units(), unit);
    for (int64_t u = 0; u < map.units(); ++u)
      copy(buf + at.panels + l * at.panel_block + u * at.unit_panel, unit + u * map.panel_size(H), at.unit_panel);
    for (int64_t q = 0; l > 0 && q < G; ++q)
      bf16_pack_cols(kh, H, w.W_ih[l] + q * H * H, H, buf + at.W_ih + ((l - 1) * G + q) * at.W_ih_gate);
    copy(buf + at.b_ih + l * GH, w.b_ih[l], GH);
    if (s.cell == Cell::gru) copy(buf + at.b_hh + l * GH, w.b_hh[l], GH);
  }
  bf16_pack_cols(kh, s.V, w.head_W, H, buf + at.head_W);
  if (s.head_bias) copy(buf + at.head_b, w.head_b, s.V);
  if (!s.table) {
    for (int64_t q = 0; q < G; ++q)
      bf16_pack_cols(kd, H, w.W_ih[0] + q * H * s.D, s.D, buf + at.W_ih0 + q * at.W_ih0_gate);
    if (s.embedding) copy(buf + at.embedding, w.embedding, s.V * s.D);
    return;
  }
  // Each id's row as a step computes it: its input row times W_ihᵀ, for 16
  // ids at a time (an AMX tile's rows).
  constexpr int64_t n = 16;
  const int64_t rows_size = bf16_buffer_rows(n) * kd.row_size();
  GemmBuffer<float> work(G * at.W_ih0_gate + rows_size + n * s.D);
  float* packed = work.data;
  float* rows = packed + G * at.W_ih0_gate;
  float* x = rows + rows_size;
  std::memset(rows, 0, sizeof(float) * rows_size);
  for (int64_t q = 0; q < G; ++q) bf16_pack_cols(kd, H, w.W_ih[0] + q * H * s.D, s.D, packed + q * at.W_ih0_gate);
  const StepperTiles tiles(n);
  for (int64_t v0 = 0; v0 < s.V; v0 += n) {
    const int64_t m = s.V - v0 < n ? s.V - v0 : n;
    int64_t ids[n];
    for (int64_t r = 0; r < m; ++r) ids[r] = v0 + r;
    stepper_inputs(s, w.embedding, ids, m, x);
    bf16_convert_cols(kd, x, s.D, m, 0, s.D, rows);
    for (int64_t q = 0; q < G; ++q)
      bf16_cols_product(kd, m, rows, packed + q * at.W_ih0_gate, H, 0, gemm_ceil_div(H, kColsGroup),
                        buf + at.table + v0 * GH + q * H, GH);
  }
}

template <typename T>
void stepper_pack(const StepperSizes& s, const StepperWeights<T>& w, T* buf) {
  if constexpr (sizeof(T) == 4) {
    if (s.int8) {
      stepper_pack_int8(s, w, buf);
      return;
    }
    if (s.bf16) {
      stepper_pack_bf16(s, w, buf);
      std::memset(buf + StepperLayout<T>(s).h, 0, sizeof(T) * s.L * s.B * s.H);
      if (s.cell == Cell::lstm) std::memset(buf + StepperLayout<T>(s).c, 0, sizeof(T) * s.L * s.B * s.H);
      return;
    }
  }
  const StepperLayout<T> at(s);
  const int64_t GH = gate_count(s.cell) * s.H, H = s.H;
  const PanelMap map = stepper_map<T>(s.cell, H);
  auto copy = [](T* dst, const T* src, int64_t n) { std::memcpy(dst, src, sizeof(T) * n); };
  for (int64_t l = 0; l < s.L; ++l) {
    pack_panels(map, H, w.W_hh[l], H, false, 0, map.units(), buf + at.panels + l * at.panel_block);
    if (l > 0) copy(buf + at.W_ih + (l - 1) * GH * H, w.W_ih[l], GH * H);
    copy(buf + at.b_ih + l * GH, w.b_ih[l], GH);
    if (s.cell == Cell::gru) copy(buf + at.b_hh + l * GH, w.b_hh[l], GH);
  }
  copy(buf + at.head_W, w.head_W, s.V * H);
  if (s.head_bias) copy(buf + at.head_b, w.head_b, s.V);
  if (s.table) {
    // Each id's row as a step computes it: its input row times W_ihᵀ.
    for (int64_t v = 0; v < s.V; ++v) {
      stepper_inputs(s, w.embedding, &v, 1, buf + at.x0);
      rows_dots(1, GH, s.D, buf + at.x0, s.D, w.W_ih[0], static_cast<const T*>(nullptr),
                buf + at.table + v * GH, GH);
    }
  } else {
    copy(buf + at.W_ih0, w.W_ih[0], GH * s.D);
    if (s.embedding) copy(buf + at.embedding, w.embedding, s.V * s.D);
  }
  std::memset(buf + at.h, 0, sizeof(T) * s.L * s.B * H);
  if (s.cell == Cell::lstm) std::memset(buf + at.c, 0, sizeof(T) * s.L * s.B * H);
}

// ---------------------------------------------------------------------------
// one step

// Layer l's forward epilogue, the cell's, over the buffer's parts (gx, the
// biases, the state h and c, updated in place as the forward's inference
// does; h_out), handed to run(e, NV) with the cell's NV as an
// std::integral_constant: one epilogue for every precision's product.
template <typename T, typename Layout, typename Run>
void stepper_epilogue(const StepperSizes& s, const Layout& at, T* buf, int64_t l, T* gx, Run&& run) {
  const int64_t GH = gate_count(s.cell) * s.H, BH = s.B * s.H;
  T* h = buf + at.h + l * BH;
  T* h_out = buf + at.h_out + l * BH;
  const T* b_ih = buf + at.b_ih + l * GH;
  if (s.cell == Cell::lstm) {
    LstmForwardEpilogue<T> e;
    e.H = s.H;
    e.gx = gx;
    e.b = b_ih;
    e.h_prev = h;
    e.h_out = h_out;
    e.c_prev = e.c_out = buf + at.c + l * BH;
    run(e, std::integral_constant<int, kLstmForwardNV>());
  } else if (s.cell == Cell::gru) {
    GruForwardEpilogue<T> e;
    e.H = s.H;
    e.gx = gx;
    e.b_ih = b_ih;
    e.b_hh = buf + at.b_hh + l * GH;
    e.h_prev = h;
    e.h_out = h_out;
    run(e, std::integral_constant<int, kGruForwardNV>());
  } else {
    RnnForwardEpilogue<T> e;
    e.H = s.H;
    e.gx = gx;
    e.b = b_ih;
    e.h_prev = h;
    e.h_out = h_out;
    run(e, std::integral_constant<int, kRnnForwardNV>());
  }
}

// Threads worth a step: one per 2^18 multiply-adds (a few µs of work), at
// most num_threads and the units of a layer. Each thread owns the same
// units of every layer, so its share of the weights stays in its own cache
// from step to step (two cores hold twice the weights one holds).
inline int stepper_threads(const StepperSizes& s, int64_t rows, int64_t units, int num_threads) {
  const int64_t GH = gate_count(s.cell) * s.H;
  const int64_t macs = rows * ((2 * s.L - 1) * GH * s.H + s.V * s.H + (s.table ? 0 : GH * s.D));
  int64_t n = macs >> 18;
  n = n < 1 ? 1 : n;
  n = n < num_threads ? n : num_threads;
  return static_cast<int>(n < units ? n : units);
}

enum StepperMode { kFused = 0, kProduct = 1, kEpilogue = 2 };

template <typename T, int NV, typename Epi>
void stepper_run_layer(int mode, const PanelMap& map, int64_t u0, int64_t u1, int64_t rows, const T* panels,
                       const T* h, T* h_out, T* acc, const Epi& e, int64_t pass) {
  if (mode == kFused) {
    stepper_layer<T, NV>(map, u0, u1, rows, panels, h, h_out, e, pass);
  } else if (mode == kProduct) {
    stepper_layer_product<T, NV>(map, u0, u1, rows, panels, h, acc, pass);
  } else {
    stepper_layer_epilogue<T, NV>(map, u0, u1, rows, acc, h_out, e);
  }
}

// A tile of R rows of one unit's "bf16" recurrent product (the chains of a
// one-row tile), then the epilogue, or (acc_out) the product kept for it.
template <int NV, typename Epi>
struct StepperTileBf16 {
  int64_t H = 0, unit = 0, ld = 0;
  const float* panel = nullptr;
  Bf16Rows<float> rows;      // the state's rows, converted
  float* h_out = nullptr;    // (B, H)
  float* acc_out = nullptr;  // or the product's sums, as StepperProduct
  Epi epi;

  template <int R>
  void tile(int64_t row0) {
    constexpr int V = Vec<float>::size;
    Vec<float> acc[R][NV];
    stepper_product_bf16<R, NV, panel_chains<1, NV>()>(H, rows, row0, panel, acc);
    for (int r = 0; r < R; ++r) {
      if (acc_out != nullptr) {
        for (int q = 0; q < NV; ++q) acc[r][q].store(acc_out + (row0 + r) * ld + (unit * NV + q) * V);
      } else {
        epi.apply(row0 + r, unit, acc[r], h_out + (row0 + r) * H);
      }
    }
  }
};

template <int NV, typename Epi>
void stepper_run_layer_bf16(int mode, const PanelMap& map, int64_t u0, int64_t u1, int64_t rows,
                            const float* panels, const Bf16Rows<float>& state, float* h_out, float* acc,
                            const Epi& e, int64_t pass) {
  if (mode == kEpilogue) {
    stepper_layer_epilogue<float, NV>(map, u0, u1, rows, acc, h_out, e);
    return;
  }
  StepperTileBf16<NV, Epi> t;
  t.H = map.H;
  t.ld = map.units() * NV * Vec<float>::size;
  t.rows = state;
  t.h_out = h_out;
  t.acc_out = mode == kProduct ? acc : nullptr;
  t.epi = e;
  for (int64_t j = u0; j < u1; ++j) {
    const int64_t u = unit_in_order(j, u0, u1, pass);
    t.unit = u;
    t.panel = panels + u * bf16_unit_panel(map);
    for_each_tile<NV, bf16_tile_rows<NV>()>(rows, t);
  }
}

// stepper_step in precision "bf16": the same steps, with the products of
// stepper_bf16.h on rows converted once. Each thread converts its own
// columns: the states' at the start (then the threads meet), each layer's
// output before the layer's meeting (into one of two buffers, so that a
// thread ahead never overwrites rows another still reads).
inline void stepper_step_bf16(const StepperSizes& s, float* buf, const int64_t* ids, int64_t rows, float* logits,
                              int num_threads, bool top_first) {
  const StepperLayout<float> at(s);
  const int64_t G = gate_count(s.cell), GH = G * s.H, H = s.H, BH = s.B * H, V = s.V;
  const PanelMap map = stepper_map<float>(s.cell, H);
  const int64_t units = map.units();
  const Bf16ColsBlocks kh(H), kd(s.D);
  const int64_t V_groups = gemm_ceil_div(V, kColsGroup);
  if (!s.table) {
    stepper_inputs(s, s.embedding ? buf + at.embedding : static_cast<const float*>(nullptr), ids, rows, buf + at.x0);
    bf16_convert_cols(kd, buf + at.x0, s.D, rows, 0, s.D, buf + at.x0_rows);
  }
  const int nt = stepper_threads(s, rows, units, num_threads);
  StepCounter done;
  run_workers(num_threads, nt, [&](int tid, int team) {
    int64_t meetings = 0;  // the workers meet on done (cells/team.h)
    const StepperTiles tiles(rows);
    alignas(64) float sums[4 * 256];  // this thread's AMX sums
    int64_t u0, u1;
    split_units(units, tid, team, u0, u1);
    const int64_t j0 = u0 * map.unit_width() < H ? u0 * map.unit_width() : H;
    const int64_t j1 = u1 * map.unit_width() < H ? u1 * map.unit_width() : H;
    const int64_t g0 = j0 / kColsGroup, g1 = gemm_ceil_div(j1, kColsGroup);
    float* gx = buf + at.gx;
    for (int64_t l = 0; l < s.L; ++l)
      bf16_convert_state(buf + at.h + l * BH, H, rows, H, j0, j1, buf + at.state_rows + l * at.state_block);
    step_end(&done, tid, team, meetings++);
    for (int64_t q = 0; q < G; ++q) {
      const int64_t col = q * H + j0;
      if (s.table) {
        for (int64_t r = 0; r < rows; ++r)
          std::memcpy(gx + r * GH + col, buf + at.table + ids[r] * GH + col, sizeof(float) * (j1 - j0));
      } else if (g1 > g0) {
        bf16_cols_product(kd, rows, buf + at.x0_rows, buf + at.W_ih0 + q * at.W_ih0_gate, H, g0, g1, gx + q * H, GH);
      }
    }
    auto layer = [&](int64_t l, int mode) {
      float* h = buf + at.h + l * BH;
      float* h_out = buf + at.h_out + l * BH;
      float* acc = buf + at.acc;
      if (l > 0 && mode != kProduct && g1 > g0) {
        for (int64_t q = 0; q < G; ++q)
          bf16_cols_product(kh, rows, buf + at.out_rows + ((l - 1) % 2) * at.out_block,
                            buf + at.W_ih + ((l - 1) * G + q) * at.W_ih_gate, H, g0, g1, gx + q * H, GH);
      }
      Bf16Rows<float> state;
      state.rows = buf + at.state_rows + l * at.state_block;
      state.sums = sums;
      state.stride = bf16_row_stride(H);
      state.ready = true;
      const float* panels = buf + at.panels + l * at.panel_block;
      stepper_epilogue(s, at, buf, l, gx, [&](const auto& e, auto nv) {
        stepper_run_layer_bf16<decltype(nv)::value>(mode, map, u0, u1, rows, panels, state, h_out, acc, e,
                                                    top_first ? 1 : 0);
      });
      if (mode == kProduct) return;
      bf16_convert_cols(kh, h_out, H, rows, j0, j1, buf + at.out_rows + (l % 2) * at.out_block);
      step_end(&done, tid, team, meetings++);
      for (int64_t r = 0; r < rows; ++r) std::memcpy(h + r * H + j0, h_out + r * H + j0, sizeof(float) * (j1 - j0));
    };
    const bool split = top_first && s.L > 1;
    if (split) layer(s.L - 1, kProduct);
    for (int64_t l = 0; l < s.L; ++l) layer(l, split && l == s.L - 1 ? kEpilogue : kFused);
    // the head, this thread's groups of the vocabulary; numpy's y += bias after
    int64_t v0, v1;
    split_units(V_groups, tid, team, v0, v1);
    if (v1 > v0) {
      bf16_cols_product(kh, rows, buf + at.out_rows + ((s.L - 1) % 2) * at.out_block, buf + at.head_W, V, v0, v1,
                        logits, V);
      if (s.head_bias) {
        const int64_t c0 = v0 * kColsGroup, c1 = v1 * kColsGroup < V ? v1 * kColsGroup : V;
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t j = c0; j < c1; ++j) logits[r * V + j] += buf[at.head_b + j];
      }
    }
  });
}

// One step. top_first: the top layer's recurrent product first (it reads
// only the last state), then the layers in order, so that the weights this
// step reads first are those the last step read last. Taken on every other
// step, a stack whose weights exceed the core's cache (L2) finds part of
// them still there (the same arithmetic either way). Within a layer, the
// threads' units go the other way on such steps too (unit_in_order).
template <typename T>
void stepper_step(const StepperSizes& s, T* buf, const int64_t* ids, int64_t rows, T* logits, int num_threads,
                  bool top_first) {
  if constexpr (sizeof(T) == 4) {
    if (s.int8) {  // the layers in order, the units as top_first says (the same arithmetic either way)
      stepper_step_int8(s, buf, ids, rows, logits, num_threads, top_first);
      return;
    }
    if (s.bf16) {
      stepper_step_bf16(s, buf, ids, rows, logits, num_threads, top_first);
      return;
    }
  }
  const StepperLayout<T> at(s);
  const int64_t G = gate_count(s.cell), GH = G * s.H, H = s.H, BH = s.B * H, V = s.V;
  const PanelMap map = stepper_map<T>(s.cell, H);
  const int64_t units = map.units();
  if (!s.table) {
    stepper_inputs(s, s.embedding ? buf + at.embedding : static_cast<const T*>(nullptr), ids, rows, buf + at.x0);
  }
  const int nt = stepper_threads(s, rows, units, num_threads);
  StepCounter done;
  run_workers(num_threads, nt, [&](int tid, int team) {
    int64_t meetings = 0;  // the workers meet on done (cells/team.h)
    int64_t u0, u1;
    split_units(units, tid, team, u0, u1);
    // this thread's hidden units [j0, j1): columns q·H + [j0, j1) of each gate q
    const int64_t j0 = u0 * map.unit_width() < H ? u0 * map.unit_width() : H;
    const int64_t j1 = u1 * map.unit_width() < H ? u1 * map.unit_width() : H;
    T* gx = buf + at.gx;
    // layer 0's x W_ihᵀ, this thread's columns (the biases are the epilogues')
    for (int64_t q = 0; q < G; ++q) {
      const int64_t col = q * H + j0;
      if (s.table) {
        for (int64_t r = 0; r < rows; ++r)
          std::memcpy(gx + r * GH + col, buf + at.table + ids[r] * GH + col, sizeof(T) * (j1 - j0));
      } else {
        rows_dots(rows, j1 - j0, s.D, buf + at.x0, s.D, buf + at.W_ih0 + col * s.D, static_cast<const T*>(nullptr),
                  gx + col, GH);
      }
    }
    // Layer l: kFused, or its recurrent product alone (kProduct, into acc)
    // and later the rest (kEpilogue, from acc).
    auto layer = [&](int64_t l, int mode) {
      T* h = buf + at.h + l * BH;
      T* h_out = buf + at.h_out + l * BH;
      T* acc = buf + at.acc;
      if (l > 0 && mode != kProduct) {
        for (int64_t q = 0; q < G; ++q) {
          const int64_t col = q * H + j0;
          rows_dots(rows, j1 - j0, H, h_out - BH, H, buf + at.W_ih + (l - 1) * GH * H + col * H,
                    static_cast<const T*>(nullptr), gx + col, GH);
        }
      }
      const T* panels = buf + at.panels + l * at.panel_block;
      stepper_epilogue(s, at, buf, l, gx, [&](const auto& e, auto nv) {
        stepper_run_layer<T, decltype(nv)::value>(mode, map, u0, u1, rows, panels, h, h_out, acc, e,
                                                  top_first ? 1 : 0);
      });
      if (mode == kProduct) return;
      // Every thread's products have read h: the new state goes in (own
      // columns), and the next layer reads h_out whole.
      step_end(&done, tid, team, meetings++);
      for (int64_t r = 0; r < rows; ++r) std::memcpy(h + r * H + j0, h_out + r * H + j0, sizeof(T) * (j1 - j0));
    };
    const bool split = top_first && s.L > 1;
    if (split) layer(s.L - 1, kProduct);
    for (int64_t l = 0; l < s.L; ++l) layer(l, split && l == s.L - 1 ? kEpilogue : kFused);
    // the head, this thread's share of the vocabulary
    int64_t v0, v1;
    split_units(V, tid, team, v0, v1);
    rows_dots(rows, v1 - v0, H, buf + at.h_out + (s.L - 1) * BH, H, buf + at.head_W + v0 * H,
              s.head_bias ? buf + at.head_b + v0 : static_cast<const T*>(nullptr), logits + v0, V);
  });
}

}  // namespace SEQCORE_ISA_NS
}  // namespace seqcore

#include "generate/stepper_int8.h"
