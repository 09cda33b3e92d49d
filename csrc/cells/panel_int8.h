// int8 products with exact int32 sums (precision "int8", inference; generic
// code, see isa/kernels_impl.h; the scheme: seqcore/reference/int8.py).
//
// Weights W (N, K), quantized once per output row (symmetric, scale s_w),
// packed in the panels of a PanelMap as the float32 panels are (panel.h),
// the k of a column four to a 32-bit lane and padded with zeros to a
// multiple of 64 (kInt8Block: one AMX tile's depth):
//   P[unit][kg][q][lane][i] = W_q[column(unit, q, lane)][4·kg + i]     (int8)
// with, per unit, s_w and the compensation 128 · Σ_k W_q (int32) of each
// (q, lane). Activations (rows of x, of h at each step) are quantized per
// row (symmetric, scale s_a) into a row buffer of kInt8Block-padded rows:
// bytes a_q + 128 (uint8) where the product is VNNI's or AMX's unsigned ×
// signed dot product, else a_q (int8). The sums of a (row, unit) are
//   S[q][lane] = Σ_k a_q[k] · W_q[col][k]
// (the unsigned products' sums less the compensation), exact on every
// ISA, then y = float(S) · s_a · s_w, in float32, in this order.
//   AVX512-VNNI   vpdpbusd, 16 lanes     AVX-VNNI (AVX2)  vpdpbusd, 8 lanes
//   AMX-INT8      tdpbusd on 16 x 64 tiles of 16 rows
//   AVX-512, AVX2 without VNNI: the bytes widened to 16 bits, vpmaddwd
//   (exact: no vpmaddubsw, whose 16-bit pair sums saturate)
//   scalar        int32 arithmetic
namespace seqcore {
namespace SEQCORE_ISA_NS {

constexpr int64_t kInt8Block = 64;  // k per block: rows and panels are padded to it

#if defined(__AVX512VNNI__) || defined(__AVXVNNI__)
constexpr bool kInt8Unsigned = true;  // rows hold a_q + 128
#else
constexpr bool kInt8Unsigned = false;
#endif

inline int64_t int8_depth(int64_t K) { return (K + kInt8Block - 1) / kInt8Block * kInt8Block; }

// Rows a row buffer holds for n rows: AMX tiles read 16 rows at a time.
inline int64_t int8_buffer_rows(int64_t n) { return (n + 15) / 16 * 16; }

// Bytes of a unit's panel of depth K.
inline int64_t int8_panel_bytes(const PanelMap& map, int64_t K) { return int8_depth(K) * map.NV * map.V; }

// One packed matrix: the panels of every unit, then per (unit, q, lane) the
// scale s_w and the compensation.
struct Int8Panels {
  const int8_t* panels = nullptr;  // units · int8_panel_bytes
  const float* scales = nullptr;   // (units, NV, V)
  const int32_t* comp = nullptr;   // (units, NV, V)
  int64_t K = 0;
};

// s = max|a| / 127 and the bytes of one row of K values, padded with zeros
// (a_q = 0) to Kp; rows whose max |a| is below 2^-100 are all zeros, s = 0.
// One IEEE operation at a time, as reference.int8.quantize_rows.
inline float int8_quantize_row(const float* a, int64_t K, int64_t Kp, uint8_t* dst) {
  // max |a| (exact in any order; vectorised: the rows are quantized at every step)
  float amax = 0.0f;
  int64_t k0 = 0;
#if defined(__AVX512F__)
  __m512 vmax = _mm512_setzero_ps();
  for (; k0 + 16 <= K; k0 += 16) vmax = _mm512_max_ps(vmax, _mm512_abs_ps(_mm512_loadu_ps(a + k0)));
  amax = _mm512_reduce_max_ps(vmax);
#elif defined(__AVX2__)
  const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 vmax = _mm256_setzero_ps();
  for (; k0 + 8 <= K; k0 += 8) vmax = _mm256_max_ps(vmax, _mm256_and_ps(_mm256_loadu_ps(a + k0), magnitude));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, vmax);
  for (int i = 0; i < 8; ++i) amax = lanes[i] > amax ? lanes[i] : amax;
#endif
  for (int64_t k = k0; k < K; ++k) {
    const float v = std::fabs(a[k]);
    amax = v > amax ? v : amax;
  }
  const uint8_t shift = kInt8Unsigned ? 128 : 0;
  if (!(amax >= 7.8886090522101181e-31f)) {  // 2^-100
    std::memset(dst, shift, static_cast<size_t>(Kp));
    return 0.0f;
  }
  const float inv = 127.0f / amax;
  int64_t k = 0;
#if defined(__AVX512F__)
  const __m512 vinv = _mm512_set1_ps(inv);
  const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127), sh = _mm512_set1_epi32(shift);
  for (; k + 16 <= K; k += 16) {
    __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(a + k), vinv));  // nearest even
    q = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(q, lo), hi), sh);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + k), _mm512_cvtepi32_epi8(q));
  }
