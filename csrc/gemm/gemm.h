// Matrix product C = alpha * op(A) op(B) + beta * C, packed and cache-blocked
// in the style of GotoBLAS / BLIS (generic code, see isa/kernels_impl.h: it is
// compiled once per instruction set, with that ISA's Vec<T>).
//
//   for jc in N step NC            B panel (KC x NC), packed: L3, shared
//     for pc in K step KC
//       pack the B panel                           (threads share the packing)
//       for ic in M step MC        A block (MC x KC), packed: L2, per thread
//         pack the A block                         (work items: an A block
//         for jr in NC step NR     B micro-panel    times a range of jr, taken
//           for ir in MC step MR   (KC x NR): L2    by threads as they come)
//             micro-kernel: the MR x NR tile of C in registers, k over KC
//
// The register tile is MR rows x NV vectors (NR = NV * Vec<T>::size columns):
// each step of k loads NV vectors of B and broadcasts MR values of A into
// MR * NV fused multiply-adds. Panels are zero-padded to whole tiles; edge
// tiles run kernels with fewer rows or vectors, masking their loads and
// stores of C. The ISA's sizes come from GemmConfig<T> (gemm/config_<isa>.h).
// A product with one row or one column (M == 1 or N == 1) reads B, or A,
// in place instead (gemm_vector): packing would cost as much as the product.
//
// Determinism: every C element is the same chain of multiply-adds over the
// k of a K block, then one multiply-add with C, K blocks in order, whatever
// tile variant, block or thread computes it. The K blocks and the choice of
// the one-row path depend on the shape only; a thread always computes whole
// tiles. So the result does not depend on the number of threads, bit for bit.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

