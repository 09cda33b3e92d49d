// seqcore._core's products outside the cells: gemm, the activations (for tests
// and benchmarks), Adam, the sum of squares, softmax cross-entropy.
#include "bindings/common.h"

#include <cstdint>
#include <vector>

namespace seqcore {
namespace {

// ---------------------------------------------------------------------------
// gemm and activations (exposed for tests and benchmarks)

template <typename T>
void gemm_py(const py::array& A, const py::array& B, py::array& C, bool trans_a,
             bool trans_b, double alpha, double beta, bool bf16) {
  check_array<T>(A, "a", 2, false);
  check_array<T>(B, "b", 2, false);
  check_array<T>(C, "c", 2, true);
  const int64_t M = C.shape(0), N = C.shape(1);
  const int64_t K = trans_a ? A.shape(0) : A.shape(1);
  const int64_t am = trans_a ? A.shape(1) : A.shape(0);
  const int64_t bk = trans_b ? B.shape(1) : B.shape(0);
  const int64_t bn = trans_b ? B.shape(0) : B.shape(1);
  if (am != M || bn != N || bk != K) {
    throw py::value_error("gemm: shapes do not agree: op(a) is (" + std::to_string(am) + ", " +
                          std::to_string(K) + "), op(b) is (" + std::to_string(bk) + ", " +
                          std::to_string(bn) + "), c is (" + std::to_string(M) + ", " +
                          std::to_string(N) + ")");
  }
  check_bf16<T>(bf16);
  const T* a = static_cast<const T*>(A.data());
  const T* b = static_cast<const T*>(B.data());
  T* c = static_cast<T*>(C.mutable_data());
  const int threads = get_num_threads();
  const auto& k = table<T>();
  py::gil_scoped_release release;
  (bf16 ? k.gemm_bf16 : k.gemm)(trans_a, trans_b, M, N, K, static_cast<T>(alpha), a, A.shape(1), b, B.shape(1),
         static_cast<T>(beta), c, N, threads);
}

void gemm_any(const py::array& A, const py::array& B, py::array& C, bool trans_a,
              bool trans_b, double alpha, double beta, bool bf16) {
  if (C.dtype().kind() == 'f' && C.itemsize() == 8) {
    gemm_py<double>(A, B, C, trans_a, trans_b, alpha, beta, bf16);
  } else {
    gemm_py<float>(A, B, C, trans_a, trans_b, alpha, beta, bf16);
  }
}

template <typename T>
py::array activation_py(const py::array& x, bool is_sigmoid) {
  check_array<T>(x, "x", static_cast<int>(x.ndim()), false);
  py::array_t<T> y(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
  const T* px = static_cast<const T*>(x.data());
  T* py_ = y.mutable_data();
  const int64_t n = x.size();
  const auto& k = table<T>();
  {
    // Scoped: converting y to the returned py::array takes a reference,
    // which needs the GIL.
    py::gil_scoped_release release;
    (is_sigmoid ? k.sigmoid : k.tanh)(px, py_, n);
  }
  return y;
}

py::array activation_any(const py::array& x, bool is_sigmoid) {
  if (x.dtype().kind() == 'f' && x.itemsize() == 8) return activation_py<double>(x, is_sigmoid);
  return activation_py<float>(x, is_sigmoid);
}

// ---------------------------------------------------------------------------
// optimizers

// Adam on one parameter array and its state, in place: p, m, v (written)
// and g of one dtype and size, C-contiguous.
template <typename T>
void adam_py(py::array& p, const py::array& g, py::array& m, py::array& v, const AdamArgs& args) {
  const int ndim = static_cast<int>(p.ndim());
  check_array<T>(p, "p", ndim, true);
  check_array<T>(g, "g", static_cast<int>(g.ndim()), false);
  check_array<T>(m, "m", static_cast<int>(m.ndim()), true);
  check_array<T>(v, "v", static_cast<int>(v.ndim()), true);
  const int64_t n = p.size();
  if (g.size() != n || m.size() != n || v.size() != n) {
    throw py::value_error("adam: p, g, m and v must have one size, got " + std::to_string(n) + ", " +
                          std::to_string(g.size()) + ", " + std::to_string(m.size()) + ", " +
                          std::to_string(v.size()));
  }
  T* pp = static_cast<T*>(p.mutable_data());
  const T* pg = static_cast<const T*>(g.data());
  T* pm = static_cast<T*>(m.mutable_data());
  T* pv = static_cast<T*>(v.mutable_data());
  const int threads = get_num_threads();
  const auto& k = table<T>();
  py::gil_scoped_release release;
  k.adam(pp, pg, pm, pv, n, args, threads);
}

template <typename T>
double sum_of_squares_py(const py::array& x) {
  check_array<T>(x, "x", static_cast<int>(x.ndim()), false);
  const T* p = static_cast<const T*>(x.data());
  const int64_t n = x.size();
  const int threads = get_num_threads();
  const auto& k = table<T>();
  py::gil_scoped_release release;
  return k.sum_of_squares(p, n, threads);
}

template <typename T>
py::tuple read_stream_py(const py::array& x, int64_t repeats, int num_threads) {
  check_array<T>(x, "x", 1, false);
  if (repeats < 1) throw py::value_error("repeats: expected an int >= 1, got " + std::to_string(repeats));
  const int threads = threads_arg(num_threads);
  const T* p = static_cast<const T*>(x.data());
  const int64_t n = x.size();
  T sum;
  double seconds;
  {
    py::gil_scoped_release release;
    seconds = table<T>().read_stream(p, n, repeats, threads, &sum);
  }
  return py::make_tuple(seconds, static_cast<double>(sum));
}

// Softmax cross-entropy of logits z (N, V), C-contiguous, against targets
// (N,) int64 in [0, V) with weights (N,) float64 -> (Σ nll of the weighted
// rows, dz (N, V)).
template <typename T>
py::tuple softmax_cross_entropy_py(const py::array& z, const py::array& targets, const py::array& weights) {
  check_array<T>(z, "logits", 2, false);
  const int64_t N = z.shape(0), V = z.shape(1);
  if (targets.ndim() != 1 || targets.shape(0) != N || !py::isinstance<py::array_t<int64_t>>(targets) ||
      !(targets.flags() & py::array::c_style))
    throw py::value_error("targets: expected a C-contiguous int64 array of shape (N,)");
  if (weights.ndim() != 1 || weights.shape(0) != N || !py::isinstance<py::array_t<double>>(weights) ||
      !(weights.flags() & py::array::c_style))
    throw py::value_error("weights: expected a C-contiguous float64 array of shape (N,)");
  const int64_t* t = static_cast<const int64_t*>(targets.data());
  for (int64_t i = 0; i < N; ++i)
    if (t[i] < 0 || t[i] >= V) throw py::value_error("targets: expected values in [0, V)");
  if (V < 1 && N > 0) throw py::value_error("logits: expected V >= 1");
  py::array_t<T> dz({N, V});
  const int threads = get_num_threads();
  const auto& k = table<T>();
  const T* pz = static_cast<const T*>(z.data());
  const double* w = static_cast<const double*>(weights.data());
  T* pd = dz.mutable_data();
  double loss;
  {
    py::gil_scoped_release release;
    loss = k.softmax_cross_entropy(pz, N, V, t, w, pd, threads);
  }
  return py::make_tuple(loss, dz);
}

}  // namespace

void bind_products(py::module_& m) {
  m.def("gemm", &gemm_any, py::arg("a"), py::arg("b"), py::arg("c"),
        py::arg("trans_a") = false, py::arg("trans_b") = false, py::arg("alpha") = 1.0,
        py::arg("beta") = 0.0, py::arg("bf16") = false,
        "c = alpha * op(a) @ op(b) + beta * c, in place; float32 or float64, C-contiguous; "
        "bf16: op(a), op(b) rounded to bfloat16, float32 sums (float32 only).");
  m.def(
      "adam",
      [](py::array& p, const py::array& g, py::array& m, py::array& v, double beta1, double beta2,
         double eps, double step_size, double bias2) {
        const AdamArgs args{beta1, beta2, eps, step_size, bias2};
        if (p.dtype().kind() == 'f' && p.itemsize() == 8) {
          adam_py<double>(p, g, m, v, args);
        } else {
          adam_py<float>(p, g, m, v, args);
        }
      },
      py::arg("p"), py::arg("g"), py::arg("m"), py::arg("v"), py::arg("beta1"), py::arg("beta2"),
      py::arg("eps"), py::arg("step_size"), py::arg("bias2"),
      "One Adam step in place: p, m, v updated from g (step_size = lr / (1 - beta1^t), "
      "bias2 = sqrt(1 - beta2^t)).");
  m.def(
      "sum_of_squares",
      [](const py::array& x) {
        return x.dtype().kind() == 'f' && x.itemsize() == 8 ? sum_of_squares_py<double>(x)
                                                             : sum_of_squares_py<float>(x);
      },
      py::arg("x"), "The sum of the squares of x's elements, accumulated in double (C-contiguous); "
      "the same bits at any number of threads.");
  m.def(
      "softmax_cross_entropy",
      [](const py::array& z, const py::array& targets, const py::array& weights) {
        return z.dtype().kind() == 'f' && z.itemsize() == 8 ? softmax_cross_entropy_py<double>(z, targets, weights)
                                                             : softmax_cross_entropy_py<float>(z, targets, weights);
      },
      py::arg("logits"), py::arg("targets"), py::arg("weights"),
      "Softmax cross-entropy of the rows of logits -> (sum of the weighted rows' nll, dlogits).");
  m.def(
      "read_stream",
      [](const py::array& x, int64_t repeats, int num_threads) {
        return is_float64(x) ? read_stream_py<double>(x, repeats, num_threads)
                             : read_stream_py<float>(x, repeats, num_threads);
      },
      py::arg("x"), py::arg("repeats") = 1, py::arg("num_threads") = 0,
      "The bandwidth probe: num_threads workers (0: get_num_threads()) read their shares of x (1-D, "
      "C-contiguous) repeats times with the kernels' vector loads -> (seconds from the first start to the "
      "last end, the sum of what was read).");
  m.def("sigmoid", [](const py::array& x) { return activation_any(x, true); }, py::arg("x"));
  m.def("tanh", [](const py::array& x) { return activation_any(x, false); }, py::arg("x"));
}

}  // namespace seqcore
