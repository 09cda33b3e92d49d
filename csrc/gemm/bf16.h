// Matrix products with bfloat16 operands and float32 sums (precision
// "bf16"; generic code, see isa/kernels_impl.h):
//   C = alpha * bf16(op(A)) bf16(op(B)) + beta * C,   A, B, C float32,
// bf16() rounding as gemm/bf16_round.h. Three ways, by ISA:
//   AMX-BF16 (amx_bf16): the packing converts the operands to bfloat16
//     pairs in whole tiles and tdpbf16ps multiplies 16 x 32 by 32 x 16
//     (Bf16AmxKernel);
//   AVX512-BF16 (avx512_bf16): bfloat16 pairs and vdpbf16ps, two products
//     added to a float32 sum per lane (Bf16DotKernel);
//   elsewhere: gemm.h's float32 product packs the operands rounded to
//     bfloat16 (gemm<float, true>),
// so every x86-64 CPU computes the same products, summed in another order.
//
// Both bfloat16 kernels run gemm.h's blocking (B panels shared by the team,
// A blocks per thread, work items taken as they come; bf16_gemm_team) and
// keep its determinism: each C element is one chain of sums over the pairs
// of k of a K block, then one multiply-add with C, K blocks in order,
// whatever thread computes it. Packed layouts are in 32-bit words (a pair of
// bfloat16, the even k in the lower half), zero past the matrix and past kc;
// each kernel describes its own.
namespace seqcore {
namespace SEQCORE_ISA_NS {

#if defined(__AVX512BF16__)

// 16 words from two vectors: lane l holds (even[l], odd[l]) in bfloat16.
inline __m512i bf16_pairs(__m512 even, __m512 odd) {
  const __m512i e = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(even));
  const __m512i o = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(odd));
  return _mm512_or_si512(e, _mm512_slli_epi32(o, 16));
}

inline __mmask16 bf16_mask(int64_t n) {
  return n >= 16 ? __mmask16(0xffff) : n <= 0 ? __mmask16(0) : static_cast<__mmask16>((1u << n) - 1);
}

