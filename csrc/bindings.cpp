// The Python module seqcore._core: the only file that includes pybind11.
// Arguments are validated here, before any kernel runs: kernels trust their
// sizes and pointers. Every kernel runs with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "dispatch.h"
#include "threads.h"

namespace py = pybind11;

namespace seqcore {
namespace {

// ---------------------------------------------------------------------------
// argument checks

template <typename T>
const char* dtype_name() {
  return sizeof(T) == 4 ? "float32" : "float64";
}

// Checks that `a` is a C-contiguous T array with `ndim` dimensions (and
// writeable when it is an output). No conversion: outputs must be written
// in place and inputs must not be silently copied.
template <typename T>
void check_array(const py::array& a, const char* name, int ndim, bool writeable) {
  if (!py::isinstance<py::array_t<T>>(a) || a.dtype().kind() != 'f' ||
      a.itemsize() != static_cast<py::ssize_t>(sizeof(T))) {
    throw py::type_error(std::string(name) + ": expected a " + dtype_name<T>() +
                         " array, got dtype " + py::str(a.dtype()).cast<std::string>());
  }
  if (a.ndim() != ndim) {
    throw py::value_error(std::string(name) + ": expected " + std::to_string(ndim) +
                          " dimensions, got " + std::to_string(a.ndim()));
  }
  if (!(a.flags() & py::array::c_style)) {
    throw py::value_error(std::string(name) + ": expected a C-contiguous array");
  }
  if (writeable && !a.writeable()) {
    throw py::value_error(std::string(name) + ": the array is read-only");
  }
}

template <typename T>
const KernelTable<T>& table() {
  if constexpr (sizeof(T) == 4) {
    return active_kernels().f32;
  } else {
    return active_kernels().f64;
  }
}

// ---------------------------------------------------------------------------
// gemm and activations (exposed for tests and benchmarks)

template <typename T>
void gemm_py(const py::array& A, const py::array& B, py::array& C, bool trans_a,
             bool trans_b, double alpha, double beta) {
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
  const T* a = static_cast<const T*>(A.data());
  const T* b = static_cast<const T*>(B.data());
  T* c = static_cast<T*>(C.mutable_data());
  const int threads = get_num_threads();
  const auto& k = table<T>();
  py::gil_scoped_release release;
  k.gemm(trans_a, trans_b, M, N, K, static_cast<T>(alpha), a, A.shape(1), b, B.shape(1),
         static_cast<T>(beta), c, N, threads);
}

void gemm_any(const py::array& A, const py::array& B, py::array& C, bool trans_a,
              bool trans_b, double alpha, double beta) {
  if (C.dtype().kind() == 'f' && C.itemsize() == 8) {
    gemm_py<double>(A, B, C, trans_a, trans_b, alpha, beta);
  } else {
    gemm_py<float>(A, B, C, trans_a, trans_b, alpha, beta);
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
  py::gil_scoped_release release;
  (is_sigmoid ? k.sigmoid : k.tanh)(px, py_, n);
  return y;
}

py::array activation_any(const py::array& x, bool is_sigmoid) {
  if (x.dtype().kind() == 'f' && x.itemsize() == 8) return activation_py<double>(x, is_sigmoid);
  return activation_py<float>(x, is_sigmoid);
}

}  // namespace
}  // namespace seqcore

PYBIND11_MODULE(_core, m) {
  using namespace seqcore;
  m.doc() = "seqcore's native kernels (C++17, SIMD, OpenMP)";
  m.attr("__version__") = SEQCORE_VERSION;
  // Choose the kernels now, so that a bad SEQCORE_ISA fails the import with
  // a clear message rather than the first call.
  active_kernels();

  m.def("isa", [] { return std::string(active_kernels().name); },
        "The instruction set whose kernels are in use.");
  m.def("isas", &supported_isas, "The instruction sets this CPU can run, slowest first.");
  m.def("set_isa", &set_isa, py::arg("name"), "Use the kernels of another instruction set.");
  m.def("openmp", &openmp_enabled, "Whether the kernels were built with OpenMP.");
  m.def("get_num_threads", &get_num_threads);
  m.def("set_num_threads", &set_num_threads, py::arg("n"));

  m.def("gemm", &gemm_any, py::arg("a"), py::arg("b"), py::arg("c"),
        py::arg("trans_a") = false, py::arg("trans_b") = false, py::arg("alpha") = 1.0,
        py::arg("beta") = 0.0,
        "c = alpha * op(a) @ op(b) + beta * c, in place; float32 or float64, C-contiguous.");
  m.def("sigmoid", [](const py::array& x) { return activation_any(x, true); }, py::arg("x"));
  m.def("tanh", [](const py::array& x) { return activation_any(x, false); }, py::arg("x"));
}
