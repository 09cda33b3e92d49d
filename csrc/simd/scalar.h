// Portable one-lane "vectors" for the generic kernels: plain C++ that any
// compiler and any CPU runs. Only kernels_scalar.cpp includes this file.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace seqcore {
namespace scalar {

template <typename T> struct Vec {
  static constexpr int size = 1;
  T v;
  Vec() = default;
  Vec(T x) : v(x) {}
  static Vec zero() { return T(0); }
  static Vec broadcast(T x) { return x; }
  static Vec load(const T* p) { return *p; }
  void store(T* p) const { *p = v; }
  // With one lane, a partial access is an empty one.
  static Vec load_partial(const T*, int) { return T(0); }
  void store_partial(T*, int) const {}
};

template <typename T> inline Vec<T> operator+(Vec<T> a, Vec<T> b) { return a.v + b.v; }
template <typename T> inline Vec<T> operator-(Vec<T> a, Vec<T> b) { return a.v - b.v; }
template <typename T> inline Vec<T> operator*(Vec<T> a, Vec<T> b) { return a.v * b.v; }
template <typename T> inline Vec<T> operator/(Vec<T> a, Vec<T> b) { return a.v / b.v; }
// Separate multiply and add: the scalar path is built without FMA.
template <typename T> inline Vec<T> fmadd(Vec<T> a, Vec<T> b, Vec<T> c) { return a.v * b.v + c.v; }
template <typename T> inline Vec<T> fnmadd(Vec<T> a, Vec<T> b, Vec<T> c) { return c.v - a.v * b.v; }
template <typename T> inline Vec<T> max(Vec<T> a, Vec<T> b) { return a.v > b.v ? a.v : b.v; }
template <typename T> inline Vec<T> min(Vec<T> a, Vec<T> b) { return a.v < b.v ? a.v : b.v; }
template <typename T> inline Vec<T> abs(Vec<T> a) { return std::fabs(a.v); }
template <typename T> inline Vec<T> sqrt(Vec<T> a) { return std::sqrt(a.v); }
template <typename T> inline Vec<T> copysign(Vec<T> mag, Vec<T> sgn) { return std::copysign(mag.v, sgn.v); }
template <typename T> inline Vec<T> select_lt(Vec<T> a, Vec<T> b, Vec<T> x, Vec<T> y) {
  return a.v < b.v ? x.v : y.v;
}
template <typename T> inline Vec<T> round_nearest(Vec<T> a) { return std::nearbyint(a.v); }
template <typename T> inline Vec<T> pow2i(Vec<T> n) { return std::ldexp(T(1), static_cast<int>(n.v)); }
template <typename T> inline T reduce_add(Vec<T> a) { return a.v; }

// ---------------------------------------------------------------------------
// For the exponential of activations/activations.h

// n = round(a) (ties to even) and the return value 2^n, for a in
// [-126.5, 127.5) (double: [-1022.5, 1023.5)); a NaN gives a NaN n and an
// unspecified 2^n. Without libm calls: adding 1.5 * 2^23 (2^52) rounds a to
// an integer that sits in the low bits of the sum (IEEE arithmetic rounding
// to nearest, no excess precision: any x86-64 or AArch64 target).
inline Vec<float> round_pow2i(Vec<float> a, Vec<float>& n) {
  const float shifter = 12582912.0f;  // 1.5 * 2^23, bits 0x4B400000
  const float t = a.v + shifter;
  n.v = t - shifter;
  std::uint32_t bits;
  std::memcpy(&bits, &t, sizeof bits);
  bits = (bits - 0x4B400000u + 127u) << 23;
  float p;
  std::memcpy(&p, &bits, sizeof p);
  return p;
}
inline Vec<double> round_pow2i(Vec<double> a, Vec<double>& n) {
  const double shifter = 6755399441055744.0;  // 1.5 * 2^52, bits 0x4338000000000000
  const double t = a.v + shifter;
  n.v = t - shifter;
  std::uint64_t bits;
  std::memcpy(&bits, &t, sizeof bits);
  bits = (bits - 0x4338000000000000ull + 1023u) << 52;
  double p;
  std::memcpy(&p, &bits, sizeof p);
  return p;
}

}  // namespace scalar
}  // namespace seqcore