// s[k, k + 32) ∩ [k, n) as 16 words (zeros past n): one conversion.
inline __m512i bf16_words32(const float* s, int64_t k, int64_t n) {
  const __m512 lo = _mm512_maskz_loadu_ps(bf16_mask(n - k), s + k);
  const __m512 hi = _mm512_maskz_loadu_ps(bf16_mask(n - k - 16), s + k + 16);
  return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

// s[0, n) as ceil(n / 2) words (an odd n's last pair has a zero).
inline void bf16_row_words(const float* s, int64_t n, uint32_t* w) {
  for (int64_t k = 0; k < n; k += 32) {
    _mm512_mask_storeu_epi32(w + k / 2, bf16_mask((n - k + 1) / 2), bf16_words32(s, k, n));
  }
}

// ---------------------------------------------------------------------------
// vdpbf16ps kernel: MR x NR tiles of 8 rows x 3 vectors in zmm registers.
// (On Intel CPUs with AMX vdpbf16ps runs at a quarter of the FMA's rate,
// slower than float32 in all: amx_bf16 takes the tiles there.)
// Packed A block: panels of MR rows, word (i, kp) at [i / MR][kp][i % MR];
// B panel: panels of NR columns, word (kp, j) at [j / NR][kp][j % NR];
// depth(kc) = ceil(kc / 2) words of k per row (column).
struct Bf16DotKernel {
  static constexpr int MR = 8, NV = 3, NR = NV * 16;
  static constexpr int64_t KC = 1024, MC = 96, NC = 1024;  // KC even: blocks start at even k
  static int64_t depth(int64_t kc) { return (kc + 1) / 2; }
  static void begin() {}
  static void end() {}

  // The block op(A)[0:mc, 0:kc]. A points at op(A)[0][0]: (M, K) with row
  // stride lda, or (K, M) if trans_a. row: depth words of scratch.
  static void pack_a(bool trans_a, int64_t mc, int64_t kc, const float* A, int64_t lda,
                     uint32_t* __restrict dst, uint32_t* __restrict row) {
    const int64_t kcp = depth(kc), panels = gemm_ceil_div(mc, MR);
    if (trans_a) {
      // Rows 2kp and 2kp+1 of A give word kp of 16 rows of op(A): two panels.
      for (int64_t kp = 0; kp < kcp; ++kp) {
        const float* r0 = A + 2 * kp * lda;
        const float* r1 = 2 * kp + 1 < kc ? r0 + lda : nullptr;
        for (int64_t i = 0; i < mc; i += 16) {
          const __mmask16 m = bf16_mask(mc - i);
          const __m512 e = _mm512_maskz_loadu_ps(m, r0 + i);
          const __m512 o = r1 != nullptr ? _mm512_maskz_loadu_ps(m, r1 + i) : _mm512_setzero_ps();
          const __m512i w = bf16_pairs(e, o);
          const int64_t p = i / MR;
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + (p * kcp + kp) * MR),
                              _mm512_castsi512_si256(w));
          if (p + 1 < panels)
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + ((p + 1) * kcp + kp) * MR),
                                _mm512_extracti64x4_epi64(w, 1));
        }
      }
      return;
    }
    // Row i of op(A) along k: converted, then dealt out a word to each kp.
    for (int64_t i = 0; i < panels * MR; ++i) {
      uint32_t* d = dst + (i / MR) * kcp * MR + i % MR;
      if (i < mc) {
        bf16_row_words(A + i * lda, kc, row);
        for (int64_t kp = 0; kp < kcp; ++kp) d[kp * MR] = row[kp];
      } else {
        for (int64_t kp = 0; kp < kcp; ++kp) d[kp * MR] = 0;
      }
    }
  }

  // Panel p of op(B)[0:kc, 0:nc]. B points at op(B)[0][0]: (K, N) with row
  // stride ldb, or (N, K) if trans_b.
  static void pack_b(bool trans_b, int64_t kc, int64_t nc, const float* B, int64_t ldb, int64_t p,
                     uint32_t* __restrict dst, uint32_t* __restrict row) {
    const int64_t kcp = depth(kc);
    uint32_t* d = dst + p * kcp * NR;
    const int64_t j0 = p * NR, cols = gemm_min(NR, nc - j0);
    if (trans_b) {
      for (int64_t j = 0; j < NR; ++j) {  // column j of op(B) is row j of B, along k
        if (j < cols) {
          bf16_row_words(B + (j0 + j) * ldb, kc, row);
          for (int64_t kp = 0; kp < kcp; ++kp) d[kp * NR + j] = row[kp];
        } else {
          for (int64_t kp = 0; kp < kcp; ++kp) d[kp * NR + j] = 0;
        }
      }
      return;
    }
    for (int64_t kp = 0; kp < kcp; ++kp) {
      const float* r0 = B + 2 * kp * ldb + j0;
      const float* r1 = 2 * kp + 1 < kc ? r0 + ldb : nullptr;
      for (int64_t j = 0; j < NR; j += 16) {
        const __mmask16 m = bf16_mask(cols - j);
        const __m512 e = _mm512_maskz_loadu_ps(m, r0 + j);
        const __m512 o = r1 != nullptr ? _mm512_maskz_loadu_ps(m, r1 + j) : _mm512_setzero_ps();
        _mm512_storeu_si512(d + kp * NR + j, bf16_pairs(e, o));
      }
    }
  }

  // The mr x nr tile of C at c from an A panel a and the first NVK vectors
  // of a B panel b: MR x NVK sums of vdpbf16ps over kcp words, then
  // C = alpha * S + beta * C.
  template <int NVK>
  static void tile_nv(int64_t kcp, const uint32_t* __restrict a, const uint32_t* __restrict b,
                      float* __restrict c, int64_t ldc, int mr, int nr, const GemmEpilogue<float>& ep) {
    __m512 acc[MR][NVK];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 3
      for (int q = 0; q < NVK; ++q) acc[i][q] = _mm512_setzero_ps();
    for (int64_t kp = 0; kp < kcp; ++kp) {
      __m512bh bq[NVK];
#pragma GCC unroll 3
      for (int q = 0; q < NVK; ++q) bq[q] = (__m512bh)_mm512_loadu_si512(b + q * 16);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const __m512bh ai = (__m512bh)_mm512_set1_epi32(static_cast<int>(a[i]));
#pragma GCC unroll 3
        for (int q = 0; q < NVK; ++q) acc[i][q] = _mm512_dpbf16_ps(acc[i][q], ai, bq[q]);
      }
      a += MR;
      b += NR;
    }
    const __m512 alpha = _mm512_set1_ps(ep.alpha), beta = _mm512_set1_ps(ep.beta);
    for (int i = 0; i < mr; ++i) {
      float* ci = c + i * ldc;
#pragma GCC unroll 3
      for (int q = 0; q < NVK; ++q) {
        const __mmask16 m = bf16_mask(nr - q * 16);
        const __m512 old = ep.read_c ? _mm512_mul_ps(beta, _mm512_maskz_loadu_ps(m, ci + q * 16))
                                     : _mm512_setzero_ps();
        _mm512_mask_storeu_ps(ci + q * 16, m, _mm512_fmadd_ps(alpha, acc[i][q], old));
      }
    }
  }

  static void tile(int64_t kcp, const uint32_t* a, const uint32_t* b, float* c, int64_t ldc, int mr,
                   int nr, const GemmEpilogue<float>& ep) {
    if (nr > 32) {
      tile_nv<3>(kcp, a, b, c, ldc, mr, nr, ep);
    } else if (nr > 16) {
      tile_nv<2>(kcp, a, b, c, ldc, mr, nr, ep);
    } else {
      tile_nv<1>(kcp, a, b, c, ldc, mr, nr, ep);
    }
  }
};

