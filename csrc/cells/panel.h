// The recurrent product of the time loops, on a weight matrix packed once per
// call (generic code, see isa/kernels_impl.h).
//
// A panel holds the weights of one "unit" of output columns: NV vectors of V
// lanes each, for every k of the reduction, contiguous:
//
//   P[unit][k][q][lane]          q < NV, lane < V = Vec<T>::size
//
// so the micro-kernel streams it with unit stride and the thread that owns a
// unit keeps its panel in cache for all T steps. Output column of (unit, q,
// lane), as `PanelMap` says:
//   gated   (forward of LSTM/GRU): q is the gate, the NV gates of hidden units
//           [unit·V, unit·V + V) side by side: column q·H + unit·V + lane;
//   plain   (RNN forward, every backward): NV consecutive vectors of hidden
//           units: column unit·NV·V + q·V + lane.
// Lanes past H are packed as zeros.
namespace seqcore {
namespace SEQCORE_ISA_NS {

// Registers the micro-kernel may spend on accumulators.
#if defined(__AVX512F__)
constexpr int kAccumulators = 24;  // of 32 zmm
#elif defined(__AVX2__)
constexpr int kAccumulators = 12;  // of 16 ymm
#else
constexpr int kAccumulators = 8;
#endif

struct PanelMap {
  int64_t H;       // hidden units
  int NV;          // vectors per unit
  int V;           // lanes per vector
  bool gated;      // layout, see above
  int64_t unit_width() const { return gated ? V : static_cast<int64_t>(NV) * V; }
  int64_t units() const { return (H + unit_width() - 1) / unit_width(); }
  // hidden unit of (unit, q, lane); >= H for padding
  int64_t hidden(int64_t unit, int q, int lane) const {
    return unit * unit_width() + (gated ? 0 : q * V) + lane;
  }
  int64_t column(int64_t unit, int q, int lane) const {
    return (gated ? q * H : 0) + hidden(unit, q, lane);
  }
  int64_t panel_size(int64_t K) const { return K * NV * V; }
};

#if defined(__AVX512F__)
// fn(pq, n0, lanes) for each vector q of each unit of [u0, u1) of a map of
// V = 16 lanes: pq, its words in the unit's panel (P as 32-bit words, a
// panel of map.panel_size(K)); n0, the column of its lane 0 (the lanes are
// the 16 columns from n0); lanes, how many are real (at hidden units < H).
template <typename Fn>
void for_each_panel_vector(const PanelMap& map, int64_t K, float* P, int64_t u0, int64_t u1, Fn fn) {
  for (int64_t u = u0; u < u1; ++u) {
    uint32_t* p = reinterpret_cast<uint32_t*>(P + u * map.panel_size(K));
    for (int q = 0; q < map.NV; ++q) {
      const int64_t h0 = map.hidden(u, q, 0);
      fn(p + q * 16, map.column(u, q, 0), h0 >= map.H ? 0 : static_cast<int>(map.H - h0 < 16 ? map.H - h0 : 16));
    }
  }
}

// pq[w · step + lane] = word w of row n0 + lane of S, w < words, lanes past
// `lanes` zero: 16 rows x 16 words at a time (words(row, w0): 16 words of a
// row from w0, zeros past the row's end), transposed in registers.
template <typename Words>
void store_rows_transposed(uint32_t* pq, int64_t step, int64_t words, const float* S, int64_t lds, int64_t n0,
                           int lanes, Words row_words) {
  for (int64_t w0 = 0; w0 < words; w0 += 16) {
    __m512i w[16];
    for (int lane = 0; lane < 16; ++lane)
      w[lane] = lane < lanes ? row_words(S + (n0 + lane) * lds, w0) : _mm512_setzero_si512();
    transpose_16x16(w);
    for (int k = 0; k < 16 && w0 + k < words; ++k) _mm512_storeu_si512(pq + (w0 + k) * step, w[k]);
  }
}
#endif

// Packs the panels of units [u0, u1). The weight of (k, column n) is
// S[n * lds + k] (S holds columns as rows, as W_hh in the forward), or
// S[k * lds + n] when k_major (as W_hh in the backward).
//
// Columns as rows (every forward call packs W_hh so) are read a block of
// kPackDepth k at a time: a cache line of each lane's float32 row (two of
// a float64 row), written into a kPackDepth · NV · V block of the panel that
// stays in L1, where taking k one at a time read each lane's row with a
// stride of a row (at H = 1024, LSTM: 16.8 MB read 4 bytes a line, perf:
// ~5% of an inference call at B = 1). With AVX-512, float32: 16 lanes x 16 k
// in registers, transposed, a k stored a vector at a time (an inference call
// of T = 1, B = 1, H = 1024 another 28% faster: most of it is the pack).
constexpr int64_t kPackDepth = 16;

template <typename T>
void pack_panels(const PanelMap& map, int64_t K, const T* S, int64_t lds, bool k_major,
                 int64_t u0, int64_t u1, T* P) {
  const int64_t step = static_cast<int64_t>(map.NV) * map.V;  // between a panel's k
#if defined(__AVX512F__)
  if constexpr (sizeof(T) == 4) {
    if (!k_major && map.V == 16) {  // 16 lanes x 16 k a time, transposed in registers
      for_each_panel_vector(map, K, P, u0, u1, [&](uint32_t* pq, int64_t n0, int lanes) {
        store_rows_transposed(pq, step, K, S, lds, n0, lanes, [&](const float* row, int64_t k0) {
          const int64_t kn = K - k0 < 16 ? K - k0 : 16;
          return _mm512_castps_si512(_mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << kn) - 1), row + k0));
        });
      });
      return;
    }
  }
