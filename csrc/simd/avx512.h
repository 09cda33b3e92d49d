// AVX-512 vectors for the generic kernels: Vec<float> is 16 lanes, Vec<double>
// is 8. Only kernels_avx512.cpp and kernels_avx512_bf16.cpp include this
// file, each after defining SEQCORE_ISA_NS (its namespace: avx512 or
// avx512_bf16).
#pragma once
#include <immintrin.h>
#include <cstdint>

namespace seqcore {
namespace SEQCORE_ISA_NS {

template <typename T> struct Vec;

// ---------------------------------------------------------------------------
// float x 16

template <> struct Vec<float> {
  static constexpr int size = 16;
  __m512 v;
  Vec() = default;
  Vec(__m512 x) : v(x) {}
  static Vec zero() { return _mm512_setzero_ps(); }
  static Vec broadcast(float x) { return _mm512_set1_ps(x); }
  static Vec load(const float* p) { return _mm512_loadu_ps(p); }
  void store(float* p) const { _mm512_storeu_ps(p, v); }
  // The first n (< size) lanes; the rest read as 0 and are never written.
  static Vec load_partial(const float* p, int n) {
    return _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1), p);
  }
  void store_partial(float* p, int n) const {
    _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << n) - 1), v);
  }
};

inline Vec<float> operator+(Vec<float> a, Vec<float> b) { return _mm512_add_ps(a.v, b.v); }
inline Vec<float> operator-(Vec<float> a, Vec<float> b) { return _mm512_sub_ps(a.v, b.v); }
inline Vec<float> operator*(Vec<float> a, Vec<float> b) { return _mm512_mul_ps(a.v, b.v); }
inline Vec<float> operator/(Vec<float> a, Vec<float> b) { return _mm512_div_ps(a.v, b.v); }
inline Vec<float> fmadd(Vec<float> a, Vec<float> b, Vec<float> c) { return _mm512_fmadd_ps(a.v, b.v, c.v); }
inline Vec<float> fnmadd(Vec<float> a, Vec<float> b, Vec<float> c) { return _mm512_fnmadd_ps(a.v, b.v, c.v); }
inline Vec<float> max(Vec<float> a, Vec<float> b) { return _mm512_max_ps(a.v, b.v); }
inline Vec<float> min(Vec<float> a, Vec<float> b) { return _mm512_min_ps(a.v, b.v); }
inline Vec<float> abs(Vec<float> a) { return _mm512_abs_ps(a.v); }
inline Vec<float> sqrt(Vec<float> a) { return _mm512_sqrt_ps(a.v); }
// |mag| with the sign of sgn.
inline Vec<float> copysign(Vec<float> mag, Vec<float> sgn) {
  const __m512i sign = _mm512_set1_epi32(static_cast<int>(0x80000000u));
  __m512i m = _mm512_andnot_si512(sign, _mm512_castps_si512(mag.v));
  __m512i s = _mm512_and_si512(sign, _mm512_castps_si512(sgn.v));
  return _mm512_castsi512_ps(_mm512_or_si512(m, s));
}
// (a < b) ? x : y, lane by lane.
inline Vec<float> select_lt(Vec<float> a, Vec<float> b, Vec<float> x, Vec<float> y) {
  __mmask16 m = _mm512_cmp_ps_mask(a.v, b.v, _CMP_LT_OQ);
  return _mm512_mask_blend_ps(m, y.v, x.v);
}
inline Vec<float> round_nearest(Vec<float> a) {
  return _mm512_roundscale_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
// 2^n for integral n in [-126, 127], built in the exponent bits.
inline Vec<float> pow2i(Vec<float> n) {
  __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n.v), _mm512_set1_epi32(127));
  return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
}
inline float reduce_add(Vec<float> a) { return _mm512_reduce_add_ps(a.v); }

// ---------------------------------------------------------------------------
// double x 8

template <> struct Vec<double> {
  static constexpr int size = 8;
  __m512d v;
  Vec() = default;
  Vec(__m512d x) : v(x) {}
  static Vec zero() { return _mm512_setzero_pd(); }
  static Vec broadcast(double x) { return _mm512_set1_pd(x); }
  static Vec load(const double* p) { return _mm512_loadu_pd(p); }
  void store(double* p) const { _mm512_storeu_pd(p, v); }
  static Vec load_partial(const double* p, int n) {
    return _mm512_maskz_loadu_pd(static_cast<__mmask8>((1u << n) - 1), p);
  }
  void store_partial(double* p, int n) const {
    _mm512_mask_storeu_pd(p, static_cast<__mmask8>((1u << n) - 1), v);
  }
};