namespace seqcore {
namespace SEQCORE_ISA_NS {

// ---------------------------------------------------------------------------
// small helpers (no <algorithm> in ISA code)

inline int64_t gemm_min(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t gemm_ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t gemm_round_up(int64_t a, int64_t b) { return gemm_ceil_div(a, b) * b; }

// A 64-byte aligned scratch array of n elements, freed on scope exit.
template <typename T>
struct GemmBuffer {
  T* data;
  explicit GemmBuffer(int64_t n) {
    const int64_t bytes = gemm_round_up((n > 0 ? n : 1) * static_cast<int64_t>(sizeof(T)), 64);
    data = static_cast<T*>(std::aligned_alloc(64, static_cast<size_t>(bytes)));
    if (data == nullptr) throw std::bad_alloc();
  }
  ~GemmBuffer() { std::free(data); }
  GemmBuffer(const GemmBuffer&) = delete;
  GemmBuffer& operator=(const GemmBuffer&) = delete;
};

// ---------------------------------------------------------------------------
// cache blocks

// The blocks of one product. kc depends on K only, because it fixes the
// order of the sums; mc and nc only change what stays in cache.
struct GemmBlocks {
  int64_t kc;  // columns of op(A) = rows of op(B) per K block
  int64_t mc;  // rows of op(A) per packed block, a multiple of MR
  int64_t nc;  // columns of op(B) per packed panel, a multiple of NR
};

// Blocks of about equal size, at most KC (MC, NC, rounded up to whole
// tiles): K = 1100 with KC = 1024 gives two blocks of 550, not 1024 + 76.
template <typename T>
GemmBlocks gemm_blocks(int64_t M, int64_t N, int64_t K) {
  using Config = GemmConfig<T>;
  constexpr int64_t MR = Config::MR, NR = Config::NV * Vec<T>::size;
  GemmBlocks b;
  b.kc = gemm_ceil_div(K, gemm_ceil_div(K, Config::KC));
  b.mc = gemm_round_up(gemm_ceil_div(M, gemm_ceil_div(M, Config::MC)), MR);
  b.nc = gemm_round_up(gemm_ceil_div(N, gemm_ceil_div(N, Config::NC)), NR);
  return b;
}

// ---------------------------------------------------------------------------
// packing

// The block op(A)[0:mc, 0:kc] as micro-panels of MR rows: op(A)[p*MR + r][k]
// goes to dst[p*MR*kc + k*MR + r]; rows past mc are zero. A points at
// op(A)[0][0]: row-major (M, K) with row stride lda, or (K, M) if trans_a.
template <typename T, int MR, bool RB = false>
void gemm_pack_a(bool trans_a, int64_t mc, int64_t kc, const T* __restrict A, int64_t lda,
                 T* __restrict dst) {
  const int64_t full = mc / MR * MR;  // rows in whole panels
  const int rest = static_cast<int>(mc - full);
  if (trans_a) {
    // Row k of A holds column k of every panel: read it once, in order, and
    // deal it out MR values to a panel.
    for (int64_t k = 0; k < kc; ++k) {
      const T* s = A + k * lda;
      T* d = dst + k * MR;
      for (int64_t i0 = 0; i0 < full; i0 += MR) {
#pragma GCC unroll 16
        for (int r = 0; r < MR; ++r) d[i0 * kc + r] = gemm_operand<RB>(s[i0 + r]);
      }
      if (rest > 0) {
        for (int r = 0; r < rest; ++r) d[full * kc + r] = gemm_operand<RB>(s[full + r]);
        for (int r = rest; r < MR; ++r) d[full * kc + r] = T(0);
      }
    }
    return;
  }
  // MR rows of A side by side, each read along k.
  for (int64_t i0 = 0; i0 < full; i0 += MR) {
    const T* s = A + i0 * lda;
    T* d = dst + i0 * kc;
    for (int64_t k = 0; k < kc; ++k) {
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) d[k * MR + r] = gemm_operand<RB>(s[r * lda + k]);
    }
  }
  if (rest > 0) {
    const T* s = A + full * lda;
    T* d = dst + full * kc;
    for (int64_t k = 0; k < kc; ++k) {
      for (int r = 0; r < rest; ++r) d[k * MR + r] = gemm_operand<RB>(s[r * lda + k]);
      for (int r = rest; r < MR; ++r) d[k * MR + r] = T(0);
    }
  }
}

// The panel op(B)[0:kc, 0:nc] as micro-panels of NR columns: op(B)[k][p*NR + j]
// goes to dst[p*NR*kc + k*NR + j]; columns past nc are zero. B points at
// op(B)[0][0]: row-major (K, N) with row stride ldb, or (N, K) if trans_b.
template <typename T, int NR, bool RB = false>
void gemm_pack_b(bool trans_b, int64_t kc, int64_t nc, const T* __restrict B, int64_t ldb,
                 T* __restrict dst) {
  for (int64_t j0 = 0; j0 < nc; j0 += NR) {
    const int cols = static_cast<int>(gemm_min(NR, nc - j0));
    T* d = dst + j0 * kc;
    if (trans_b) {
      // Column j of op(B) is row j of B: a transpose, done KB values of k
      // at a time so that what it reads and writes stays in L1.
      constexpr int64_t KB = 64 / sizeof(T);
      for (int64_t k0 = 0; k0 < kc; k0 += KB) {
        const int64_t k1 = gemm_min(kc, k0 + KB);
        for (int j = 0; j < cols; ++j) {
          const T* s = B + (j0 + j) * ldb;
          for (int64_t k = k0; k < k1; ++k) d[k * NR + j] = gemm_operand<RB>(s[k]);
        }
        for (int j = cols; j < NR; ++j) {
          for (int64_t k = k0; k < k1; ++k) d[k * NR + j] = T(0);
        }
      }
    } else if (cols == NR && !RB) {
      for (int64_t k = 0; k < kc; ++k) std::memcpy(d + k * NR, B + k * ldb + j0, sizeof(T) * NR);
    } else {
      for (int64_t k = 0; k < kc; ++k) {
        const T* s = B + k * ldb + j0;
        for (int j = 0; j < cols; ++j) d[k * NR + j] = gemm_operand<RB>(s[j]);
        for (int j = cols; j < NR; ++j) d[k * NR + j] = T(0);
      }
    }
  }
}

// ---------------------------------------------------------------------------
// micro-kernel

// How a tile's sum S over one K block meets C: C = alpha * S + beta * C, with
// the caller's beta in the first K block and 1 after it. read_c is false only
// in the first K block when beta == 0: C is then written without being read,
// so NaN or garbage there cannot leak into the result.
template <typename T>
struct GemmEpilogue {
  T alpha;
  T beta;
  bool read_c;
};

// The MRK x nr tile of C at c (row stride ldc, nr <= NVK * V) from the packed
// micro-panels a (kc x MR) and b (kc x NR): the first MRK rows of a's panel
// and the first NVK vectors of b's. Edge tiles take a smaller MRK or NVK, so
// they do not multiply the zero padding. Each element of C is one chain of
// fmadd over k, then one fmadd with C, in every variant alike.
template <typename T, int MR, int NV, int MRK, int NVK>
void gemm_micro_kernel(int64_t kc, const T* __restrict a, const T* __restrict b,
                       T* __restrict c, int64_t ldc, int nr, const GemmEpilogue<T>& ep) {
  constexpr int V = Vec<T>::size;
  constexpr int NR = NV * V;
  constexpr int LINE = 64 / static_cast<int>(sizeof(T));  // elements per cache line

  // Ask for the tile of C now; it arrives while the k loop runs.
#pragma GCC unroll 32
  for (int i = 0; i < MRK; ++i) {
#pragma GCC unroll 8
    for (int j = 0; j < NVK * V; j += LINE) {
      if (j < nr) __builtin_prefetch(c + i * ldc + j, 1, 3);
    }
  }

  Vec<T> acc[MRK][NVK];
#pragma GCC unroll 32
  for (int i = 0; i < MRK; ++i) {
#pragma GCC unroll 8
    for (int j = 0; j < NVK; ++j) acc[i][j] = Vec<T>::zero();
  }
  for (int64_t k = 0; k < kc; ++k) {
    Vec<T> bk[NVK];
#pragma GCC unroll 8
    for (int j = 0; j < NVK; ++j) bk[j] = Vec<T>::load(b + j * V);
#pragma GCC unroll 32
    for (int i = 0; i < MRK; ++i) {
      const Vec<T> aik = Vec<T>::broadcast(a[i]);
#pragma GCC unroll 8
      for (int j = 0; j < NVK; ++j) acc[i][j] = fmadd(aik, bk[j], acc[i][j]);
    }
    a += MR;
    b += NR;
  }

  const Vec<T> alpha = Vec<T>::broadcast(ep.alpha);
  const Vec<T> beta = Vec<T>::broadcast(ep.beta);
  const bool full = nr == NVK * V;
#pragma GCC unroll 32
  for (int i = 0; i < MRK; ++i) {
    T* ci = c + i * ldc;
#pragma GCC unroll 8
    for (int j = 0; j < NVK; ++j) {
      const int cols = nr - j * V;  // columns of C left from this vector on
      if (full || cols >= V) {
        const Vec<T> old = ep.read_c ? beta * Vec<T>::load(ci + j * V) : Vec<T>::zero();
        fmadd(alpha, acc[i][j], old).store(ci + j * V);
      } else if (cols > 0) {
        const Vec<T> old =
            ep.read_c ? beta * Vec<T>::load_partial(ci + j * V, cols) : Vec<T>::zero();
        fmadd(alpha, acc[i][j], old).store_partial(ci + j * V, cols);
      }
    }
  }
}

// The mr x nr tile of C (mr <= MR, nr <= NR) with the kernel of MRK = mr
// rows and NVK = ceil(nr / V) vectors: a compile-time ladder of variants,
// the full tile first.
template <typename T, int MR, int NV, int MRK, int NVK>
inline void gemm_tile_cols(int nvk, int64_t kc, const T* a, const T* b, T* c, int64_t ldc,
                           int nr, const GemmEpilogue<T>& ep) {
  if constexpr (NVK > 1) {
    if (nvk < NVK) {
      gemm_tile_cols<T, MR, NV, MRK, NVK - 1>(nvk, kc, a, b, c, ldc, nr, ep);
      return;
    }
  }
  gemm_micro_kernel<T, MR, NV, MRK, NVK>(kc, a, b, c, ldc, nr, ep);
}

template <typename T, int MR, int NV, int MRK = MR>
inline void gemm_tile(int mr, int64_t kc, const T* a, const T* b, T* c, int64_t ldc, int nr,
                      const GemmEpilogue<T>& ep) {
  if constexpr (MRK > 1) {
    if (mr < MRK) {
      gemm_tile<T, MR, NV, MRK - 1>(mr, kc, a, b, c, ldc, nr, ep);
      return;
    }
  }
  constexpr int V = Vec<T>::size;
  gemm_tile_cols<T, MR, NV, MRK, NV>((nr + V - 1) / V, kc, a, b, c, ldc, nr, ep);
}

// ---------------------------------------------------------------------------
// the blocked product, on one thread or a team

// Takes the next of a phase's work items: the counter is shared by the team.
inline int64_t gemm_next(int64_t* counter) {
  int64_t item;
#pragma omp atomic capture
  item = (*counter)++;
  return item;
}

// A share of C (M,N) = alpha * op(A) op(B) + beta * C, done by a team of
// `team` threads that all call this (team == 1: the calling thread
// alone, no barriers, so it may run inside someone else's parallel region).
// For each B panel the team packs its micro-panels into the shared b_buf
// (blk.kc * blk.nc), then shares out work items, an A block times a range
// of B micro-panels, first come first served: a thread slowed down by
// another process takes fewer. Each thread packs its A blocks into its own
// a_buf (blk.mc * blk.kc). counters: 2 per (jc, pc) step, zero, shared.
// RB: the operands are rounded to bfloat16 as they are packed (gemm/bf16.h).
// packed_b: op(B) packed beforehand (gemm_pack_b_all), read from there
// instead of packed into b_buf.
template <typename T, bool RB = false>
void gemm_team(int team, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
               T alpha, const T* A, int64_t lda, const T* B, int64_t ldb, T beta, T* C,
               int64_t ldc, const GemmBlocks& blk, T* __restrict a_buf, T* __restrict b_buf,
               int64_t* counters, const T* packed_b = nullptr) {
  using Config = GemmConfig<T>;
  constexpr int MR = Config::MR, NV = Config::NV, NR = NV * Vec<T>::size;
  const int64_t m_blocks = gemm_ceil_div(M, blk.mc);
  for (int64_t jc = 0; jc < N; jc += blk.nc) {
    const int64_t nc = gemm_min(blk.nc, N - jc);
    const int64_t panels = gemm_ceil_div(nc, NR);
    // Work items: every A block times `chunks` ranges of B micro-panels,
    // enough of them for the team to balance (a single range when alone).
    const int64_t chunks = team == 1 ? 1 : gemm_min(panels, gemm_ceil_div(4 * team, m_blocks));
    const int64_t items = m_blocks * chunks;
    for (int64_t pc = 0; pc < K; pc += blk.kc, counters += 2) {
      const int64_t kc = gemm_min(blk.kc, K - pc);
      const GemmEpilogue<T> ep{alpha, pc == 0 ? beta : T(1), pc > 0 || beta != T(0)};
      const T* bp = b_buf;
      if (packed_b != nullptr) {
        bp = packed_b;
        packed_b += blk.kc * blk.nc;
      } else {
        for (int64_t p; (p = gemm_next(counters)) < panels;) {
          const int64_t j = jc + p * NR;
          gemm_pack_b<T, NR, RB>(trans_b, kc, gemm_min(NR, nc - p * NR),
                                 trans_b ? B + j * ldb + pc : B + pc * ldb + j, ldb,
                                 b_buf + p * NR * kc);
        }
        if (team > 1) {
#pragma omp barrier
        }
      }

      int64_t packed = -1;  // the A block in a_buf
      for (int64_t item; (item = gemm_next(counters + 1)) < items;) {
        const int64_t ib = item / chunks, chunk = item % chunks;
        const int64_t ic = ib * blk.mc, mc = gemm_min(blk.mc, M - ic);
        if (ib != packed) {
          gemm_pack_a<T, MR, RB>(trans_a, mc, kc,
                             trans_a ? A + pc * lda + ic : A + ic * lda + pc, lda, a_buf);
          packed = ib;
        }
        const int64_t j0 = panels * chunk / chunks * NR;
        const int64_t j1 = gemm_min(nc, panels * (chunk + 1) / chunks * NR);
        for (int64_t jr = j0; jr < j1; jr += NR) {
          const int nr = static_cast<int>(gemm_min(NR, nc - jr));
          for (int64_t ir = 0; ir < mc; ir += MR) {
            const int mr = static_cast<int>(gemm_min(MR, mc - ir));
            gemm_tile<T, MR, NV>(mr, kc, a_buf + ir * kc, bp + jr * kc,
                                 C + (ic + ir) * ldc + jc + jr, ldc, nr, ep);
          }
        }
      }
      // b_buf is packed anew for the next step, and a C tile's next K block
      // must come after this one.
      if (team > 1) {
#pragma omp barrier
      }
    }
  }
}

// ---------------------------------------------------------------------------
// one row or one column: c (1,N) = alpha * a op(B) + beta * c

// With M == 1 every element of B is used once, so packing B would cost as
// much as the product: these read B where it is, in one pass (N == 1 is the
// same, transposed). a is contiguous (K). Each c[j] is one chain over k =
// 0..K, the same whichever thread or block of columns computes it.

// B (K, N): sums over k kept in acc (one per column, in L1 for a block of
// JB columns), four rows of B at a time, each read along the row.
template <typename T>
void gemm_vector_rows(int64_t N, int64_t K, T alpha, const T* __restrict a,
                      const T* __restrict B, int64_t ldb, T beta, T* __restrict c,
                      T* __restrict acc) {
  constexpr int V = Vec<T>::size;
  constexpr int64_t JB = 4096 / static_cast<int64_t>(sizeof(T));
  for (int64_t j0 = 0; j0 < N; j0 += JB) {
    const int64_t n = gemm_min(JB, N - j0);
    const int64_t n_full = n / V * V;
    const int n_rest = static_cast<int>(n - n_full);
    const T* Bj = B + j0;
    for (int64_t j = 0; j < n; ++j) acc[j] = T(0);
    int64_t k = 0;
    for (; k + 4 <= K; k += 4) {
      const T* b0 = Bj + k * ldb;
      const T* b1 = b0 + ldb;
      const T* b2 = b1 + ldb;
      const T* b3 = b2 + ldb;
      const Vec<T> a0 = Vec<T>::broadcast(a[k]), a1 = Vec<T>::broadcast(a[k + 1]);
      const Vec<T> a2 = Vec<T>::broadcast(a[k + 2]), a3 = Vec<T>::broadcast(a[k + 3]);
      for (int64_t j = 0; j < n_full; j += V) {
        Vec<T> s = Vec<T>::load(acc + j);
        s = fmadd(a0, Vec<T>::load(b0 + j), s);
        s = fmadd(a1, Vec<T>::load(b1 + j), s);
        s = fmadd(a2, Vec<T>::load(b2 + j), s);
        s = fmadd(a3, Vec<T>::load(b3 + j), s);
        s.store(acc + j);
      }
      if (n_rest > 0) {
        const int64_t j = n_full;
        Vec<T> s = Vec<T>::load_partial(acc + j, n_rest);
        s = fmadd(a0, Vec<T>::load_partial(b0 + j, n_rest), s);
        s = fmadd(a1, Vec<T>::load_partial(b1 + j, n_rest), s);
        s = fmadd(a2, Vec<T>::load_partial(b2 + j, n_rest), s);
        s = fmadd(a3, Vec<T>::load_partial(b3 + j, n_rest), s);
        s.store_partial(acc + j, n_rest);
      }
    }
    for (; k < K; ++k) {
      const T* b0 = Bj + k * ldb;
      const Vec<T> a0 = Vec<T>::broadcast(a[k]);
      for (int64_t j = 0; j < n_full; j += V) {
        fmadd(a0, Vec<T>::load(b0 + j), Vec<T>::load(acc + j)).store(acc + j);
      }
      if (n_rest > 0) {
        const int64_t j = n_full;
        fmadd(a0, Vec<T>::load_partial(b0 + j, n_rest), Vec<T>::load_partial(acc + j, n_rest))
            .store_partial(acc + j, n_rest);
      }
    }
    // The same epilogue as the tiles: one fmadd with C.
    const Vec<T> valpha = Vec<T>::broadcast(alpha), vbeta = Vec<T>::broadcast(beta);
    T* cj = c + j0;
    for (int64_t j = 0; j < n_full; j += V) {
      const Vec<T> old = beta != T(0) ? vbeta * Vec<T>::load(cj + j) : Vec<T>::zero();
      fmadd(valpha, Vec<T>::load(acc + j), old).store(cj + j);
    }
    if (n_rest > 0) {
      const int64_t j = n_full;
      const Vec<T> old =
          beta != T(0) ? vbeta * Vec<T>::load_partial(cj + j, n_rest) : Vec<T>::zero();
      fmadd(valpha, Vec<T>::load_partial(acc + j, n_rest), old).store_partial(cj + j, n_rest);
    }
  }
}

// B (N, K): c[j] is the dot product of a with row j of B; four rows at a
// time, vectors along k, the last one partial, then a sum across lanes.
template <typename T>
void gemm_vector_dots(int64_t N, int64_t K, T alpha, const T* __restrict a,
                      const T* __restrict B, int64_t ldb, T beta, T* __restrict c) {
  constexpr int V = Vec<T>::size, ROWS = 4;
  const int64_t k_full = K / V * V;
  const int k_rest = static_cast<int>(K - k_full);
  for (int64_t j0 = 0; j0 < N; j0 += ROWS) {
    const int rows = static_cast<int>(gemm_min(ROWS, N - j0));
    Vec<T> acc[ROWS];
    const T* b[ROWS];
#pragma GCC unroll 4
    for (int r = 0; r < ROWS; ++r) {
      acc[r] = Vec<T>::zero();
      b[r] = B + (j0 + (r < rows ? r : 0)) * ldb;  // rows past N repeat row j0
    }
    for (int64_t k = 0; k < k_full; k += V) {
      const Vec<T> ak = Vec<T>::load(a + k);
#pragma GCC unroll 4
      for (int r = 0; r < ROWS; ++r) acc[r] = fmadd(ak, Vec<T>::load(b[r] + k), acc[r]);
    }
    if (k_rest > 0) {
      const Vec<T> ak = Vec<T>::load_partial(a + k_full, k_rest);
#pragma GCC unroll 4
      for (int r = 0; r < ROWS; ++r) {
        acc[r] = fmadd(ak, Vec<T>::load_partial(b[r] + k_full, k_rest), acc[r]);
      }
    }
    for (int r = 0; r < rows; ++r) {
      const T dot = reduce_add(acc[r]);
      c[j0 + r] = beta != T(0) ? alpha * dot + beta * c[j0 + r] : alpha * dot;
    }
  }
}

// Columns [n0, n1) of the one-row product; acc has room for 4096 bytes.
template <typename T>
void gemm_vector_part(bool dots, int64_t n0, int64_t n1, int64_t K, T alpha, const T* a,
                      const T* B, int64_t ldb, T beta, T* c, T* acc) {
  if (dots) {
    gemm_vector_dots(n1 - n0, K, alpha, a, B + n0 * ldb, ldb, beta, c + n0);
  } else {
    gemm_vector_rows(n1 - n0, K, alpha, a, B + n0, ldb, beta, c + n0, acc);
  }
}

// c (1,n) = alpha * x B + beta * c, where x is K values at stride incx, B is
// (K, n) or, with dots, (n, K), row stride ldb, and c is n values at stride
// incc: a product with one row (M == 1) or, transposed, one column (N == 1).
template <typename T>
void gemm_vector(bool dots, int64_t n, int64_t K, T alpha, const T* x, int64_t incx,
                 const T* B, int64_t ldb, T beta, T* c, int64_t incc, int threads) {
  // Per thread 4096 bytes of sums, then x and c gathered when strided.
  constexpr int64_t ACC = 4096 / static_cast<int64_t>(sizeof(T));
  GemmBuffer<T> buf(ACC * threads + (incx != 1 ? K : 0) + (incc != 1 ? n : 0));
  T* spare = buf.data + ACC * threads;
  const T* a = x;
  if (incx != 1) {
    for (int64_t k = 0; k < K; ++k) spare[k] = x[k * incx];
    a = spare;
    spare += K;
  }
  T* out = c;
  if (incc != 1) {
    if (beta != T(0)) {
      for (int64_t j = 0; j < n; ++j) spare[j] = c[j * incc];
    }
    out = spare;
  }
  if (threads == 1) {
    gemm_vector_part(dots, 0, n, K, alpha, a, B, ldb, beta, out, buf.data);
  } else {
#ifdef _OPENMP
    // Blocks of 256 columns, first come first served.
    const int64_t blocks = gemm_ceil_div(n, 256);
#pragma omp parallel num_threads(threads)
    {
      T* acc = buf.data + ACC * omp_get_thread_num();
#pragma omp for schedule(dynamic)
      for (int64_t i = 0; i < blocks; ++i) {
        gemm_vector_part(dots, i * 256, gemm_min(n, i * 256 + 256), K, alpha, a, B, ldb, beta,
                         out, acc);
      }
    }
#endif
  }
  if (incc != 1) {
    for (int64_t j = 0; j < n; ++j) c[j * incc] = out[j];
  }
}

// C = beta * C, or zeros when beta == 0 (C not read): the whole product when
// K == 0 or alpha == 0 (then, as in BLAS, A and B are not read).
template <typename T>
void gemm_scale_c(int64_t M, int64_t N, T beta, T* C, int64_t ldc) {
  if (beta == T(1)) return;
  for (int64_t i = 0; i < M; ++i) {
    T* ci = C + i * ldc;
    for (int64_t j = 0; j < N; ++j) ci[j] = beta == T(0) ? T(0) : beta * ci[j];
  }
}

// ---------------------------------------------------------------------------
// threads

// Threads worth starting: 1, or all the call offers when the product is
// worth a team (plan.h, plan_product_threads). All of them rather than a
// share: libgomp ends the pool's threads that a smaller team leaves out
// and starts them again for the next larger team, so every region of a
// call asks for the same team; the work items are shared out first come
// first served, so a thread with nothing left is idle, not waited for.
// Inside a parallel region the product runs on the calling thread alone:
// never a nested region, never more threads than the caller planned for.
inline int gemm_threads(int num_threads, int64_t M, int64_t N, int64_t K) {
#ifdef _OPENMP
  if (num_threads <= 1 || omp_get_level() > 0) return 1;
  return plan_product_threads(M, N, K, num_threads);
#else
  (void)num_threads, (void)M, (void)N, (void)K;
  return 1;
#endif
}

// RB: op(A) and op(B) rounded to bfloat16 as they are packed (gemm/bf16.h);
// the one-row paths, which do not pack, are not taken then.
// gemm with packed_b: op(B) packed beforehand by gemm_pack_b_all (or
// null); a product of one row or column reads B where it is all the same.
template <typename T, bool RB = false>
void gemm_packed(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha,
                 const T* A, int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc,
                 int num_threads, const T* packed_b) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == T(0)) {
    gemm_scale_c(M, N, beta, C, ldc);
    return;
  }
  const int threads = gemm_threads(num_threads, M, N, K);
  if (M == 1 && !RB) {
    // op(A)'s row times op(B): B (K, N) row by row, or (N, K) by dot products.
    gemm_vector(trans_b, N, K, alpha, A, trans_a ? lda : 1, B, ldb, beta, C, 1, threads);
    return;
  }
  if (N == 1 && !RB) {
    // Transposed: op(B)'s column times op(A)^T, which is A (K, M) read row
    // by row, or A (M, K) by dot products.
    gemm_vector(!trans_a, M, K, alpha, B, trans_b ? 1 : ldb, A, lda, beta, C, ldc, threads);
    return;
  }
  const GemmBlocks blk = gemm_blocks<T>(M, N, K);
  // Buffers, allocated here so that a failure throws outside the parallel
  // region: the shared B panel, each thread's A block, the work counters.
  const int64_t a_size = blk.mc * blk.kc, b_size = packed_b != nullptr ? 0 : blk.kc * blk.nc;
  const int64_t steps = gemm_ceil_div(N, blk.nc) * gemm_ceil_div(K, blk.kc);
  GemmBuffer<T> buf(b_size + a_size * threads);
  GemmBuffer<int64_t> counters(2 * steps);
  for (int64_t i = 0; i < 2 * steps; ++i) counters.data[i] = 0;
  if (threads == 1) {
    gemm_team<T, RB>(1, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, blk,
              buf.data + b_size, buf.data, counters.data, packed_b);
    return;
  }
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
  {
    // The team may be smaller than asked for: gemm_team shares out the
    // work among those present.
    const int team = omp_get_num_threads(), t = omp_get_thread_num();
    gemm_team<T, RB>(team, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, blk,
              buf.data + b_size + a_size * t, buf.data, counters.data, packed_b);
  }
#endif
}

