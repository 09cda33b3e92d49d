// The stepper's products in precision "bf16" (generic code, see
// isa/kernels_impl.h): bfloat16 operands, float32 sums, each row's sums
// those the bf16 forward on one token makes (gemm/bf16.h's gemm_bf16 for the
// input projections and the head, cells/panel_bf16.h's panel_product_bf16
// for the recurrent product), bit for bit, whatever the number of rows.
//
// Input projections and the head, C (rows, N) = bf16(A) bf16(W)ᵀ, W (N, K):
// gemm_bf16 makes every C element one chain over the pairs of k of each K
// block (blocks of at most KC, as bf16_gemm_blocked or gemm_blocks cut K),
// then C = 1 · S + (first block ? 0 : C). Per ISA:
//   amx_bf16:    tdpbf16ps over 32 k at a time, the block's k past kc zero;
//   avx512_bf16: one vdpbf16ps a pair of k, in order;
//   elsewhere:   one float32 fmadd a k on operands rounded to bfloat16.
// Each of these sums depends on the element's row of A and column of W
// alone (a tile's other rows or columns do not enter it), so a stepper of
// any number of rows computes them the same. The weights are packed once,
// in groups of G = Vec<float>::size columns:
//   Wc[block][group][d][G]   d < depth(kc) units of 32 bits
// (a word of two bfloat16, k = 2d in the lower half, or a rounded float)
// and the rows of A are converted once a step into
//   Ac[row][block][d]        the same depths, zeros past kc,
// so that an AMX tile of B is 16 d x 16 words of one group at stride 64
// bytes, and one of A 16 rows x 16 words of a block.
namespace seqcore {
namespace SEQCORE_ISA_NS {

// Column groups: the lanes of a vector (16 for the bfloat16 ISAs).
constexpr int kColsGroup = Vec<float>::size;

#if defined(__AMX_BF16__)
using StepperBf16Kernel = Bf16AmxKernel;
#elif defined(__AVX512BF16__)
using StepperBf16Kernel = Bf16DotKernel;
#endif

// Elements of one unit's "bf16" panel of W_hh (cells/panel_bf16.h): with
// bfloat16 words, ceil(H / 2) rows of them, half the float32 panel the
// forward spaces them by (the stepper packs them side by side: half the
// cache sets would hold them otherwise); else the float32 panel.
inline int64_t bf16_unit_panel(const PanelMap& map) {
#if defined(__AVX512BF16__)
  return (map.H + 1) / 2 * map.NV * map.V;
#else
  return map.panel_size(map.H);
#endif
}

// The AMX tiles of a step of `rows` rows, for its parallel region: tiles
// 0-3 (sums) and 4 (rows of A) of min(rows, 16) rows, 5-7 (weights) of 16;
// a tdpbf16ps then costs in proportion to the rows it has (a one-row step
// would pay for 16), and each row's sums are the same. No-op without AMX.
struct StepperTiles {
  explicit StepperTiles(int64_t rows) {
#if defined(__AMX_BF16__)
    AmxTileConfig cfg;
    for (int t = 0; t < 8; ++t) {
      cfg.colsb[t] = 64;
      cfg.rows[t] = static_cast<uint8_t>(t < 5 && rows < 16 ? (rows > 0 ? rows : 1) : 16);
    }
    amx_load_config(cfg);
#else
    (void)rows;
#endif
  }
  ~StepperTiles() {
#if defined(__AMX_BF16__)
    _tile_release();
#endif
  }
  StepperTiles(const StepperTiles&) = delete;
  StepperTiles& operator=(const StepperTiles&) = delete;
};

// The K blocks of the forward's bf16 product of depth K, as gemm_bf16 cuts
// them; depth (32-bit units) of a block of kc.
struct Bf16ColsBlocks {
  int64_t K = 0, kc = 1, blocks = 0;