inline Vec<double> operator+(Vec<double> a, Vec<double> b) { return _mm512_add_pd(a.v, b.v); }
inline Vec<double> operator-(Vec<double> a, Vec<double> b) { return _mm512_sub_pd(a.v, b.v); }
inline Vec<double> operator*(Vec<double> a, Vec<double> b) { return _mm512_mul_pd(a.v, b.v); }
inline Vec<double> operator/(Vec<double> a, Vec<double> b) { return _mm512_div_pd(a.v, b.v); }
inline Vec<double> fmadd(Vec<double> a, Vec<double> b, Vec<double> c) { return _mm512_fmadd_pd(a.v, b.v, c.v); }
inline Vec<double> fnmadd(Vec<double> a, Vec<double> b, Vec<double> c) { return _mm512_fnmadd_pd(a.v, b.v, c.v); }
inline Vec<double> max(Vec<double> a, Vec<double> b) { return _mm512_max_pd(a.v, b.v); }
inline Vec<double> min(Vec<double> a, Vec<double> b) { return _mm512_min_pd(a.v, b.v); }
inline Vec<double> abs(Vec<double> a) { return _mm512_abs_pd(a.v); }
inline Vec<double> sqrt(Vec<double> a) { return _mm512_sqrt_pd(a.v); }
inline Vec<double> copysign(Vec<double> mag, Vec<double> sgn) {
  const __m512i sign = _mm512_set1_epi64(static_cast<long long>(0x8000000000000000ull));
  __m512i m = _mm512_andnot_si512(sign, _mm512_castpd_si512(mag.v));
  __m512i s = _mm512_and_si512(sign, _mm512_castpd_si512(sgn.v));
  return _mm512_castsi512_pd(_mm512_or_si512(m, s));
}
inline Vec<double> select_lt(Vec<double> a, Vec<double> b, Vec<double> x, Vec<double> y) {
  __mmask8 m = _mm512_cmp_pd_mask(a.v, b.v, _CMP_LT_OQ);
  return _mm512_mask_blend_pd(m, y.v, x.v);
}
inline Vec<double> round_nearest(Vec<double> a) {
  return _mm512_roundscale_pd(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
// 2^n for integral n in [-1022, 1023].
inline Vec<double> pow2i(Vec<double> n) {
  __m512i e = _mm512_add_epi64(_mm512_cvtpd_epi64(n.v), _mm512_set1_epi64(1023));
  return _mm512_castsi512_pd(_mm512_slli_epi64(e, 52));
}
inline double reduce_add(Vec<double> a) { return _mm512_reduce_add_pd(a.v); }

// ---------------------------------------------------------------------------
// For the exponential of activations/activations.h

// n = round(a) (ties to even) and the return value 2^n, for a in
// [-126.5, 127.5) (double: [-1022.5, 1023.5)); a NaN gives a NaN n and an
// unspecified 2^n. 2^n = scalef(1, n): one instruction where pow2i takes
// three (convert, add the bias, shift), the same value.
inline Vec<float> round_pow2i(Vec<float> a, Vec<float>& n) {
  n = round_nearest(a);
  return _mm512_scalef_ps(_mm512_set1_ps(1.0f), n.v);
}
inline Vec<double> round_pow2i(Vec<double> a, Vec<double>& n) {
  n = round_nearest(a);
  return _mm512_scalef_pd(_mm512_set1_pd(1.0), n.v);
}

// ---------------------------------------------------------------------------
// 32-bit words

// r[i][j] -> r[j][i] for 16 x 16 words: 32-bit, 64-bit and two 128-bit
// interleaving stages.
inline void transpose_16x16(__m512i (&r)[16]) {
  __m512i t[16], u[16];
  for (int k = 0; k < 8; ++k) {
    t[2 * k] = _mm512_unpacklo_epi32(r[2 * k], r[2 * k + 1]);
    t[2 * k + 1] = _mm512_unpackhi_epi32(r[2 * k], r[2 * k + 1]);
  }
  // u[4k + m], lane L: column 4L + m of rows 4k … 4k+3
  for (int k = 0; k < 4; ++k) {
    u[4 * k] = _mm512_unpacklo_epi64(t[4 * k], t[4 * k + 2]);
    u[4 * k + 1] = _mm512_unpackhi_epi64(t[4 * k], t[4 * k + 2]);
    u[4 * k + 2] = _mm512_unpacklo_epi64(t[4 * k + 1], t[4 * k + 3]);
    u[4 * k + 3] = _mm512_unpackhi_epi64(t[4 * k + 1], t[4 * k + 3]);
  }
  for (int m = 0; m < 4; ++m) {
    const __m512i v0 = _mm512_shuffle_i32x4(u[m], u[4 + m], 0x88);   // lanes 0, 2
    const __m512i v1 = _mm512_shuffle_i32x4(u[m], u[4 + m], 0xdd);   // lanes 1, 3
    const __m512i w0 = _mm512_shuffle_i32x4(u[8 + m], u[12 + m], 0x88);
    const __m512i w1 = _mm512_shuffle_i32x4(u[8 + m], u[12 + m], 0xdd);
    r[m] = _mm512_shuffle_i32x4(v0, w0, 0x88);
    r[8 + m] = _mm512_shuffle_i32x4(v0, w0, 0xdd);
    r[4 + m] = _mm512_shuffle_i32x4(v1, w1, 0x88);
    r[12 + m] = _mm512_shuffle_i32x4(v1, w1, 0xdd);
  }
}

}  // namespace SEQCORE_ISA_NS
}  // namespace seqcore