// gemm_team's schedule (gemm.h) with a bfloat16 kernel K (Bf16DotKernel,
// Bf16AmxKernel). a_buf: this thread's A block (mc * depth words); b_buf:
// the shared B panel (depth * nc words); row: depth words of the thread's.
#if defined(__AMX_BF16__)
// ---------------------------------------------------------------------------
// AMX-BF16 kernel: each tdpbf16ps multiplies a tile of 16 rows x 32 k of A
// by one of 32 k x 16 columns of B into 16 x 16 float32 sums (8192
// products). The micro-kernel holds a 32 x 32 block of C in four tiles
// (tiles 0-3), two tiles of A (4, 5) and two of B (6, 7), for each 32 k:
//   A block: panels of MR = 32 rows,    [i / 32][k / 32][i % 32][16 words]
//   B panel: panels of NR = 32 columns, [j / 32][k / 32][j % 32 / 16][16 kp][16 words]
// so that every tile is 1 KiB, contiguous; depth(kc) = ceil(kc / 2)
// rounded up to 16 words (zeros). The tile configuration is per thread:
// every team member loads it (begin) and releases the tiles (end).

// Tiles 0-7: 16 rows of 64 bytes (palette 1).
struct AmxTileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// ldtilecfg of cfg. GCC 12's _tile_loadconfig names only the first 8 bytes
// of its operand as read, so the stores of the rest of a local config may be
// dropped: seen with the int8 kernels (colsb left 0, ldtilecfg faulting with
// SIGSEGV). The whole struct as the operand keeps every store.
inline void amx_load_config(const AmxTileConfig& cfg) { __asm__ volatile("ldtilecfg %0" : : "m"(cfg)); }

inline void amx_configure() {
  AmxTileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  amx_load_config(cfg);
}