#elif defined(__AVX2__)
  const __m256 vinv = _mm256_set1_ps(inv);
  const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127), sh = _mm256_set1_epi32(shift);
  for (; k + 8 <= K; k += 8) {
    __m256i q = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(a + k), vinv));
    q = _mm256_add_epi32(_mm256_min_epi32(_mm256_max_epi32(q, lo), hi), sh);
    alignas(32) int32_t w[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(w), q);
    for (int i = 0; i < 8; ++i) dst[k + i] = static_cast<uint8_t>(w[i]);
  }
#endif
  for (; k < K; ++k) {
    float q = std::nearbyint(a[k] * inv);  // the current rounding: nearest even
    q = q < -127.0f ? -127.0f : q > 127.0f ? 127.0f : q;
    dst[k] = static_cast<uint8_t>(static_cast<int32_t>(q) + shift);
  }
  std::memset(dst + K, shift, static_cast<size_t>(Kp - K));
  return amax / 127.0f;
}

// Packs W (N = the map's columns, K), row stride ldw, for units [u0, u1).
// panels: units · int8_panel_bytes(map, K) bytes; scales, comp: units · NV · V.
inline void int8_pack_panels(const PanelMap& map, int64_t K, const float* W, int64_t ldw, int64_t u0, int64_t u1,
                             int8_t* panels, float* scales, int32_t* comp) {
  const int64_t Kp = int8_depth(K), NV = map.NV, V = map.V;
  uint8_t* row = static_cast<uint8_t*>(std::malloc(static_cast<size_t>(Kp)));
  if (row == nullptr) throw std::bad_alloc();
  for (int64_t u = u0; u < u1; ++u) {
    int8_t* p = panels + u * int8_panel_bytes(map, K);
    for (int64_t q = 0; q < NV; ++q) {
      for (int64_t lane = 0; lane < V; ++lane) {
        const int64_t at = (u * NV + q) * V + lane;
        float s = 0.0f;
        int32_t sum = 0;
        if (map.hidden(u, static_cast<int>(q), static_cast<int>(lane)) < map.H) {
          const int64_t n = map.column(u, static_cast<int>(q), static_cast<int>(lane));
          s = int8_quantize_row(W + n * ldw, K, Kp, row);
          for (int64_t k = 0; k < Kp; ++k) {
            const int8_t w = static_cast<int8_t>(row[k] - (kInt8Unsigned ? 128 : 0));
            sum += w;
            p[((k / 4 * NV + q) * V + lane) * 4 + k % 4] = w;
          }
        } else {
          for (int64_t k = 0; k < Kp; ++k) p[((k / 4 * NV + q) * V + lane) * 4 + k % 4] = 0;
        }
        scales[at] = s;
        comp[at] = kInt8Unsigned ? 128 * sum : 0;
      }
    }
  }
  std::free(row);
}

// Independent chains of sums for a tile of R rows of NV vectors: enough for
// 8 dot products in flight (vpdpbusd's latency is 5 cycles, two issue a
// cycle). A power of two, so that it divides the 16 groups of a block. The
// sums are integers: any split of k gives the same bits.
template <int R, int NV>
constexpr int int8_chains() {
  return R * NV >= 8 ? 1 : R * NV >= 4 ? 2 : R * NV >= 2 ? 4 : 8;
}