#endif
  for (int64_t u = u0; u < u1; ++u) {
    T* p = P + u * map.panel_size(K);
    if (k_major) {
      for (int64_t k = 0; k < K; ++k)
        for (int q = 0; q < map.NV; ++q)
          for (int lane = 0; lane < map.V; ++lane) {
            const bool real = map.hidden(u, q, lane) < map.H;
            *p++ = real ? S[k * lds + map.column(u, q, lane)] : T(0);
          }
      continue;
    }
    for (int64_t k0 = 0; k0 < K; k0 += kPackDepth) {
      const int64_t k1 = k0 + kPackDepth < K ? k0 + kPackDepth : K;
      for (int q = 0; q < map.NV; ++q)
        for (int lane = 0; lane < map.V; ++lane) {
          T* dst = p + k0 * step + q * map.V + lane;
          if (map.hidden(u, q, lane) >= map.H) {
            for (int64_t k = k0; k < k1; ++k, dst += step) *dst = T(0);
            continue;
          }
          const T* src = S + map.column(u, q, lane) * lds;
          for (int64_t k = k0; k < k1; ++k, dst += step) *dst = src[k];
        }
    }
  }
}

// Independent chains of panel_product for a tile of R rows of NV vectors:
// enough for 8 multiply-adds in flight.
template <int R, int NV>
constexpr int panel_chains() {
  return R * NV >= 8 ? 1 : (8 + R * NV - 1) / (R * NV);
}

// acc[r][q] = Σ_k A[r·lda + k] · P[k][q][:], for R rows of A. With few
// accumulators (a tile of one or two rows) the FMA latency would bound the
// loop, so k is dealt round-robin to KS independent chains, added up in a
// fixed order at the end: the result depends on R (through KS), never on
// the threads. A caller that fixes KS gets each row's sums whatever R.
//
// Where a unit's panel is over 64 KB (LSTM and GRU at H = 1024 with AVX2,
// the LSTM backward from H = 512), it is asked for 4 KB ahead of the loads:
// each step streams it from L3 or L2, and without this the loads waited on
// it (perf: the samples on the instructions after them). Measured on a
// Zen 3 (AVX2), 1 thread, builds in turns: 50×16×512×1024 forward and
// inference 2.5-5% faster (LSTM, GRU); on smaller panels it gained nothing
// and is not done.
constexpr int64_t panel_prefetch_bytes = 4096, panel_prefetch_from = 65536;