struct Bf16AmxKernel {
  static constexpr int MR = 32, NR = 32;
  static constexpr int64_t KC = 1024, MC = 128, NC = 1024;
  static int64_t depth(int64_t kc) { return gemm_round_up((kc + 1) / 2, 16); }
  static void begin() { amx_configure(); }
  static void end() { _tile_release(); }

  // The block op(A)[0:mc, 0:kc]. A points at op(A)[0][0]: (M, K) with row
  // stride lda, or (K, M) if trans_a (then 16 x 16 words at a time are
  // made from 32 rows of A and transposed).
  static void pack_a(bool trans_a, int64_t mc, int64_t kc, const float* A, int64_t lda,
                     uint32_t* __restrict dst, uint32_t*) {
    const int64_t D = depth(kc), panels = gemm_ceil_div(mc, MR);
    if (trans_a) {
      for (int64_t i0 = 0; i0 < panels * MR; i0 += 16) {
        const __mmask16 m = bf16_mask(mc - i0);
        uint32_t* d = dst + (i0 / MR) * MR * D + (i0 % MR) * 16;
        for (int64_t c = 0; c < D / 16; ++c) {
          __m512i w[16];  // w[kp][i]: word kp of rows i0 … i0+15
          for (int kp = 0; kp < 16; ++kp) {
            const int64_t k = c * 32 + 2 * kp;
            const __m512 e = k < kc ? _mm512_maskz_loadu_ps(m, A + k * lda + i0) : _mm512_setzero_ps();
            const __m512 o = k + 1 < kc ? _mm512_maskz_loadu_ps(m, A + (k + 1) * lda + i0) : _mm512_setzero_ps();
            w[kp] = bf16_pairs(e, o);
          }
          transpose_16x16(w);
          for (int i = 0; i < 16; ++i) _mm512_storeu_si512(d + c * MR * 16 + i * 16, w[i]);
        }
      }
      return;
    }
    for (int64_t i = 0; i < panels * MR; ++i) {
      uint32_t* d = dst + (i / MR) * MR * D + (i % MR) * 16;
      for (int64_t c = 0; c < D / 16; ++c) {
        const __m512i w = i < mc ? bf16_words32(A + i * lda, c * 32, kc) : _mm512_setzero_si512();
        _mm512_storeu_si512(d + c * MR * 16, w);
      }
    }
  }

  // Panel p of op(B)[0:kc, 0:nc]: B (K, N) with row stride ldb, or (N, K)
  // if trans_b (then 16 rows of B, 32 k each, give 16 x 16 words: transposed).
  static void pack_b(bool trans_b, int64_t kc, int64_t nc, const float* B, int64_t ldb, int64_t p,
                     uint32_t* __restrict dst, uint32_t*) {
    const int64_t D = depth(kc);
    uint32_t* d = dst + p * NR * D;
    const int64_t j0 = p * NR, cols = gemm_min(NR, nc - j0);
    if (trans_b) {
      for (int q = 0; q < 2; ++q) {
        for (int64_t c = 0; c < D / 16; ++c) {
          __m512i w[16];  // w[j][kp]: the words of column j0 + 16q + j, then transposed
          for (int j = 0; j < 16; ++j) {
            const int64_t col = q * 16 + j;
            w[j] = col < cols ? bf16_words32(B + (j0 + col) * ldb, c * 32, kc) : _mm512_setzero_si512();
          }
          transpose_16x16(w);
          for (int kp = 0; kp < 16; ++kp) _mm512_storeu_si512(d + (c * 2 + q) * 256 + kp * 16, w[kp]);
        }
      }
      return;
    }
    for (int64_t kp = 0; kp < D; ++kp) {
      const float* r0 = 2 * kp < kc ? B + 2 * kp * ldb + j0 : nullptr;
      const float* r1 = 2 * kp + 1 < kc ? B + (2 * kp + 1) * ldb + j0 : nullptr;
      for (int q = 0; q < 2; ++q) {
        const __mmask16 m = bf16_mask(cols - q * 16);
        const __m512 e = r0 != nullptr ? _mm512_maskz_loadu_ps(m, r0 + q * 16) : _mm512_setzero_ps();
        const __m512 o = r1 != nullptr ? _mm512_maskz_loadu_ps(m, r1 + q * 16) : _mm512_setzero_ps();
        _mm512_storeu_si512(d + ((kp / 16) * 2 + q) * 256 + (kp % 16) * 16, bf16_pairs(e, o));
      }
    }
  }

