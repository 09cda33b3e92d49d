// Vectorised sigmoid and tanh on Vec<T> of the including ISA (generic code,
// see isa/kernels_impl.h). vsigmoid / vtanh are inline so that the cells can
// fuse them into the epilogues of their time loops; sigmoid_array / tanh_array
// are the same code over arrays (the kernel table exposes them to tests).
//
// Method. Both functions are built on one exponential of a non-positive
// argument y, e^y = 2^n (1 + q):
//   n = round(y log2 e),  r = y - n ln2 (ln2 as a hi part whose products with
//   n are exact plus a lo part),  |r| <= ln2/2,
//   q = r + r^2 P(r) ~ e^r - 1, P a weighted minimax polynomial (degree 4 for
//   float, 9 for double) that minimises the RELATIVE error of q,
//   2^n built in the exponent bits, on AVX-512 by vscalefps (round_pow2i in
//   simd/<isa>.h).
//   sigmoid(x): e = 2^n + 2^n q = e^-|x|, d = 2^n q + (2^n + 1) = 1 + e^-|x|
//               (one rounding each, for |x| < 16 in float, 36 in double;
//               beyond, d is within an ulp of 1); sigmoid(|x|) = 1 / d and
//               sigmoid(-|x|) = e / d: no 1 - s cancellation, so the relative
//               accuracy holds as sigmoid(x) -> e^x for x -> -inf.
//   tanh(x):    u = 2^n q + (2^n - 1) = expm1(-2|x|) and d = 1 + e^-2|x| as
//               above; tanh|x| = -u / d, given the sign of x. expm1 keeps its
//               relative accuracy as |x| -> 0 (for n = 0, u = q), so tanh does
//               too, with no odd polynomial and no switch between formulas.
// The one division of each function stays a true division: a reciprocal
// estimate (rcp14) times the dividend with one correction step, within
// 0.51 ulp, measured 3-4% slower than vdivps in these functions on an Intel
// Xeon with AVX-512 and AMX (the division's few uops overlap the
// polynomial's; the four instructions replacing it do not).
// The products 2^n q are exact and 2^n +- 1 is exact wherever it matters, so
// the scalar ISA, which evaluates fmadd as a multiply and an add (no FMA),
// is as accurate as the others.
//
// Special values. NaN in gives NaN out (the clamps are written max(c, y) and
// min(c, y), which return y when it is NaN, in every ISA). +-inf and large |x|
// saturate to exactly 1 and 0 (sigmoid) and +-1 (tanh): the argument is
// clamped before the exponential, so nothing overflows and no NaN appears.
// tanh(+-0) = +-0, sigmoid(+-0) = 0.5.
// Subnormals: sigmoid(x) for x < ln(FLT_MIN) = -87.3365 (double: ln(DBL_MIN)
// = -708.396) would be subnormal; it is flushed to +0 (absolute error below
// 2^-126, resp. 2^-1022), so the SIMD paths never produce a subnormal (a slow
// microcode assist on many CPUs). Subnormal inputs are ordinary inputs:
// tanh(x) = x exactly and sigmoid(x) = 0.5 there.
//
// Measured maximum error, in ulps of the exact value, ulp(v) =
// 2^(floor(log2|v|) - 23) (float) or - 52 (double), over results that are
// normal numbers; rel and abs are |y - exact| / |exact| and |y - exact|:
//   float32, oracle: the function in float64 (NumPy); bench/activation_error.py
//   measures it (re-run with 2^n by vscalefps: avx512 over all 2^32 inputs,
//   sigmoid 2.402 ulp, tanh 1.932 ulp, every result bitwise equal to the
//   former kernel's, --against).
//     avx512: EXHAUSTIVE, all 2^32 inputs. avx2: bitwise identical to avx512
//     on every 4th bit pattern (2^30 inputs). scalar: every 4th bit pattern.
//       sigmoid  2.40 ulp (rel 1.8e-7, abs 8.9e-8), all three ISAs
//       tanh     1.93 ulp (rel 1.8e-7, abs 1.09e-7); scalar 1.95 ulp
//   float64, oracle: the function in np.longdouble (x87 80-bit); 19M inputs,
//     tests/test_activations.py's sample and 4 more seeds of it (one random
//     bit pattern in each 2^-20 slice of all 2^64, uniform in [-40, 40],
//     log-uniform |x| in [2^-60, 2^10], uniform in [-712, -700]).
//       sigmoid  2.28 ulp (rel 3.3e-16, abs 1.7e-16), all three ISAs
//       tanh     2.00 ulp (rel 3.1e-16, abs 2.0e-16), all three ISAs
// The tests enforce <= 4 ulp on normal results and an absolute error <=
// 2^-23 (float32) / 2^-51 (float64) everywhere; exact 1 / 0 / +-1 at
// saturation, +0 where sigmoid's exact value is subnormal, NaN for NaN.
namespace seqcore {
namespace SEQCORE_ISA_NS {

// ---------------------------------------------------------------------------
// constants per element type

template <typename T> struct ActConst;

template <> struct ActConst<float> {
  static constexpr float log2e = 1.44269504089f;
  static constexpr float ln2_hi = 0.693359375f;  // 9 significant bits: n * ln2_hi is exact
  static constexpr float ln2_lo = -2.12194440e-4f;
  // P(r) ~ (e^r - 1 - r) / r^2 on [-0.3467, 0.3467]; q = r + r^2 P(r) has a
  // relative error below 1.8e-8 against expm1(r).
  static constexpr int degree = 4;
  static constexpr float poly[degree + 1] = {4.999999702e-01f, 1.666654348e-01f,
                                             4.166720062e-02f, 8.366538212e-03f,
                                             1.388251781e-03f};
  // ln(FLT_MIN) rounded towards 0: below it sigmoid(x) is subnormal (flushed
  // to 0); at it e^x is still normal and 2^n = 2^-126.
  static constexpr float sigmoid_lo = -87.33654f;
  // tanh(x) rounds to 1 in float for |x| > 9.01; e^-20 - 1 rounds to -1.
  static constexpr float tanh_hi = 10.0f;
};

template <> struct ActConst<double> {
  static constexpr double log2e = 1.4426950408889634;
  static constexpr double ln2_hi = 6.93147180369123816490e-01;  // 32 significant bits
  static constexpr double ln2_lo = 1.90821492927058770002e-10;
  // Relative error of q below 3.4e-17 on [-0.3467, 0.3467].
  static constexpr int degree = 9;
  static constexpr double poly[degree + 1] = {
      5.00000000000000555e-01, 1.66666666666665880e-01, 4.16666666665765628e-02,
      8.33333333338967183e-03, 1.38888889316324759e-03, 1.98412697188117077e-04,
      2.48015051871021682e-05, 2.75574076379611938e-06, 2.76260742256568191e-07,
      2.50537750621031371e-08};
  static constexpr double sigmoid_lo = -708.3964185322641;  // ln(DBL_MIN), towards 0
  // tanh(x) rounds to 1 in double for |x| > 19.06; e^-40 - 1 rounds to -1.
  static constexpr double tanh_hi = 20.0;
};

// ---------------------------------------------------------------------------
// e^y = scale * (1 + q) for sigmoid_lo <= y <= 0 (or NaN)

template <typename T> struct ExpParts {
  Vec<T> scale;  // 2^n, a normal number (unspecified where y is NaN)
  Vec<T> q;      // e^r - 1, |r| <= ln2/2, NaN where y is
};

template <typename T>
inline ExpParts<T> exp_parts(Vec<T> y) {
  using C = ActConst<T>;
  Vec<T> n;
  const Vec<T> scale = round_pow2i(y * Vec<T>::broadcast(C::log2e), n);
  Vec<T> r = fnmadd(n, Vec<T>::broadcast(C::ln2_hi), y);
  r = fnmadd(n, Vec<T>::broadcast(C::ln2_lo), r);
  // Horner; the loop has a constant trip count and unrolls.
  Vec<T> p = Vec<T>::broadcast(C::poly[C::degree]);
  for (int k = C::degree - 1; k >= 0; --k) p = fmadd(p, r, Vec<T>::broadcast(C::poly[k]));
  return {scale, fmadd(r * r, p, r)};
}

// ---------------------------------------------------------------------------
// sigmoid(x) = 1 / (1 + e^-x)

template <typename T>
inline Vec<T> vsigmoid(Vec<T> x) {
  const Vec<T> zero = Vec<T>::zero();
  const Vec<T> one = Vec<T>::broadcast(T(1));
  const Vec<T> lo = Vec<T>::broadcast(ActConst<T>::sigmoid_lo);
  const ExpParts<T> ep = exp_parts(max(lo, zero - abs(x)));
  const Vec<T> e = fmadd(ep.scale, ep.q, ep.scale);        // e^-|x| in (0, 1], normal
  const Vec<T> d = fmadd(ep.scale, ep.q, ep.scale + one);  // 1 + e^-|x|
  // sigmoid(|x|) = 1 / d, sigmoid(-|x|) = e / d
  const Vec<T> y = select_lt(x, zero, e, one) / d;
  return select_lt(x, lo, zero, y);  // flush what would be subnormal
}

// ---------------------------------------------------------------------------
// tanh(x) = sign(x) * -expm1(-2|x|) / (1 + e^-2|x|)

template <typename T>
inline Vec<T> vtanh(Vec<T> x) {
  const Vec<T> one = Vec<T>::broadcast(T(1));
  const Vec<T> a = min(Vec<T>::broadcast(ActConst<T>::tanh_hi), abs(x));  // NaN stays
  const ExpParts<T> ep = exp_parts(a * Vec<T>::broadcast(T(-2)));
  // e = e^-2|x|; u = e - 1 = expm1(-2|x|) in [-1, 0] and d = 1 + e, each with
  // one rounding while 2^n +- 1 is exact (|x| < 8.1 in float, 18.2 in double;
  // beyond, tanh|x| is within an ulp or two of 1); tanh|x| = -u / d.
  const Vec<T> u = fmadd(ep.scale, ep.q, ep.scale - one);
  const Vec<T> d = fmadd(ep.scale, ep.q, ep.scale + one);
  return copysign(u / d, x);  // the magnitude of u / d with the sign of x
}

// ---------------------------------------------------------------------------
// arrays

// y[i] = f(x[i]) for i < n, full vectors then one partial one.
template <typename T, Vec<T> (*F)(Vec<T>)>
void apply_array(const T* x, T* y, int64_t n) {
  constexpr int V = Vec<T>::size;
  int64_t i = 0;
  for (; i + V <= n; i += V) F(Vec<T>::load(x + i)).store(y + i);
  if (i < n) {
    const int rest = static_cast<int>(n - i);
    F(Vec<T>::load_partial(x + i, rest)).store_partial(y + i, rest);
  }
}

template <typename T>
void sigmoid_array(const T* x, T* y, int64_t n) { apply_array<T, vsigmoid<T>>(x, y, n); }

template <typename T>
void tanh_array(const T* x, T* y, int64_t n) { apply_array<T, vtanh<T>>(x, y, n); }

}  // namespace SEQCORE_ISA_NS
}  // namespace seqcore