// S[r][q·V + lane] for R rows of a row buffer (rows `stride` bytes apart)
// and one unit's panel p of depth Kp: the exact int32 sums.
template <int R, int NV>
inline void int8_panel_sums(int64_t Kp, const uint8_t* rows, int64_t stride, const int8_t* p, const int32_t* comp,
                            int32_t (*S)[NV * Vec<float>::size]) {
  constexpr int V = Vec<float>::size, KS = int8_chains<R, NV>();
  const int64_t groups = Kp / 4;  // a multiple of 16
#if defined(__AVX512F__)
  __m512i acc[KS][R][NV];
  for (int s = 0; s < KS; ++s)
    for (int r = 0; r < R; ++r)
      for (int q = 0; q < NV; ++q) acc[s][r][q] = _mm512_setzero_si512();
  for (int64_t g0 = 0; g0 < groups; g0 += KS) {
    for (int s = 0; s < KS; ++s) {
      const int64_t g = g0 + s;
      __m512i w[NV];
      for (int q = 0; q < NV; ++q) w[q] = _mm512_loadu_si512(p + (g * NV + q) * 64);
#if defined(__AVX512VNNI__)
      for (int r = 0; r < R; ++r) {
        int32_t word;
        std::memcpy(&word, rows + r * stride + 4 * g, 4);
        const __m512i a = _mm512_set1_epi32(word);
        for (int q = 0; q < NV; ++q) acc[s][r][q] = _mm512_dpbusd_epi32(acc[s][r][q], a, w[q]);
      }
#else
      __m512i w_even[NV], w_odd[NV];  // bytes 0, 2 and 1, 3 of each lane, as 16-bit words
      for (int q = 0; q < NV; ++q) {
        w_even[q] = _mm512_srai_epi16(_mm512_slli_epi16(w[q], 8), 8);
        w_odd[q] = _mm512_srai_epi16(w[q], 8);
      }
      for (int r = 0; r < R; ++r) {
        int32_t word;
        std::memcpy(&word, rows + r * stride + 4 * g, 4);
        const __m512i a = _mm512_set1_epi32(word);
        const __m512i a_even = _mm512_srai_epi16(_mm512_slli_epi16(a, 8), 8), a_odd = _mm512_srai_epi16(a, 8);
        for (int q = 0; q < NV; ++q)
          acc[s][r][q] = _mm512_add_epi32(acc[s][r][q], _mm512_add_epi32(_mm512_madd_epi16(a_even, w_even[q]),
                                                                        _mm512_madd_epi16(a_odd, w_odd[q])));
      }
#endif
    }
  }
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < NV; ++q) {
      __m512i sum = acc[0][r][q];
      for (int s = 1; s < KS; ++s) sum = _mm512_add_epi32(sum, acc[s][r][q]);
      _mm512_storeu_si512(S[r] + q * V, _mm512_sub_epi32(sum, _mm512_loadu_si512(comp + q * V)));
    }
#elif defined(__AVX2__)
  __m256i acc[KS][R][NV];
  for (int s = 0; s < KS; ++s)
    for (int r = 0; r < R; ++r)
      for (int q = 0; q < NV; ++q) acc[s][r][q] = _mm256_setzero_si256();
  for (int64_t g0 = 0; g0 < groups; g0 += KS) {
    for (int s = 0; s < KS; ++s) {
      const int64_t g = g0 + s;
      __m256i w[NV];
      for (int q = 0; q < NV; ++q)
        w[q] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + (g * NV + q) * 32));
#if defined(__AVXVNNI__)
      for (int r = 0; r < R; ++r) {
        int32_t word;
        std::memcpy(&word, rows + r * stride + 4 * g, 4);
        const __m256i a = _mm256_set1_epi32(word);
        for (int q = 0; q < NV; ++q) acc[s][r][q] = _mm256_dpbusd_avx_epi32(acc[s][r][q], a, w[q]);
      }