  // The mr x nr tile of C at c (mr, nr <= 32) from an A panel a and a B
  // panel b of depth D words.
  static void tile(int64_t D, const uint32_t* a, const uint32_t* b, float* c, int64_t ldc, int mr,
                   int nr, const GemmEpilogue<float>& ep) {
    alignas(64) float sums[4][256];
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int64_t k = 0; k < D; k += 16) {
      const uint32_t* ak = a + k * MR;
      const uint32_t* bk = b + k * NR;
      _tile_loadd(4, ak, 64);
      _tile_loadd(5, ak + 256, 64);
      _tile_loadd(6, bk, 64);
      _tile_loadd(7, bk + 256, 64);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, sums[0], 64);
    _tile_stored(1, sums[1], 64);
    _tile_stored(2, sums[2], 64);
    _tile_stored(3, sums[3], 64);
    const __m512 alpha = _mm512_set1_ps(ep.alpha), beta = _mm512_set1_ps(ep.beta);
    for (int i = 0; i < mr; ++i) {
      float* ci = c + i * ldc;
      for (int q = 0; q < 2; ++q) {
        const __mmask16 m = bf16_mask(nr - q * 16);
        const __m512 sum = _mm512_load_ps(sums[(i / 16) * 2 + q] + (i % 16) * 16);
        const __m512 old = ep.read_c ? _mm512_mul_ps(beta, _mm512_maskz_loadu_ps(m, ci + q * 16))
                                     : _mm512_setzero_ps();
        _mm512_mask_storeu_ps(ci + q * 16, m, _mm512_fmadd_ps(alpha, sum, old));
      }
    }
  }
};
#endif  // __AMX_BF16__

// packed_b: op(B) packed beforehand (bf16_pack_b_all), read from there.
template <typename K>
void bf16_gemm_team(int team, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t Kd,
                    float alpha, const float* A, int64_t lda, const float* B, int64_t ldb,
                    float beta, float* C, int64_t ldc, const GemmBlocks& blk, uint32_t* a_buf,
                    uint32_t* b_buf, uint32_t* row, int64_t* counters, const uint32_t* packed_b) {
  constexpr int MR = K::MR, NR = K::NR;
  const int64_t m_blocks = gemm_ceil_div(M, blk.mc);
  K::begin();
  for (int64_t jc = 0; jc < N; jc += blk.nc) {
    const int64_t nc = gemm_min(blk.nc, N - jc);
    const int64_t panels = gemm_ceil_div(nc, NR);
    const int64_t chunks = team == 1 ? 1 : gemm_min(panels, gemm_ceil_div(4 * team, m_blocks));
    const int64_t items = m_blocks * chunks;
    for (int64_t pc = 0; pc < Kd; pc += blk.kc, counters += 2) {
      const int64_t kc = gemm_min(blk.kc, Kd - pc), depth = K::depth(kc);
      const GemmEpilogue<float> ep{alpha, pc == 0 ? beta : 1.0f, pc > 0 || beta != 0.0f};
      const uint32_t* bp = b_buf;
      if (packed_b != nullptr) {
        bp = packed_b;
        packed_b += K::depth(blk.kc) * blk.nc;
      } else {
        for (int64_t p; (p = gemm_next(counters)) < panels;) {
          K::pack_b(trans_b, kc, nc, trans_b ? B + jc * ldb + pc : B + pc * ldb + jc, ldb, p, b_buf, row);
        }
        if (team > 1) {
#pragma omp barrier
        }
      }
      int64_t packed = -1;
      for (int64_t item; (item = gemm_next(counters + 1)) < items;) {
        const int64_t ib = item / chunks, chunk = item % chunks;
        const int64_t ic = ib * blk.mc, mc = gemm_min(blk.mc, M - ic);
        if (ib != packed) {
          K::pack_a(trans_a, mc, kc, trans_a ? A + pc * lda + ic : A + ic * lda + pc, lda, a_buf, row);
          packed = ib;
        }
        const int64_t j0 = panels * chunk / chunks * NR;
        const int64_t j1 = gemm_min(nc, panels * (chunk + 1) / chunks * NR);
        for (int64_t jr = j0; jr < j1; jr += NR) {
          const int nr = static_cast<int>(gemm_min(NR, nc - jr));
          for (int64_t ir = 0; ir < mc; ir += MR) {
            const int mr = static_cast<int>(gemm_min(MR, mc - ir));
            K::tile(depth, a_buf + ir * depth, bp + jr * depth, C + (ic + ir) * ldc + jc + jr, ldc,
                    mr, nr, ep);
          }
        }
      }
      if (team > 1) {
#pragma omp barrier
      }
    }
  }
  K::end();
}