template <typename T, int R, int NV, int KS = panel_chains<R, NV>()>
inline void panel_product(int64_t K, const T* A, int64_t lda, const T* P, Vec<T> (&acc)[R][NV]) {
  constexpr int V = Vec<T>::size;
  constexpr int64_t line = 64 / static_cast<int64_t>(sizeof(T)), ahead = panel_prefetch_bytes / sizeof(T);
  Vec<T> chain[KS][R][NV];
  for (int s = 0; s < KS; ++s)
    for (int r = 0; r < R; ++r)
      for (int q = 0; q < NV; ++q) chain[s][r][q] = Vec<T>::zero();
  const bool prefetch = K * NV * V * static_cast<int64_t>(sizeof(T)) > panel_prefetch_from;
  int64_t k = 0;
  for (; k + KS <= K; k += KS) {
    // (past the panel's end this asks for lines it will not read: a
    // prefetch never faults)
    if (prefetch)
      for (int64_t o = 0; o < KS * NV * V; o += line) __builtin_prefetch(P + k * NV * V + ahead + o, 0, 3);
    for (int s = 0; s < KS; ++s) {
      Vec<T> w[NV];
      for (int q = 0; q < NV; ++q) w[q] = Vec<T>::load(P + ((k + s) * NV + q) * V);
      for (int r = 0; r < R; ++r) {
        const Vec<T> a = Vec<T>::broadcast(A[r * lda + k + s]);
        for (int q = 0; q < NV; ++q) chain[s][r][q] = fmadd(a, w[q], chain[s][r][q]);
      }
    }
  }
  for (int s = 0; k < K; ++k, ++s) {
    Vec<T> w[NV];
    for (int q = 0; q < NV; ++q) w[q] = Vec<T>::load(P + (k * NV + q) * V);
    for (int r = 0; r < R; ++r) {
      const Vec<T> a = Vec<T>::broadcast(A[r * lda + k]);
      for (int q = 0; q < NV; ++q) chain[s][r][q] = fmadd(a, w[q], chain[s][r][q]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < NV; ++q) {
      acc[r][q] = chain[0][r][q];
      for (int s = 1; s < KS; ++s) acc[r][q] = acc[r][q] + chain[s][r][q];
    }
}

// The rows a tile of the micro-kernel takes.
template <int NV>
constexpr int tile_rows() {
  return kAccumulators / NV > 0 ? kAccumulators / NV : 1;
}

// Calls epi.template tile<rows>(row0) with rows known at compile time.
template <int R, typename Epi>
inline void tile_of(int rows, Epi& epi, int64_t row0) {
  if constexpr (R >= 1) {
    if (rows == R) {
      epi.template tile<R>(row0);
    } else {
      tile_of<R - 1>(rows, epi, row0);
    }
  }
}

// Covers rows [0, B) with as few tiles as MR (tile_rows<NV>()) allows, of sizes
// that differ by at most one (32 rows in tiles of at most 6: 6,6,5,5,5,5
// rather than 6,6,6,6,6,2, whose last tile would waste the registers).
template <int NV, int MR = tile_rows<NV>(), typename Epi>
inline void for_each_tile(int64_t B, Epi& epi) {
  const int64_t tiles = (B + MR - 1) / MR;
  const int64_t base = B / tiles, extra = B % tiles;
  int64_t row0 = 0;
  for (int64_t i = 0; i < tiles; ++i) {
    const int rows = static_cast<int>(base + (i < extra ? 1 : 0));
    tile_of<MR>(rows, epi, row0);
    row0 += rows;
  }
}

// Units [u0, u1) of `units` owned by thread `tid` of `nth`: an even split,
// fixed for all steps.
inline void split_units(int64_t units, int tid, int nth, int64_t& u0, int64_t& u1) {
  const int64_t per = units / nth, extra = units % nth;
  u0 = tid * per + (tid < extra ? tid : extra);
  u1 = u0 + per + (tid < extra ? 1 : 0);
}

// The j-th unit (j in [u0, u1)) a worker visits in iteration s: ascending on
// even iterations, descending on odd ones. A worker reads all its panels
// once a step; where they exceed its L2, a pass leaves the panels it read
// last in L2, and the next pass, going the other way, starts with them
// rather than with the ones evicted longest ago (the worst order for LRU:
// every read a miss). At B = 1, H = 1024, 2 threads (8.4 MB of W_hh a
// thread, 2 MB of L2 a core, Sapphire Rapids) the product ran 25% faster
// with alternation. The unit order changes no sum: each unit's columns
// are summed on their own.
inline int64_t unit_in_order(int64_t j, int64_t u0, int64_t u1, int64_t s) {
  return (s & 1) != 0 ? u1 - 1 - (j - u0) : j;
}

// Vec of T from p[0, n): a full load when n == V.
template <typename T>
inline Vec<T> load_n(const T* p, int n) {
  return n == Vec<T>::size ? Vec<T>::load(p) : Vec<T>::load_partial(p, n);
}
template <typename T>
inline void store_n(Vec<T> v, T* p, int n) {
  if (n == Vec<T>::size) {
    v.store(p);
  } else {
    v.store_partial(p, n);
  }
}

}  // namespace SEQCORE_ISA_NS
}  // namespace seqcore
