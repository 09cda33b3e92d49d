// AVX2 + FMA vectors for the generic kernels: Vec<float> is 8 lanes,
// Vec<double> is 4. Only kernels_avx2.cpp and kernels_avx2_vnni.cpp include
// this file, each after defining SEQCORE_ISA_NS (avx2 or avx2_vnni).
#pragma once
#include <immintrin.h>
#include <cstdint>

namespace seqcore {
namespace SEQCORE_ISA_NS {

template <typename T> struct Vec;

// Lane masks for partial loads and stores: the first n lanes set.
inline __m256i lane_mask32(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline __m256i lane_mask64(int n) {
  return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
}

// ---------------------------------------------------------------------------
// float x 8

template <> struct Vec<float> {
  static constexpr int size = 8;
  __m256 v;
  Vec() = default;
  Vec(__m256 x) : v(x) {}
  static Vec zero() { return _mm256_setzero_ps(); }
  static Vec broadcast(float x) { return _mm256_set1_ps(x); }
  static Vec load(const float* p) { return _mm256_loadu_ps(p); }
  void store(float* p) const { _mm256_storeu_ps(p, v); }
  static Vec load_partial(const float* p, int n) { return _mm256_maskload_ps(p, lane_mask32(n)); }
  void store_partial(float* p, int n) const { _mm256_maskstore_ps(p, lane_mask32(n), v); }
};

inline Vec<float> operator+(Vec<float> a, Vec<float> b) { return _mm256_add_ps(a.v, b.v); }
inline Vec<float> operator-(Vec<float> a, Vec<float> b) { return _mm256_sub_ps(a.v, b.v); }
inline Vec<float> operator*(Vec<float> a, Vec<float> b) { return _mm256_mul_ps(a.v, b.v); }
inline Vec<float> operator/(Vec<float> a, Vec<float> b) { return _mm256_div_ps(a.v, b.v); }
inline Vec<float> fmadd(Vec<float> a, Vec<float> b, Vec<float> c) { return _mm256_fmadd_ps(a.v, b.v, c.v); }
inline Vec<float> fnmadd(Vec<float> a, Vec<float> b, Vec<float> c) { return _mm256_fnmadd_ps(a.v, b.v, c.v); }
inline Vec<float> max(Vec<float> a, Vec<float> b) { return _mm256_max_ps(a.v, b.v); }
inline Vec<float> min(Vec<float> a, Vec<float> b) { return _mm256_min_ps(a.v, b.v); }
inline Vec<float> abs(Vec<float> a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a.v); }
inline Vec<float> sqrt(Vec<float> a) { return _mm256_sqrt_ps(a.v); }
inline Vec<float> copysign(Vec<float> mag, Vec<float> sgn) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  return _mm256_or_ps(_mm256_andnot_ps(sign, mag.v), _mm256_and_ps(sign, sgn.v));
}
inline Vec<float> select_lt(Vec<float> a, Vec<float> b, Vec<float> x, Vec<float> y) {
  return _mm256_blendv_ps(y.v, x.v, _mm256_cmp_ps(a.v, b.v, _CMP_LT_OQ));
}
inline Vec<float> round_nearest(Vec<float> a) {
  return _mm256_round_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
inline Vec<float> pow2i(Vec<float> n) {
  __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n.v), _mm256_set1_epi32(127));
  return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
}
inline float reduce_add(Vec<float> a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// ---------------------------------------------------------------------------
// double x 4

template <> struct Vec<double> {
  static constexpr int size = 4;
  __m256d v;
  Vec() = default;
  Vec(__m256d x) : v(x) {}
  static Vec zero() { return _mm256_setzero_pd(); }
  static Vec broadcast(double x) { return _mm256_set1_pd(x); }
  static Vec load(const double* p) { return _mm256_loadu_pd(p); }
  void store(double* p) const { _mm256_storeu_pd(p, v); }
  static Vec load_partial(const double* p, int n) { return _mm256_maskload_pd(p, lane_mask64(n)); }
  void store_partial(double* p, int n) const { _mm256_maskstore_pd(p, lane_mask64(n), v); }
};

inline Vec<double> operator+(Vec<double> a, Vec<double> b) { return _mm256_add_pd(a.v, b.v); }
inline Vec<double> operator-(Vec<double> a, Vec<double> b) { return _mm256_sub_pd(a.v, b.v); }
inline Vec<double> operator*(Vec<double> a, Vec<double> b) { return _mm256_mul_pd(a.v, b.v); }
inline Vec<double> operator/(Vec<double> a, Vec<double> b) { return _mm256_div_pd(a.v, b.v); }
inline Vec<double> fmadd(Vec<double> a, Vec<double> b, Vec<double> c) { return _mm256_fmadd_pd(a.v, b.v, c.v); }
inline Vec<double> fnmadd(Vec<double> a, Vec<double> b, Vec<double> c) { return _mm256_fnmadd_pd(a.v, b.v, c.v); }
inline Vec<double> max(Vec<double> a, Vec<double> b) { return _mm256_max_pd(a.v, b.v); }
inline Vec<double> min(Vec<double> a, Vec<double> b) { return _mm256_min_pd(a.v, b.v); }
inline Vec<double> abs(Vec<double> a) { return _mm256_andnot_pd(_mm256_set1_pd(-0.0), a.v); }
inline Vec<double> sqrt(Vec<double> a) { return _mm256_sqrt_pd(a.v); }
inline Vec<double> copysign(Vec<double> mag, Vec<double> sgn) {
  const __m256d sign = _mm256_set1_pd(-0.0);
  return _mm256_or_pd(_mm256_andnot_pd(sign, mag.v), _mm256_and_pd(sign, sgn.v));
}
inline Vec<double> select_lt(Vec<double> a, Vec<double> b, Vec<double> x, Vec<double> y) {
  return _mm256_blendv_pd(y.v, x.v, _mm256_cmp_pd(a.v, b.v, _CMP_LT_OQ));
}
inline Vec<double> round_nearest(Vec<double> a) {
  return _mm256_round_pd(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
// 2^n for integral n in [-1022, 1023]; AVX2 has no double->int64 convert, so
// the integer is taken from the mantissa after adding 2^52 + 2^51.
inline Vec<double> pow2i(Vec<double> n) {
  const __m256d magic = _mm256_set1_pd(6755399441055744.0);  // 2^52 + 2^51
  __m256i i = _mm256_sub_epi64(_mm256_castpd_si256(_mm256_add_pd(n.v, magic)),
                               _mm256_castpd_si256(magic));
  __m256i e = _mm256_add_epi64(i, _mm256_set1_epi64x(1023));
  return _mm256_castsi256_pd(_mm256_slli_epi64(e, 52));
}
inline double reduce_add(Vec<double> a) {
  __m128d s = _mm_add_pd(_mm256_castpd256_pd128(a.v), _mm256_extractf128_pd(a.v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

// ---------------------------------------------------------------------------
// For the exponential of activations/activations.h

// n = round(a) (ties to even) and the return value 2^n, for a in
// [-126.5, 127.5) (double: [-1022.5, 1023.5)); a NaN gives a NaN n and an
// unspecified 2^n.
inline Vec<float> round_pow2i(Vec<float> a, Vec<float>& n) {
  n = round_nearest(a);
  return pow2i(n);
}
inline Vec<double> round_pow2i(Vec<double> a, Vec<double>& n) {
  n = round_nearest(a);
  return pow2i(n);
}

}  // namespace SEQCORE_ISA_NS
}  // namespace seqcore
