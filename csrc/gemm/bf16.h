// Matrix products with bfloat16 operands and float32 sums (precision
// "bf16"; generic code, see isa/kernels_impl.h):
//   C = alpha * bf16(op(A)) bf16(op(B)) + beta * C,   A, B, C float32,
// bf16() rounding as gemm/bf16_round.h. Where the ISA has AVX512-BF16 the
// packing converts the operands to bfloat16 pairs and the micro-kernel runs
// vdpbf16ps (two products of bfloat16 added to a float32 sum per lane);
// elsewhere gemm.h's float32 product packs the operands rounded to
// bfloat16 (gemm<float, true>), so every x86-64 CPU computes the same
// products, summed in another order.
//
// The AVX512-BF16 product has gemm.h's blocking (B panels shared by the
// team, A blocks per thread, work items taken as they come) and its
// determinism: each C element is one chain of vdpbf16ps over the pairs of k
// of a K block, then one multiply-add with C, K blocks in order, whatever
// thread computes it. Packed layouts, in 32-bit words (w = a pair of
// bfloat16, the even k in the lower half; kp = k / 2, kcp = ceil(kc / 2)):
//   A block: panels of MR rows,    word (i, kp) at [i / MR][kp][i % MR]
//   B panel: panels of NR columns, word (kp, j) at [j / NR][kp][j % NR]
// zero past the matrix (and past kc: an odd kc's last pair has a zero).
namespace seqcore {
namespace SEQCORE_ISA_NS {

#if defined(__AVX512BF16__)

struct Bf16GemmConfig {
  static constexpr int MR = 8, NV = 3, NR = NV * 16;  // 24 accumulators of 16 floats
  static constexpr int64_t KC = 1024, MC = 96, NC = 1024;  // KC even: blocks start at even k
};

// 16 words from two vectors: lane l holds (even[l], odd[l]) in bfloat16.
inline __m512i bf16_pairs(__m512 even, __m512 odd) {
  const __m512i e = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(even));
  const __m512i o = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(odd));
  return _mm512_or_si512(e, _mm512_slli_epi32(o, 16));
}

inline __mmask16 bf16_mask(int64_t n) {
  return n >= 16 ? __mmask16(0xffff) : n <= 0 ? __mmask16(0) : static_cast<__mmask16>((1u << n) - 1);
}

// s[0, n) as ceil(n / 2) words (an odd n's last pair has a zero): 32
// values a conversion.
inline void bf16_row_words(const float* s, int64_t n, uint32_t* w) {
  for (int64_t k = 0; k < n; k += 32) {
    const __m512 lo = _mm512_maskz_loadu_ps(bf16_mask(n - k), s + k);
    const __m512 hi = _mm512_maskz_loadu_ps(bf16_mask(n - k - 16), s + k + 16);
    const __m512i v = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
    _mm512_mask_storeu_epi32(w + k / 2, bf16_mask((n - k + 1) / 2), v);
  }
}

// The words of rows r0 (even k) and r1 (odd k, or null: zeros) at columns
// [0, n), 16 at a time, each 16 stored by store(j, words).
template <typename Store>
inline void bf16_interleave(const float* r0, const float* r1, int64_t n, Store store) {
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = bf16_mask(n - j);
    const __m512 e = _mm512_maskz_loadu_ps(m, r0 + j);
    const __m512 o = r1 != nullptr ? _mm512_maskz_loadu_ps(m, r1 + j) : _mm512_setzero_ps();
    store(j, bf16_pairs(e, o));
  }
}

// The block op(A)[0:mc, 0:kc] into panels of MR rows (layout above). A
// points at op(A)[0][0]: (M, K) with row stride lda, or (K, M) if trans_a.
// row: kcp words of scratch.
inline void bf16_pack_a(bool trans_a, int64_t mc, int64_t kc, const float* A, int64_t lda,
                        uint32_t* __restrict dst, uint32_t* __restrict row) {
  constexpr int MR = Bf16GemmConfig::MR;
  const int64_t kcp = (kc + 1) / 2, panels = gemm_ceil_div(mc, MR);
  if (trans_a) {
    // Rows 2kp and 2kp+1 of A give word kp of 16 rows of op(A): two panels.
    for (int64_t kp = 0; kp < kcp; ++kp) {
      const float* r0 = A + 2 * kp * lda;
      const float* r1 = 2 * kp + 1 < kc ? r0 + lda : nullptr;
      bf16_interleave(r0, r1, mc, [&](int64_t i, __m512i w) {
        // rows i … i+15, zeros past mc (masked loads)
        const int64_t p = i / MR;
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + (p * kcp + kp) * MR),
                            _mm512_castsi512_si256(w));
        if (p + 1 < panels)
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + ((p + 1) * kcp + kp) * MR),
                              _mm512_extracti64x4_epi64(w, 1));
      });
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

