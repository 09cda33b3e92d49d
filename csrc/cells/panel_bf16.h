// The recurrent product of the time loops with bfloat16 operands and float32
// sums (precision "bf16"; generic code, see isa/kernels_impl.h), on the
// panels of cells/panel.h:
//   acc[r][q] = Σ_k bf16(A[r·lda + k]) · bf16(P[k][q][:])
// With AVX512-BF16 a panel holds 32-bit words of two bfloat16, the weights
// of k = 2kp (lower half) and 2kp + 1 for each output column,
//   P[unit][kp][q][lane]          kp < ceil(K / 2), q < NV, lane < V
// (an odd K's last pair has a zero), which takes no more room than the
// float32 panel; the rows of A (h, or the gate gradients) are converted
// once an iteration into the thread's row buffer (Bf16Rows), which every
// unit's tiles then read, and each pair of k is one vdpbf16ps. Elsewhere
// the panel is the float32 one with its weights rounded to bfloat16, the
// row buffer holds the rows rounded to bfloat16 (as float32), and
// panel_product multiplies them.
// With AMX-BF16 the pairs of k in whole blocks of 32 k are multiplied by
// tiles: the tile's rows of A (16 rows of the row buffer; those past the
// tile's rows give sums that are not used) times, for each q, the panel's
// 16 kp x 16 lanes (rows NV·16 words apart), into one tile of sums per q;
// the k past the last whole block go through vdpbf16ps. A tile of more
// than 16 rows takes two tiles of A against each tile of the panel loaded
// (amx_panel_blocks_2): the panel, which streams from L2 (a step's panels
// are 0.5-2 MB), is read once per 32 rows instead of once per 16 (LSTM
// bf16 inference at B = 32, 64 was bound by that traffic). Each sum is the
// same chain of tile products either way.
namespace seqcore {
namespace SEQCORE_ISA_NS {

// Rows of a tile of the "bf16" recurrent product: with AMX two tiles of A's
// 16 rows (the float32 tiles would leave most of each tile's rows unused),
// else the float32 tiles'.
template <int NV>
constexpr int bf16_tile_rows() {
#if defined(__AMX_BF16__)
  return 32;
#else
  return tile_rows<NV>();
#endif
}

// for_each_tile (panel.h) with the tiles of the precision.
template <int NV, typename Epi>
inline void for_each_tile_in(bool bf16, int64_t B, Epi& epi) {
  if (bf16) {
    for_each_tile<NV, bf16_tile_rows<NV>()>(B, epi);
  } else {
    for_each_tile<NV>(B, epi);
  }
}

// Elements (of T) a converted row of K values takes: K / 2 words of two
// bfloat16 (whole blocks of 32 k), or K rounded floats.
inline int64_t bf16_row_stride(int64_t K) {
#if defined(__AVX512BF16__)
  return gemm_round_up(K, 32) / 2;
#else
  return K;
#endif
}

// Rows of a row buffer for B rows: an AMX tile reads 16 from any row < B
// (the second tile of a tile of more than 16 rows starts below row B).
inline int64_t bf16_buffer_rows(int64_t B) { return gemm_round_up(B, 16) + 16; }

// Elements (of T) of one thread's row buffer: B converted rows of K values,
// then room for two sets (the pipelined forward step's two items) of 2·NV
// tiles of 16 x 16 sums.
template <int NV>
int64_t bf16_row_buffer(int64_t K, int64_t B) {
  return bf16_buffer_rows(B) * bf16_row_stride(K) + 4 * NV * 256 + 16;
}

// One thread's row buffer (null rows: the float32 product). `ready` says
// whether this iteration's rows are converted: each iteration's step
// starts with false and converts them for its first tile.
template <typename T>
struct Bf16Rows {
  T* rows = nullptr;
  T* sums = nullptr;
  int64_t stride = 0;
  bool ready = false;
};

// Thread tid's part of a buffer of nt * bf16_row_buffer<NV>(K, B) elements.
template <int NV, typename T>
Bf16Rows<T> bf16_thread_rows(T* buffer, int tid, int64_t K, int64_t B) {
  Bf16Rows<T> b;
  b.rows = buffer + tid * bf16_row_buffer<NV>(K, B);
  b.stride = bf16_row_stride(K);
  b.sums = b.rows + bf16_buffer_rows(B) * b.stride;
  return b;
}

// Rows [0, n) of A (row stride lda, K values each) into b, converted (or
// rounded) as panel_product_bf16 reads them.
template <typename T>
void bf16_convert_rows(const T* A, int64_t lda, int64_t n, int64_t K, Bf16Rows<T>& b) {
#if defined(__AVX512BF16__)
  if constexpr (sizeof(T) == 4) {
    for (int64_t r = 0; r < n; ++r)
      bf16_row_words(A + r * lda, K, reinterpret_cast<uint32_t*>(b.rows) + r * b.stride);
    b.ready = true;
    return;
  }
#endif
  for (int64_t r = 0; r < n; ++r)
    for (int64_t k = 0; k < K; ++k) b.rows[r * b.stride + k] = gemm_operand<true>(A[r * lda + k]);
  b.ready = true;
}

// The tiles of a thread that runs "bf16" recurrent products, for the scope
// of a parallel region: AMX's configuration loaded, and the tiles released
// at the end (a no-op without AMX).
struct Bf16TileScope {
  bool on;
  explicit Bf16TileScope(bool bf16) : on(bf16) {
#if defined(__AMX_BF16__)
    if (on) amx_configure();
#endif
  }
  ~Bf16TileScope() {
#if defined(__AMX_BF16__)
    if (on) _tile_release();
#endif
  }
  Bf16TileScope(const Bf16TileScope&) = delete;
  Bf16TileScope& operator=(const Bf16TileScope&) = delete;
};

#if defined(__AMX_BF16__)
// sums[q] (16 x 16 floats) = Σ over blocks c < blocks of 32 k: rows of a
// (16 rows, `stride` words apart) times q's columns of the panel p.
// What runs between the blocks of tile products: nothing, or (the
// pipelined forward step, cells/loops.h) the vector work of another item.
struct NoHook {
  void operator()() const {}
};

template <int NV, typename Hook = NoHook>
inline void amx_panel_blocks(int64_t blocks, const uint32_t* a, int64_t stride, const uint32_t* p,
                             float* sums, Hook&& hook = Hook{}) {
  static_assert(NV >= 1 && NV <= 4, "tiles 0-3 hold the sums");
  _tile_zero(0);
  if constexpr (NV > 1) _tile_zero(1);
  if constexpr (NV > 2) _tile_zero(2);
  if constexpr (NV > 3) _tile_zero(3);
  const int64_t bstride = NV * 64;  // bytes between kp rows of the panel
  for (int64_t c = 0; c < blocks; ++c) {
    const uint32_t* pc = p + c * 16 * NV * 16;
    _tile_loadd(4, a + c * 16, stride * 4);
    _tile_loadd(5, pc, bstride);
    _tile_dpbf16ps(0, 4, 5);
    if constexpr (NV > 1) {
      _tile_loadd(6, pc + 16, bstride);
      _tile_dpbf16ps(1, 4, 6);
    }
    if constexpr (NV > 2) {
      _tile_loadd(7, pc + 32, bstride);
      _tile_dpbf16ps(2, 4, 7);
    }
    if constexpr (NV > 3) {
      _tile_loadd(5, pc + 48, bstride);
      _tile_dpbf16ps(3, 4, 5);
    }
    hook();
  }
  _tile_stored(0, sums, 64);
  if constexpr (NV > 1) _tile_stored(1, sums + 256, 64);
  if constexpr (NV > 2) _tile_stored(2, sums + 512, 64);
  if constexpr (NV > 3) _tile_stored(3, sums + 768, 64);
}

// amx_panel_blocks for 32 rows of a (two tiles of A, rows 0-15 and 16-31)
// and the panel's columns q = Q, Q + 1 (only Q when Q + 1 = NV): each tile
// of the panel is loaded once for both tiles of A. Sums of row tile i and
// column q go to sums[(i·NV + q)·256 …].
template <int NV, int Q, typename Hook = NoHook>
inline void amx_panel_blocks_2q(int64_t blocks, const uint32_t* a, int64_t stride, const uint32_t* p,
                                float* sums, Hook&& hook = Hook{}) {
  constexpr bool two = Q + 1 < NV;
  _tile_zero(0);
  _tile_zero(2);
  if constexpr (two) {
    _tile_zero(1);
    _tile_zero(3);
  }
  const int64_t bstride = NV * 64, astride = stride * 4;  // bytes between rows
  const uint32_t* a1 = a + 16 * stride;
  for (int64_t c = 0; c < blocks; ++c) {
    const uint32_t* pc = p + c * 16 * NV * 16 + Q * 16;
    _tile_loadd(4, a + c * 16, astride);
    _tile_loadd(6, pc, bstride);
    _tile_dpbf16ps(0, 4, 6);
    if constexpr (two) {
      _tile_loadd(7, pc + 16, bstride);
      _tile_dpbf16ps(1, 4, 7);
    }
    _tile_loadd(5, a1 + c * 16, astride);
    _tile_dpbf16ps(2, 5, 6);
    if constexpr (two) _tile_dpbf16ps(3, 5, 7);
    hook();
  }
  _tile_stored(0, sums + Q * 256, 64);
  _tile_stored(2, sums + (NV + Q) * 256, 64);
  if constexpr (two) {
    _tile_stored(1, sums + (Q + 1) * 256, 64);
    _tile_stored(3, sums + (NV + Q + 1) * 256, 64);
  }
}

template <int NV, typename Hook = NoHook>
inline void amx_panel_blocks_2(int64_t blocks, const uint32_t* a, int64_t stride, const uint32_t* p,
                               float* sums, Hook&& hook = Hook{}) {
  static_assert(NV >= 1 && NV <= 4, "two passes of at most two columns");
  amx_panel_blocks_2q<NV, 0>(blocks, a, stride, p, sums, hook);
  if constexpr (NV > 2) amx_panel_blocks_2q<NV, 2>(blocks, a, stride, p, sums, hook);
}

// The sums of `rows` rows (at most 32) of a times the panel p, K = 32 ·
// blocks: row r's sums of column q at sums[((r / 16)·NV + q)·256 + (r % 16)·16],
// with hook() after each block of tile products (blocks or 2·blocks calls,
// as amx_hooks says).
template <int NV, typename Hook>
inline void amx_rows_product(int64_t blocks, const uint32_t* a, int64_t stride, const uint32_t* p, int rows,
                             float* sums, Hook&& hook) {
  if (rows > 16) {
    amx_panel_blocks_2<NV>(blocks, a, stride, p, sums, hook);
  } else {
    amx_panel_blocks<NV>(blocks, a, stride, p, sums, hook);
  }
}
template <int NV>
inline int64_t amx_hooks(int64_t blocks, int rows) { return rows > 16 && NV > 2 ? 2 * blocks : blocks; }
#endif

// pack_panels (same arguments) for the "bf16" product.
template <typename T>
void pack_panels_bf16(const PanelMap& map, int64_t K, const T* S, int64_t lds, bool k_major,
                      int64_t u0, int64_t u1, T* P) {
#if defined(__AVX512BF16__)
  if constexpr (sizeof(T) == 4) {
    // kp rows of a panel are NV·V words apart
    const int64_t kp_n = (K + 1) / 2, step = static_cast<int64_t>(map.NV) * map.V;
    for_each_panel_vector(map, K, P, u0, u1, [&](uint32_t* pq, int64_t n0, int lanes) {
      if (k_major) {  // rows k and k+1 of S hold the lanes side by side
        const __mmask16 m = bf16_mask(lanes);
        for (int64_t kp = 0; kp < kp_n; ++kp) {
          const float* r0 = S + 2 * kp * lds + n0;
          const __m512 e = _mm512_maskz_loadu_ps(m, r0);
          const __m512 o = 2 * kp + 1 < K ? _mm512_maskz_loadu_ps(m, r0 + lds) : _mm512_setzero_ps();
          _mm512_storeu_si512(pq + kp * step, bf16_pairs(e, o));
        }
      } else {  // row n0 + lane of S holds a lane's k: its pairs, transposed
        store_rows_transposed(pq, step, kp_n, S, lds, n0, lanes,
                              [&](const float* row, int64_t kp0) { return bf16_words32(row, 2 * kp0, K); });
      }
    });
    return;
  }
#endif
  pack_panels(map, K, S, lds, k_major, u0, u1, P);
  T* p = P + u0 * map.panel_size(K);
  for (int64_t i = 0, n = (u1 - u0) * map.panel_size(K); i < n; ++i) p[i] = gemm_operand<true>(p[i]);
}

// panel_product for the "bf16" product: acc[r][q] for rows row0 … row0+R-1
// of the converted rows in b (bf16_convert_rows) times the panel P.
template <int R, int NV>
inline void panel_product_bf16(int64_t K, const Bf16Rows<float>& b, int64_t row0, const float* P,
                               Vec<float> (&acc)[R][NV]) {
#if defined(__AVX512BF16__)
  constexpr int V = Vec<float>::size;
  static_assert(V == 16, "the bfloat16 panels hold 16 columns a vector");
  const int64_t kp_n = (K + 1) / 2, stride = b.stride;  // words a row
  const uint32_t* a = reinterpret_cast<const uint32_t*>(b.rows) + row0 * stride;
  const uint32_t* p = reinterpret_cast<const uint32_t*>(P);
  // As panel_product: KS independent chains when the tile has few sums.
  constexpr int KS = R * NV >= 8 ? 1 : (8 + R * NV - 1) / (R * NV);
  __m512 chain[KS][R][NV];
  for (int s = 0; s < KS; ++s)
    for (int r = 0; r < R; ++r)
      for (int q = 0; q < NV; ++q) chain[s][r][q] = _mm512_setzero_ps();
  int64_t kp = 0;
#if defined(__AMX_BF16__)
  if (K >= 32) {
    int r0 = 0;
    for (; r0 + 16 < R; r0 += 32) {  // 17-32 rows: both tiles of A at once
      amx_panel_blocks_2<NV>(K / 32, a + r0 * stride, stride, p, b.sums);
      for (int r = r0; r < R && r < r0 + 32; ++r) {
        const float* sr = b.sums + ((r - r0) / 16 * NV) * 256 + (r - r0) % 16 * 16;
        for (int q = 0; q < NV; ++q) chain[0][r][q] = _mm512_loadu_ps(sr + q * 256);
      }
    }
    for (; r0 < R; r0 += 16) {
      amx_panel_blocks<NV>(K / 32, a + r0 * stride, stride, p, b.sums);
      for (int r = r0; r < R && r < r0 + 16; ++r)
        for (int q = 0; q < NV; ++q) chain[0][r][q] = _mm512_loadu_ps(b.sums + q * 256 + (r - r0) * 16);
    }
    kp = K / 32 * 16;
  }
#endif
  for (; kp + KS <= kp_n; kp += KS) {
    for (int s = 0; s < KS; ++s) {
      __m512bh w[NV];
      for (int q = 0; q < NV; ++q) w[q] = (__m512bh)_mm512_loadu_si512(p + ((kp + s) * NV + q) * V);
      for (int r = 0; r < R; ++r) {
        const __m512bh x = (__m512bh)_mm512_set1_epi32(static_cast<int>(a[r * stride + kp + s]));
        for (int q = 0; q < NV; ++q) chain[s][r][q] = _mm512_dpbf16_ps(chain[s][r][q], x, w[q]);
      }
    }
  }
  for (int s = 0; kp < kp_n; ++kp, ++s) {
    __m512bh w[NV];
    for (int q = 0; q < NV; ++q) w[q] = (__m512bh)_mm512_loadu_si512(p + (kp * NV + q) * V);
    for (int r = 0; r < R; ++r) {
      const __m512bh x = (__m512bh)_mm512_set1_epi32(static_cast<int>(a[r * stride + kp]));
      for (int q = 0; q < NV; ++q) chain[s][r][q] = _mm512_dpbf16_ps(chain[s][r][q], x, w[q]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < NV; ++q) {
      __m512 sum = chain[0][r][q];
      for (int s = 1; s < KS; ++s) sum = _mm512_add_ps(sum, chain[s][r][q]);
      acc[r][q] = Vec<float>(sum);
    }
#else
  panel_product<float, R, NV>(K, b.rows + row0 * b.stride, b.stride, P, acc);
#endif
}

// float64 has no "bf16" precision (refused at the binding): never called.
template <int R, int NV>
inline void panel_product_bf16(int64_t K, const Bf16Rows<double>& b, int64_t row0, const double* P,
                               Vec<double> (&acc)[R][NV]) {
  panel_product<double, R, NV>(K, b.rows + row0 * b.stride, b.stride, P, acc);
}

}  // namespace SEQCORE_ISA_NS
}  // namespace seqcore
