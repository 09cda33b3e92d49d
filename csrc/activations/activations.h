// Vectorised sigmoid and tanh on Vec<T> of the including ISA (generic code,
// see isa/kernels_impl.h). FIRST VERSION: lane by lane through <cmath>.
namespace seqcore {
namespace SEQCORE_ISA_NS {

template <typename T>
inline Vec<T> vsigmoid(Vec<T> x) {
  alignas(64) T buf[Vec<T>::size];
  x.store(buf);
  for (int i = 0; i < Vec<T>::size; ++i) buf[i] = T(1) / (T(1) + std::exp(-buf[i]));
  return Vec<T>::load(buf);
}

template <typename T>
inline Vec<T> vtanh(Vec<T> x) {
  alignas(64) T buf[Vec<T>::size];
  x.store(buf);
  for (int i = 0; i < Vec<T>::size; ++i) buf[i] = std::tanh(buf[i]);
  return Vec<T>::load(buf);
}

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