template <typename T, bool RB = false>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha,
          const T* A, int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc,
          int num_threads) {
  gemm_packed<T, RB>(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, num_threads, nullptr);
}

// ---------------------------------------------------------------------------
// op(B) packed once for several products

// For products that share op(B) (N columns, K rows) and differ in A (the
// input projection of an inference, a chunk of steps at a time): op(B) as
// gemm_team packs it, every (jc, pc) step's panels one after the other in
// blocks of kc·nc (they depend on N and K only). Elements it takes:
template <typename T>
int64_t gemm_packed_b_size(int64_t N, int64_t K) {
  const GemmBlocks blk = gemm_blocks<T>(1, N, K);
  return gemm_ceil_div(N, blk.nc) * gemm_ceil_div(K, blk.kc) * blk.kc * blk.nc;
}

template <typename T, bool RB = false>
void gemm_pack_b_all(bool trans_b, int64_t N, int64_t K, const T* B, int64_t ldb, T* dst) {
  constexpr int NR = GemmConfig<T>::NV * Vec<T>::size;
  const GemmBlocks blk = gemm_blocks<T>(1, N, K);
  for (int64_t jc = 0; jc < N; jc += blk.nc) {
    const int64_t nc = gemm_min(blk.nc, N - jc), panels = gemm_ceil_div(nc, NR);
    for (int64_t pc = 0; pc < K; pc += blk.kc, dst += blk.kc * blk.nc) {
      const int64_t kc = gemm_min(blk.kc, K - pc);
      for (int64_t p = 0; p < panels; ++p) {
        const int64_t j = jc + p * NR;
        gemm_pack_b<T, NR, RB>(trans_b, kc, gemm_min(NR, nc - p * NR),
                               trans_b ? B + j * ldb + pc : B + pc * ldb + j, ldb, dst + p * NR * kc);
      }
    }
  }
}

}  // namespace SEQCORE_ISA_NS
}  // namespace seqcore