#else
      __m256i w_even[NV], w_odd[NV];
      for (int q = 0; q < NV; ++q) {
        w_even[q] = _mm256_srai_epi16(_mm256_slli_epi16(w[q], 8), 8);
        w_odd[q] = _mm256_srai_epi16(w[q], 8);
      }
      for (int r = 0; r < R; ++r) {
        int32_t word;
        std::memcpy(&word, rows + r * stride + 4 * g, 4);
        const __m256i a = _mm256_set1_epi32(word);
        const __m256i a_even = _mm256_srai_epi16(_mm256_slli_epi16(a, 8), 8), a_odd = _mm256_srai_epi16(a, 8);
        for (int q = 0; q < NV; ++q)
          acc[s][r][q] = _mm256_add_epi32(acc[s][r][q], _mm256_add_epi32(_mm256_madd_epi16(a_even, w_even[q]),
                                                                        _mm256_madd_epi16(a_odd, w_odd[q])));
      }
#endif
    }
  }
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < NV; ++q) {
      __m256i sum = acc[0][r][q];
      for (int s = 1; s < KS; ++s) sum = _mm256_add_epi32(sum, acc[s][r][q]);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(S[r] + q * V),
                          _mm256_sub_epi32(sum, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(comp + q * V))));
    }
#else
  (void)KS;
  for (int r = 0; r < R; ++r) {
    const int8_t* a = reinterpret_cast<const int8_t*>(rows + r * stride);
    for (int q = 0; q < NV; ++q)
      for (int lane = 0; lane < V; ++lane) {
        int32_t sum = 0;
        for (int64_t g = 0; g < groups; ++g)
          for (int i = 0; i < 4; ++i) sum += a[4 * g + i] * p[((g * NV + q) * V + lane) * 4 + i];
        S[r][q * V + lane] = sum - comp[q * V + lane];
      }
  }
#endif
}

#if defined(__AMX_INT8__)
// S for 16 rows (rows past those wanted give sums not used) with AMX-INT8:
// per block of 64 k, the rows' tile (16 x 64 bytes) times each q's panel
// tile (16 groups of 4 k x 16 lanes, rows NV·64 bytes apart), into tiles
// 0 … NV-1 of int32 sums. The tile configuration: amx_configure (16 rows
// of 64 bytes for every tile), loaded by the caller (Int8TileScope).
template <int NV>
inline void int8_amx_sums(int64_t Kp, const uint8_t* rows, int64_t stride, const int8_t* p, int32_t* out) {
  static_assert(NV >= 1 && NV <= 4, "tiles 0-3 hold the sums");
  _tile_zero(0);
  if constexpr (NV > 1) _tile_zero(1);
  if constexpr (NV > 2) _tile_zero(2);
  if constexpr (NV > 3) _tile_zero(3);
  for (int64_t c = 0; c < Kp / kInt8Block; ++c) {
    const int8_t* pc = p + c * 16 * NV * 64;
    _tile_loadd(4, rows + c * kInt8Block, stride);
    _tile_loadd(5, pc, NV * 64);
    _tile_dpbusd(0, 4, 5);
    if constexpr (NV > 1) {
      _tile_loadd(6, pc + 64, NV * 64);
      _tile_dpbusd(1, 4, 6);
    }
    if constexpr (NV > 2) {
      _tile_loadd(7, pc + 128, NV * 64);
      _tile_dpbusd(2, 4, 7);
    }
    if constexpr (NV > 3) {
      _tile_loadd(5, pc + 192, NV * 64);
      _tile_dpbusd(3, 4, 5);
    }
  }
  _tile_stored(0, out, 64);
  if constexpr (NV > 1) _tile_stored(1, out + 256, 64);
  if constexpr (NV > 2) _tile_stored(2, out + 512, 64);
  if constexpr (NV > 3) _tile_stored(3, out + 768, 64);
}
#endif

// AMX's tile configuration for the scope of a parallel region's thread (a
// no-op without AMX-INT8).
struct Int8TileScope {
  Int8TileScope() {
#if defined(__AMX_INT8__)
    amx_configure();
#endif
  }
  ~Int8TileScope() {
#if defined(__AMX_INT8__)
    _tile_release();
#endif
  }
  Int8TileScope(const Int8TileScope&) = delete;
  Int8TileScope& operator=(const Int8TileScope&) = delete;
};