// The blocks of a product with kernel K (kc and nc depend on Kd and N only).
template <typename K>
GemmBlocks bf16_blocks(int64_t M, int64_t N, int64_t Kd) {
  GemmBlocks blk;
  blk.kc = gemm_round_up(gemm_ceil_div(Kd, gemm_ceil_div(Kd, K::KC)), 2);
  blk.mc = gemm_round_up(gemm_ceil_div(M, gemm_ceil_div(M, K::MC)), K::MR);
  blk.nc = gemm_round_up(gemm_ceil_div(N, gemm_ceil_div(N, K::NC)), K::NR);
  return blk;
}

// op(B) packed once for several products, as gemm_pack_b_all: every (jc,
// pc) step's panels as bf16_gemm_team packs them, in blocks of
// depth(kc)·nc words.
template <typename K>
int64_t bf16_packed_b_size(int64_t N, int64_t Kd) {
  const GemmBlocks blk = bf16_blocks<K>(1, N, Kd);
  return gemm_ceil_div(N, blk.nc) * gemm_ceil_div(Kd, blk.kc) * K::depth(blk.kc) * blk.nc;
}

template <typename K>
void bf16_pack_b_all(bool trans_b, int64_t N, int64_t Kd, const float* B, int64_t ldb, uint32_t* dst) {
  const GemmBlocks blk = bf16_blocks<K>(1, N, Kd);
  GemmBuffer<uint32_t> row(K::depth(blk.kc));
  for (int64_t jc = 0; jc < N; jc += blk.nc) {
    const int64_t nc = gemm_min(blk.nc, N - jc), panels = gemm_ceil_div(nc, K::NR);
    for (int64_t pc = 0; pc < Kd; pc += blk.kc, dst += K::depth(blk.kc) * blk.nc) {
      const int64_t kc = gemm_min(blk.kc, Kd - pc);
      for (int64_t p = 0; p < panels; ++p)
        K::pack_b(trans_b, kc, nc, trans_b ? B + jc * ldb + pc : B + pc * ldb + jc, ldb, p, dst, row.data);
    }
  }
}