  explicit Bf16ColsBlocks(int64_t K_) : K(K_) {
#if defined(__AVX512BF16__)
    kc = gemm_round_up(gemm_ceil_div(K, gemm_ceil_div(K, StepperBf16Kernel::KC)), 2);
#else
    kc = gemm_blocks<float>(1, 1, K).kc;
#endif
    blocks = gemm_ceil_div(K, kc);
  }
  int64_t k0(int64_t b) const { return b * kc; }
  int64_t len(int64_t b) const { return gemm_min(kc, K - b * kc); }
  static int64_t depth(int64_t n) {
#if defined(__AVX512BF16__)
    return StepperBf16Kernel::depth(n);
#else
    return n;
#endif
  }
  int64_t offset(int64_t b) const { return b * depth(kc); }  // every block but the last is kc long
  int64_t row_size() const { return gemm_round_up(offset(blocks - 1) + depth(len(blocks - 1)), 16); }
  int64_t packed_size(int64_t N) const { return gemm_ceil_div(N, kColsGroup) * kColsGroup * (offset(blocks - 1) + depth(len(blocks - 1))); }
};

// W (N, K), row stride ldw, packed as Wc above (zeros past N and kc).
inline void bf16_pack_cols(const Bf16ColsBlocks& kb, int64_t N, const float* W, int64_t ldw, float* dst) {
  const int64_t groups = gemm_ceil_div(N, kColsGroup);
  float* d = dst;
  for (int64_t b = 0; b < kb.blocks; ++b) {
    const int64_t k0 = kb.k0(b), kc = kb.len(b), D = Bf16ColsBlocks::depth(kc);
    for (int64_t g = 0; g < groups; ++g, d += D * kColsGroup) {
      for (int64_t i = 0; i < D; ++i)
        for (int j = 0; j < kColsGroup; ++j) {
          const int64_t n = g * kColsGroup + j;
#if defined(__AVX512BF16__)
          const int64_t k = k0 + 2 * i;
          const float lo = n < N && 2 * i < kc ? W[n * ldw + k] : 0.0f;
          const float hi = n < N && 2 * i + 1 < kc ? W[n * ldw + k + 1] : 0.0f;
          reinterpret_cast<uint32_t*>(d)[i * kColsGroup + j] = bf16_pair(lo, hi);
#else
          d[i * kColsGroup + j] = n < N && i < kc ? bf16_round(W[n * ldw + k0 + i]) : 0.0f;
#endif
        }
    }
  }
}

// Columns [c0, c1) (c0 even) of n rows of X (row stride ldx) into the
// converted rows Ac (row stride kb.row_size()); the other units untouched.
inline void bf16_convert_cols(const Bf16ColsBlocks& kb, const float* X, int64_t ldx, int64_t n, int64_t c0,
                              int64_t c1, float* Ac) {
  const int64_t stride = kb.row_size();
  for (int64_t b = 0; b < kb.blocks; ++b) {
    const int64_t k0 = kb.k0(b), k1 = k0 + kb.len(b);
    const int64_t lo = c0 > k0 ? c0 : k0, hi = c1 < k1 ? c1 : k1;
    if (lo >= hi) continue;
    for (int64_t r = 0; r < n; ++r) {
      const float* x = X + r * ldx;
      float* a = Ac + r * stride + kb.offset(b);
#if defined(__AVX512BF16__)
      bf16_row_words(x + lo, hi - lo, reinterpret_cast<uint32_t*>(a) + (lo - k0) / 2);
#else
      for (int64_t k = lo; k < hi; ++k) a[k - k0] = bf16_round(x[k]);
#endif
    }
  }
}

// C[r][n] for rows r < rows and the columns of groups [g0, g1) < N (C's row
// stride ldc): the bf16 forward's sums (see above). Ac: rows converted
// (with AMX, readable up to the next multiple of 16 rows).
inline void bf16_cols_product(const Bf16ColsBlocks& kb, int64_t rows, const float* Ac, const float* Wc, int64_t N,
                              int64_t g0, int64_t g1, float* C, int64_t ldc) {
  constexpr int G = kColsGroup;
  const int64_t groups = gemm_ceil_div(N, G), stride = kb.row_size();
  const Vec<float> one = Vec<float>::broadcast(1.0f);
  // C's group g of row r from the block's sums s
  auto put = [&](int64_t b, int64_t r, int64_t g, Vec<float> s) {
    float* c = C + r * ldc + g * G;
    const int cols = static_cast<int>(N - g * G < G ? N - g * G : G);
    const Vec<float> old = b == 0 ? Vec<float>::zero() : one * load_n(c, cols);
    store_n(fmadd(one, s, old), c, cols);
  };
  for (int64_t b = 0; b < kb.blocks; ++b) {
    const int64_t D = Bf16ColsBlocks::depth(kb.len(b));
    const float* Wb = Wc + kb.offset(b) * groups * G;  // every earlier block is kc deep
#if defined(__AMX_BF16__)
    // 16 rows x up to 4 groups a pass: tiles 0-3 the sums, 4 A, 5-7 (and 5) W
    alignas(64) float sums[4][256];
    const uint32_t* A = reinterpret_cast<const uint32_t*>(Ac) + kb.offset(b);
    for (int64_t r0 = 0; r0 < rows; r0 += 16) {
      for (int64_t g = g0; g < g1; g += 4) {
        const int ng = static_cast<int>(g1 - g < 4 ? g1 - g : 4);
        const uint32_t* w = reinterpret_cast<const uint32_t*>(Wb) + g * D * G;
        for (int t = 0; t < ng; ++t) {
          if (t == 0) _tile_zero(0);
          if (t == 1) _tile_zero(1);
          if (t == 2) _tile_zero(2);
          if (t == 3) _tile_zero(3);
        }
        for (int64_t d = 0; d < D; d += 16) {
          _tile_loadd(4, A + r0 * stride + d, stride * 4);
          _tile_loadd(5, w + d * G, 64);
          _tile_dpbf16ps(0, 4, 5);
          if (ng > 1) {
            _tile_loadd(6, w + (D + d) * G, 64);
            _tile_dpbf16ps(1, 4, 6);
          }
          if (ng > 2) {
            _tile_loadd(7, w + (2 * D + d) * G, 64);
            _tile_dpbf16ps(2, 4, 7);
          }
          if (ng > 3) {
            _tile_loadd(5, w + (3 * D + d) * G, 64);
            _tile_dpbf16ps(3, 4, 5);
          }
        }
        _tile_stored(0, sums[0], 64);
        if (ng > 1) _tile_stored(1, sums[1], 64);
        if (ng > 2) _tile_stored(2, sums[2], 64);
        if (ng > 3) _tile_stored(3, sums[3], 64);
        for (int64_t r = r0; r < rows && r < r0 + 16; ++r)
          for (int t = 0; t < ng; ++t) put(b, r, g + t, Vec<float>::load(sums[t] + (r - r0) * 16));
      }
    }
#else
    // Tiles of RT rows x GT groups: one chain each, over d in order.
    constexpr int RT = 4, GT = 4;
    for (int64_t r0 = 0; r0 < rows; r0 += RT) {
      const int nr = static_cast<int>(rows - r0 < RT ? rows - r0 : RT);
      for (int64_t g = g0; g < g1; g += GT) {
        const int ng = static_cast<int>(g1 - g < GT ? g1 - g : GT);
        const float* w[GT];
        const float* a[RT];
        for (int t = 0; t < GT; ++t) w[t] = Wb + (g + (t < ng ? t : 0)) * D * G;
        for (int i = 0; i < RT; ++i) a[i] = Ac + (r0 + (i < nr ? i : 0)) * stride + kb.offset(b);
        Vec<float> acc[RT][GT];
        for (int i = 0; i < RT; ++i)
          for (int t = 0; t < GT; ++t) acc[i][t] = Vec<float>::zero();
        for (int64_t d = 0; d < D; ++d) {
#if defined(__AVX512BF16__)
          __m512bh wd[GT];
          for (int t = 0; t < GT; ++t) wd[t] = (__m512bh)_mm512_loadu_si512(w[t] + d * G);
          for (int i = 0; i < RT; ++i) {
            const __m512bh x = (__m512bh)_mm512_set1_epi32(reinterpret_cast<const int*>(a[i])[d]);
            for (int t = 0; t < GT; ++t) acc[i][t] = Vec<float>(_mm512_dpbf16_ps(acc[i][t].v, x, wd[t]));
          }
#else
          Vec<float> wd[GT];
          for (int t = 0; t < GT; ++t) wd[t] = Vec<float>::load(w[t] + d * G);
          for (int i = 0; i < RT; ++i) {
            const Vec<float> x = Vec<float>::broadcast(a[i][d]);
            for (int t = 0; t < GT; ++t) acc[i][t] = fmadd(x, wd[t], acc[i][t]);
          }
#endif
        }
        for (int i = 0; i < nr; ++i)
          for (int t = 0; t < ng; ++t) put(b, r0 + i, g + t, acc[i][t]);
      }
    }
#endif
  }
}

// The rows of the "bf16" recurrent product (Bf16Rows' layout) for columns
// [c0, c1) (c0 even) of n rows of X (row stride ldx, K values).
inline void bf16_convert_state(const float* X, int64_t ldx, int64_t n, int64_t K, int64_t c0, int64_t c1,
                               float* rows) {
  const int64_t stride = bf16_row_stride(K);
  for (int64_t r = 0; r < n; ++r) {
#if defined(__AVX512BF16__)
    bf16_row_words(X + r * ldx + c0, c1 - c0, reinterpret_cast<uint32_t*>(rows + r * stride) + c0 / 2);
#else
    for (int64_t k = c0; k < c1; ++k) rows[r * stride + k] = bf16_round(X[r * ldx + k]);
#endif
  }
}

}  // namespace SEQCORE_ISA_NS
}  // namespace seqcore