// Rows [0, n) of a row buffer (int8_buffer_rows(n) rows, `stride` bytes
// apart) against unit u of m: done(row, S) with S[q·V + lane] the row's
// exact sums. AMX takes 16 rows at a time where there are 8 or more.
template <int NV, typename Done>
inline void int8_unit_sums(const Int8Panels& m, const PanelMap& map, int64_t u, const uint8_t* rows, int64_t stride,
                           int64_t n, Done&& done) {
  constexpr int V = Vec<float>::size, W = NV * V;
  const int64_t Kp = int8_depth(m.K);
  const int8_t* p = m.panels + u * int8_panel_bytes(map, m.K);
  const int32_t* comp = m.comp + u * W;
  int64_t r = 0;
#if defined(__AMX_INT8__)
  if (n >= 8) {
    alignas(64) int32_t T[NV * 256];
    for (; r < n; r += 16) {
      int8_amx_sums<NV>(Kp, rows + r * stride, stride, p, T);
      for (int64_t i = 0; i < 16 && r + i < n; ++i) {
        alignas(64) int32_t S[W];
        for (int q = 0; q < NV; ++q)
          for (int lane = 0; lane < V; ++lane) S[q * V + lane] = T[q * 256 + i * 16 + lane] - comp[q * V + lane];
        done(r + i, static_cast<const int32_t*>(S));
      }
    }
    return;
  }
#endif
  constexpr int RB = 4;
  alignas(64) int32_t S[RB][W];
  for (; r + RB <= n; r += RB) {
    int8_panel_sums<RB, NV>(Kp, rows + r * stride, stride, p, comp, S);
    for (int i = 0; i < RB; ++i) done(r + i, static_cast<const int32_t*>(S[i]));
  }
  for (; r < n; ++r) {
    int8_panel_sums<1, NV>(Kp, rows + r * stride, stride, p, comp, S);
    done(r, static_cast<const int32_t*>(S[0]));
  }
}

// The same, dequantized: done(row, acc) with acc[q] = float(S) · s_a[row] · s_w
// (NV vectors; in this order, as reference.int8.dequantize).
template <int NV, typename Done>
inline void int8_unit_rows(const Int8Panels& m, const PanelMap& map, int64_t u, const uint8_t* rows, int64_t stride,
                           const float* row_scales, int64_t n, Done&& done) {
  constexpr int V = Vec<float>::size, W = NV * V;
  const float* sw = m.scales + u * W;
  int8_unit_sums<NV>(m, map, u, rows, stride, n, [&](int64_t row, const int32_t* S) {
    alignas(64) float y[W];
    const float sa = row_scales[row];
    for (int i = 0; i < W; ++i) y[i] = static_cast<float>(S[i]) * sa * sw[i];
    Vec<float> acc[NV];
    for (int q = 0; q < NV; ++q) {
      acc[q] = Vec<float>::load(y + q * V);
      // The products as rounded: GCC contracts a product and a sum into an
      // FMA where it sees both (C++'s default -ffp-contract=fast), here or
      // not depending on what inlines where, which would make a row's
      // result depend on its tile (seen: the stepper against the forward).
      __asm__ volatile("" : "+m"(acc[q]));
    }
    done(row, static_cast<const Vec<float>*>(acc));
  });
}

// Unit u's NV vectors of one row into that row's columns (out_row: G·H
// values), as the map places them; lanes past H are not written.
template <int NV>
inline void int8_store_columns(const PanelMap& map, int64_t u, const Vec<float>* acc, float* out_row) {
  constexpr int V = Vec<float>::size;
  for (int q = 0; q < NV; ++q) {
    const int64_t j = map.hidden(u, q, 0);
    if (j >= map.H) break;
    store_n(acc[q], out_row + map.column(u, q, 0), static_cast<int>(map.H - j < V ? map.H - j : V));
  }
}

}  // namespace SEQCORE_ISA_NS
}  // namespace seqcore
