// Σ x² of an array, for clipping by the global norm (generic code, see
// isa/kernels_impl.h): accumulated in double, since float32 squares
// overflow past 1.8e19, in eight independent sums added in a fixed order
// at the end, on one thread: the result depends on n and the ISA only.
namespace seqcore {
namespace SEQCORE_ISA_NS {

template <typename T>
double sum_of_squares(const T* x, int64_t n) {
  double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) {
      const double v = static_cast<double>(x[i + k]);
      s[k] += v * v;
    }
  }
  for (int k = 0; i < n; ++i, ++k) {
    const double v = static_cast<double>(x[i]);
    s[k] += v * v;
  }
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

}  // namespace SEQCORE_ISA_NS
}  // namespace seqcore