template <typename K>
void bf16_gemm_blocked(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t Kd, float alpha,
                       const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                       int64_t ldc, int num_threads, const uint32_t* packed_b) {
  const GemmBlocks blk = bf16_blocks<K>(M, N, Kd);
  const int threads = gemm_threads(num_threads, M, N, Kd);
  const int64_t depth = K::depth(blk.kc);
  // A block and a row; the B panel unless packed beforehand
  const int64_t a_size = blk.mc * depth + depth, b_size = packed_b != nullptr ? 0 : depth * blk.nc;
  const int64_t steps = gemm_ceil_div(N, blk.nc) * gemm_ceil_div(Kd, blk.kc);
  GemmBuffer<uint32_t> buf(b_size + a_size * threads);
  GemmBuffer<int64_t> counters(2 * steps);
  for (int64_t i = 0; i < 2 * steps; ++i) counters.data[i] = 0;
  if (threads == 1) {
    uint32_t* a_buf = buf.data + b_size;
    bf16_gemm_team<K>(1, trans_a, trans_b, M, N, Kd, alpha, A, lda, B, ldb, beta, C, ldc, blk, a_buf,
                      buf.data, a_buf + blk.mc * depth, counters.data, packed_b);
    return;
  }
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
  {
    const int team = omp_get_num_threads(), t = omp_get_thread_num();
    uint32_t* a_buf = buf.data + b_size + a_size * t;
    bf16_gemm_team<K>(team, trans_a, trans_b, M, N, Kd, alpha, A, lda, B, ldb, beta, C, ldc, blk,
                      a_buf, buf.data, a_buf + blk.mc * depth, counters.data, packed_b);
  }
#endif
}

#endif  // __AVX512BF16__

#if defined(__AMX_BF16__)
using Bf16Kernel = Bf16AmxKernel;
#elif defined(__AVX512BF16__)
using Bf16Kernel = Bf16DotKernel;
#endif

// C (M,N) = alpha * bf16(op(A)) bf16(op(B)) + beta * C, as gemm<float>;
// packed_b: op(B) packed beforehand by gemm_in_pack_b (or null).
inline void gemm_bf16_packed(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                             const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                             int64_t ldc, int num_threads, const float* packed_b) {
#if defined(__AVX512BF16__)
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    gemm_scale_c(M, N, beta, C, ldc);
    return;
  }
  bf16_gemm_blocked<Bf16Kernel>(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, num_threads,
                                reinterpret_cast<const uint32_t*>(packed_b));
#else
  gemm_packed<float, true>(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, num_threads, packed_b);
#endif
}

inline void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                      const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                      int64_t ldc, int num_threads) {
  gemm_bf16_packed(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, num_threads, nullptr);
}

// The product of a cell in its precision: bf16 (float only) or T's own;
// packed_b: op(B) packed beforehand by gemm_in_pack_b in that precision (or
// null).
template <typename T>
inline void gemm_in(bool bf16, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha,
                    const T* A, int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc,
                    int num_threads, const T* packed_b = nullptr) {
  if constexpr (sizeof(T) == 4) {
    if (bf16) {
      gemm_bf16_packed(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, num_threads, packed_b);
      return;
    }
  }
  gemm_packed<T>(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, num_threads, packed_b);
}

// Elements (of T) that op(B) (N columns, K rows) takes packed for gemm_in
// in a precision, and the packing: for several products with the same
// op(B) (words of two bfloat16 count as one element of float).
template <typename T>
int64_t gemm_in_packed_b_size(bool bf16, int64_t N, int64_t K) {
#if defined(__AVX512BF16__)
  if constexpr (sizeof(T) == 4) {
    if (bf16) return bf16_packed_b_size<Bf16Kernel>(N, K);
  }
#else
  (void)bf16;
#endif
  return gemm_packed_b_size<T>(N, K);
}

template <typename T>
void gemm_in_pack_b(bool bf16, bool trans_b, int64_t N, int64_t K, const T* B, int64_t ldb, T* dst) {
  if constexpr (sizeof(T) == 4) {
    if (bf16) {
#if defined(__AVX512BF16__)
      bf16_pack_b_all<Bf16Kernel>(trans_b, N, K, B, ldb, reinterpret_cast<uint32_t*>(dst));
#else
      gemm_pack_b_all<float, true>(trans_b, N, K, B, ldb, dst);
#endif
      return;
    }
  }
  gemm_pack_b_all<T>(trans_b, N, K, B, ldb, dst);
}

}  // namespace SEQCORE_ISA_NS
}  // namespace seqcore