// The panel op(B)[0:kc, 0:nc] into panels of NR columns (layout above). B
// points at op(B)[0][0]: (K, N) with row stride ldb, or (N, K) if trans_b.
// Panels [p0, p1) only (the team shares them out).
inline void bf16_pack_b(bool trans_b, int64_t kc, int64_t nc, const float* B, int64_t ldb,
                        int64_t p0, int64_t p1, uint32_t* __restrict dst, uint32_t* __restrict row) {
  constexpr int NR = Bf16GemmConfig::NR;
  const int64_t kcp = (kc + 1) / 2;
  for (int64_t p = p0; p < p1; ++p) {
    uint32_t* d = dst + p * kcp * NR;
    const int64_t j0 = p * NR, cols = gemm_min(NR, nc - j0);
    if (trans_b) {
      // Column j of op(B) is row j of B, along k.
      for (int64_t j = 0; j < NR; ++j) {
        if (j < cols) {
          bf16_row_words(B + (j0 + j) * ldb, kc, row);
          for (int64_t kp = 0; kp < kcp; ++kp) d[kp * NR + j] = row[kp];
        } else {
          for (int64_t kp = 0; kp < kcp; ++kp) d[kp * NR + j] = 0;
        }
      }
    } else {
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
  }
}

// The mr x nr tile of C at c (mr <= MR, nr <= NVK * 16) from an A panel a
// (kcp x MR words) and the first NVK vectors of a B panel b (kcp x NR
// words): MR x NVK sums of vdpbf16ps over kcp, then C = alpha * S + beta * C.
template <int NVK>
void bf16_micro_kernel(int64_t kcp, const uint32_t* __restrict a, const uint32_t* __restrict b,
                       float* __restrict c, int64_t ldc, int mr, int nr, const GemmEpilogue<float>& ep) {
  constexpr int MR = Bf16GemmConfig::MR, NR = Bf16GemmConfig::NR;
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

inline void bf16_tile(int64_t kcp, const uint32_t* a, const uint32_t* b, float* c, int64_t ldc,
                      int mr, int nr, const GemmEpilogue<float>& ep) {
  if (nr > 32) {
    bf16_micro_kernel<3>(kcp, a, b, c, ldc, mr, nr, ep);
  } else if (nr > 16) {
    bf16_micro_kernel<2>(kcp, a, b, c, ldc, mr, nr, ep);
  } else {
    bf16_micro_kernel<1>(kcp, a, b, c, ldc, mr, nr, ep);
  }
}

// gemm_team's schedule (gemm.h) with the bfloat16 packing and tiles. a_buf:
// this thread's A block (mc * kcp words) and then a row (kcp words);
// b_buf: the shared B panel (kcp * nc words) and a row per thread.
inline void bf16_gemm_team(int team, bool trans_a, bool trans_b, int64_t M, int64_t N,
                           int64_t K, float alpha, const float* A, int64_t lda, const float* B,
                           int64_t ldb, float beta, float* C, int64_t ldc, const GemmBlocks& blk,
                           uint32_t* a_buf, uint32_t* b_buf, uint32_t* b_row, int64_t* counters) {
  constexpr int MR = Bf16GemmConfig::MR, NR = Bf16GemmConfig::NR;
  const int64_t m_blocks = gemm_ceil_div(M, blk.mc), kcp_max = blk.kc / 2;
  uint32_t* a_row = a_buf + blk.mc * kcp_max;
  for (int64_t jc = 0; jc < N; jc += blk.nc) {
    const int64_t nc = gemm_min(blk.nc, N - jc);
    const int64_t panels = gemm_ceil_div(nc, NR);
    const int64_t chunks = team == 1 ? 1 : gemm_min(panels, gemm_ceil_div(4 * team, m_blocks));
    const int64_t items = m_blocks * chunks;
    for (int64_t pc = 0; pc < K; pc += blk.kc, counters += 2) {
      const int64_t kc = gemm_min(blk.kc, K - pc), kcp = (kc + 1) / 2;
      const GemmEpilogue<float> ep{alpha, pc == 0 ? beta : 1.0f, pc > 0 || beta != 0.0f};
      for (int64_t p; (p = gemm_next(counters)) < panels;) {
        bf16_pack_b(trans_b, kc, nc, trans_b ? B + jc * ldb + pc : B + pc * ldb + jc, ldb, p, p + 1,
                    b_buf, b_row);
      }
      if (team > 1) {
#pragma omp barrier
      }
      int64_t packed = -1;
      for (int64_t item; (item = gemm_next(counters + 1)) < items;) {
        const int64_t ib = item / chunks, chunk = item % chunks;
        const int64_t ic = ib * blk.mc, mc = gemm_min(blk.mc, M - ic);
        if (ib != packed) {
          bf16_pack_a(trans_a, mc, kc, trans_a ? A + pc * lda + ic : A + ic * lda + pc, lda, a_buf,
                      a_row);
          packed = ib;
        }
        const int64_t j0 = panels * chunk / chunks * NR;
        const int64_t j1 = gemm_min(nc, panels * (chunk + 1) / chunks * NR);
        for (int64_t jr = j0; jr < j1; jr += NR) {
          const int nr = static_cast<int>(gemm_min(NR, nc - jr));
          for (int64_t ir = 0; ir < mc; ir += MR) {
            const int mr = static_cast<int>(gemm_min(MR, mc - ir));
            bf16_tile(kcp, a_buf + ir * kcp, b_buf + jr * kcp, C + (ic + ir) * ldc + jc + jr, ldc,
                      mr, nr, ep);
          }
        }
      }
      if (team > 1) {
#pragma omp barrier
      }
    }
  }
}

inline void gemm_bf16_native(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                             float alpha, const float* A, int64_t lda, const float* B, int64_t ldb,
                             float beta, float* C, int64_t ldc, int num_threads) {
  using Config = Bf16GemmConfig;
  GemmBlocks blk;
  blk.kc = gemm_round_up(gemm_ceil_div(K, gemm_ceil_div(K, Config::KC)), 2);
  blk.mc = gemm_round_up(gemm_ceil_div(M, gemm_ceil_div(M, Config::MC)), Config::MR);
  blk.nc = gemm_round_up(gemm_ceil_div(N, gemm_ceil_div(N, Config::NC)), Config::NR);
  const int threads = gemm_threads(num_threads, M, N, K);
  const int64_t kcp = blk.kc / 2;
  const int64_t a_size = blk.mc * kcp + kcp, b_size = kcp * blk.nc;
  const int64_t steps = gemm_ceil_div(N, blk.nc) * gemm_ceil_div(K, blk.kc);
  GemmBuffer<uint32_t> buf(b_size + (a_size + kcp) * threads);
  GemmBuffer<int64_t> counters(2 * steps);
  for (int64_t i = 0; i < 2 * steps; ++i) counters.data[i] = 0;
  uint32_t* rows = buf.data + b_size + a_size * threads;  // a row per thread for packing B
  if (threads == 1) {
    bf16_gemm_team(1, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, blk,
                   buf.data + b_size, buf.data, rows, counters.data);
    return;
  }
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
  {
    const int team = omp_get_num_threads(), t = omp_get_thread_num();
    bf16_gemm_team(team, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, blk,
                   buf.data + b_size + a_size * t, buf.data, rows + kcp * t, counters.data);
  }
#endif
}

#endif  // __AVX512BF16__

// C (M,N) = alpha * bf16(op(A)) bf16(op(B)) + beta * C, as gemm<float>.
inline void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                      const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                      int64_t ldc, int num_threads) {
#if defined(__AVX512BF16__)
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    gemm_scale_c(M, N, beta, C, ldc);
    return;
  }
  gemm_bf16_native(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, num_threads);
#else
  gemm<float, true>(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, num_threads);
#endif
}

// The product of a cell in its precision: bf16 (float only) or T's own.
template <typename T>
inline void gemm_in(bool bf16, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha,
                    const T* A, int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc,
                    int num_threads) {
  if constexpr (sizeof(T) == 4) {
    if (bf16) {
      gemm_bf16(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, num_threads);
      return;
    }
  }
  gemm<T>(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, num_threads);
}

}  // namespace SEQCORE_ISA_NS
}  // namespace seqcore
