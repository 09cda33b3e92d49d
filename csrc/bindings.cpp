// The Python module seqcore._core: the only file that includes pybind11.
// Arguments are validated here, before any kernel runs: kernels trust their
// sizes and pointers. Every kernel runs with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

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

// precision "bf16": products of float32 arrays with bfloat16 operands.
// float64 has no such precision: refused, never silently ignored.
template <typename T>
void check_bf16(bool bf16) {
  if (bf16 && sizeof(T) != 4) {
    throw py::value_error("precision: 'bf16' needs float32 arrays, got float64 (use precision='fp32')");
  }
}

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
  const auto& k = table<T>();
  py::gil_scoped_release release;
  return k.sum_of_squares(p, n);
}

// ---------------------------------------------------------------------------
// cells

Cell parse_cell(const std::string& name) {
  if (name == "rnn") return Cell::rnn;
  if (name == "lstm") return Cell::lstm;
  if (name == "gru") return Cell::gru;
  throw py::value_error("cell: expected 'rnn', 'lstm' or 'gru', got '" + name + "'");
}

// An uninitialised C-contiguous T array of `shape` whose data starts on a
// 64-byte boundary. NumPy's large arrays start 16 bytes past one (malloc's
// header), so each 512-bit access of the kernels would straddle two cache
// lines: this is a view into an array a line longer, at its first boundary.
template <typename T>
py::array_t<T> empty(std::initializer_list<py::ssize_t> shape) {
  constexpr py::ssize_t line = 64 / sizeof(T);
  const std::vector<py::ssize_t> dims(shape);
  py::ssize_t n = 1;
  for (py::ssize_t d : dims) n *= d;
  py::array_t<T> base(n + line);
  const auto address = reinterpret_cast<std::uintptr_t>(base.data());
  T* start = base.mutable_data() + (64 - address % 64) % 64 / sizeof(T);
  std::vector<py::ssize_t> strides(dims.size());
  py::ssize_t stride = sizeof(T);
  for (size_t i = dims.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= dims[i];
  }
  return py::array_t<T>(dims, strides, start, base);
}

// Checks a C-contiguous T array of exactly `shape`; returns its data.
template <typename T>
const T* input(const py::array& a, const char* name, std::initializer_list<int64_t> shape) {
  check_array<T>(a, name, static_cast<int>(shape.size()), false);
  int d = 0;
  for (int64_t n : shape) {
    if (a.shape(d) != n) {
      std::string want = "(";
      for (int64_t m : shape) want += std::to_string(m) + ", ";
      want.resize(want.size() - 2);
      throw py::value_error(std::string(name) + ": expected shape " + want + "), got dimension " +
                            std::to_string(d) + " of size " + std::to_string(a.shape(d)));
    }
    ++d;
  }
  return static_cast<const T*>(a.data());
}

template <typename T>
const T* optional_input(const py::object& a, const char* name, std::initializer_list<int64_t> shape) {
  if (a.is_none()) return nullptr;
  return input<T>(a.cast<py::array>(), name, shape);
}

// Sizes of a cell call, from x (T, B, D) and W_hh (G·H, H).
struct CellSizes {
  int64_t T, B, D, H, G;
};

template <typename T>
CellSizes cell_sizes(Cell cell, const py::array& x, const py::array& W_hh) {
  check_array<T>(x, "x", 3, false);
  check_array<T>(W_hh, "W_hh", 2, false);
  CellSizes s{x.shape(0), x.shape(1), x.shape(2), W_hh.shape(1), gate_count(cell)};
  if (s.T < 1 || s.B < 1 || s.H < 1) {
    throw py::value_error("native cells need T, B and H of at least 1; got T=" +
                          std::to_string(s.T) + ", B=" + std::to_string(s.B) +
                          ", H=" + std::to_string(s.H));
  }
  return s;
}

// Checks lengths: None, or an int64 (B,) array with values in [0, T].
const int64_t* lengths_arg(const py::object& lengths, int64_t B, int64_t T) {
  if (lengths.is_none()) return nullptr;
  const py::array a = lengths.cast<py::array>();
  if (a.dtype().kind() != 'i' || a.itemsize() != 8 || a.ndim() != 1 || a.shape(0) != B ||
      !(a.flags() & py::array::c_style)) {
    throw py::value_error("lengths: expected a C-contiguous int64 array of shape (" +
                          std::to_string(B) + ",)");
  }
  const int64_t* p = static_cast<const int64_t*>(a.data());
  for (int64_t b = 0; b < B; ++b) {
    if (p[b] < 0 || p[b] > T) {
      throw py::value_error("lengths: expected values in [0, " + std::to_string(T) + "], got " +
                            std::to_string(p[b]));
    }
  }
  return p;
}

// The kernels' row order for a padded batch: longest first (stable), so the
// rows still running are a prefix. Empty when lengths are already in
// descending order (or absent): the batch order serves.
std::vector<int64_t> row_order(const int64_t* lengths, int64_t B) {
  std::vector<int64_t> order;
  if (lengths == nullptr || std::is_sorted(lengths, lengths + B, std::greater<int64_t>())) return order;
  order.resize(static_cast<size_t>(B));
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [lengths](int64_t a, int64_t b) { return lengths[a] > lengths[b]; });
  return order;
}

// Whether the kernels gather the inputs (see Rows::identity): unless every
// row runs all T steps in batch order. Without an order the lengths are in
// descending order, the shortest last.
bool gathers(const int64_t* lengths, const int64_t* order, bool reverse, int64_t B, int64_t T) {
  return reverse || order != nullptr || (lengths != nullptr && lengths[B - 1] < T);
}

int threads_arg(int num_threads) {
  if (num_threads < 0) throw py::value_error("num_threads: expected 0 (the default) or more");
  return num_threads == 0 ? get_num_threads() : num_threads;
}

// Returns (y, hT, cT, ws_h, ws_gates, ws_c, ws_hn); entries a cell does not
// have (or inference does not keep) are None.
template <typename T>
py::tuple cell_forward_py(Cell cell, const py::array& x, const py::array& h0, const py::object& c0,
                          const py::array& W_ih, const py::array& W_hh, const py::array& b_ih,
                          const py::object& b_hh, bool train, const py::object& lengths,
                          bool reverse, int num_threads, bool bf16) {
  const CellSizes s = cell_sizes<T>(cell, x, W_hh);
  check_bf16<T>(bf16);
  const int64_t GH = s.G * s.H;
  CellForwardArgs<T> a;
  a.T_ = s.T, a.B = s.B, a.D = s.D, a.H = s.H, a.train = train, a.reverse = reverse;
  a.bf16 = bf16;
  a.lengths = lengths_arg(lengths, s.B, s.T);
  const std::vector<int64_t> order = row_order(a.lengths, s.B);
  a.order = order.empty() ? nullptr : order.data();
  const bool gather = gathers(a.lengths, a.order, reverse, s.B, s.T);
  a.x = static_cast<const T*>(x.data());
  a.h0 = input<T>(h0, "h0", {s.B, s.H});
  a.W_ih = input<T>(W_ih, "W_ih", {GH, s.D});
  a.W_hh = input<T>(W_hh, "W_hh", {GH, s.H});
  a.b_ih = input<T>(b_ih, "b_ih", {GH});
  if (cell == Cell::lstm) a.c0 = input<T>(c0.cast<py::array>(), "c0", {s.B, s.H});
  if (cell == Cell::gru) a.b_hh = input<T>(b_hh.cast<py::array>(), "b_hh", {GH});

  auto y = empty<T>({s.T, s.B, s.H});
  auto hT = empty<T>({s.B, s.H});
  py::object cT = py::none(), ws_h = py::none(), ws_gates = py::none(), ws_c = py::none(),
             ws_hn = py::none();
  a.y = y.mutable_data();
  a.hT = hT.mutable_data();
  if (cell == Cell::lstm) {
    auto c = empty<T>({s.B, s.H});
    a.cT = c.mutable_data();
    cT = c;
  }
  if (train) {
    auto h = empty<T>({s.T + 1, s.B, s.H});
    a.ws_h = h.mutable_data();
    ws_h = h;
  }
  if (train && cell != Cell::rnn) {
    auto g = empty<T>({s.T, s.B, GH});
    a.ws_gates = g.mutable_data();
    ws_gates = g;
  }
  if (train && cell == Cell::lstm) {
    auto c = empty<T>({s.T + 1, s.B, s.H});
    a.ws_c = c.mutable_data();
    ws_c = c;
  }
  if (train && cell == Cell::gru) {
    auto hn = empty<T>({s.T, s.B, s.H});
    a.ws_hn = hn.mutable_data();
    ws_hn = hn;
  }
  const auto& k = table<T>();
  a.num_threads = threads_arg(num_threads);
  auto scratch = empty<T>({k.forward_scratch(cell, s.T, s.B, s.D, s.H, train, gather)});
  a.scratch = scratch.mutable_data();
  {
    py::gil_scoped_release release;
    k.forward(cell, a);
  }
  return py::make_tuple(y, hT, cT, ws_h, ws_gates, ws_c, ws_hn);
}

// Returns (dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh); dc0 is None but for
// LSTM, db_hh None but for GRU.
template <typename T>
py::tuple cell_backward_py(Cell cell, const py::array& x, const py::array& W_ih, const py::array& W_hh, const py::array& ws_h,
                           const py::object& ws_gates, const py::object& ws_c,
                           const py::object& ws_hn, const py::object& dy, const py::object& dhT,
                           const py::object& dcT, const py::object& lengths, bool reverse,
                           int num_threads, bool bf16) {
  const CellSizes s = cell_sizes<T>(cell, x, W_hh);
  check_bf16<T>(bf16);
  const int64_t GH = s.G * s.H;
  CellBackwardArgs<T> a;
  a.T_ = s.T, a.B = s.B, a.D = s.D, a.H = s.H, a.reverse = reverse;
  a.bf16 = bf16;
  a.lengths = lengths_arg(lengths, s.B, s.T);
  const std::vector<int64_t> order = row_order(a.lengths, s.B);
  a.order = order.empty() ? nullptr : order.data();
  const bool gather = gathers(a.lengths, a.order, reverse, s.B, s.T);
  a.x = static_cast<const T*>(x.data());
  a.W_ih = input<T>(W_ih, "W_ih", {GH, s.D});
  a.W_hh = input<T>(W_hh, "W_hh", {GH, s.H});
  a.ws_h = input<T>(ws_h, "ws_h", {s.T + 1, s.B, s.H});
  a.dy = optional_input<T>(dy, "dy", {s.T, s.B, s.H});
  a.dhT = optional_input<T>(dhT, "dhT", {s.B, s.H});
  if (cell != Cell::rnn) {
    a.ws_gates = input<T>(ws_gates.cast<py::array>(), "ws_gates", {s.T, s.B, GH});
  }
  if (cell == Cell::lstm) {
    a.ws_c = input<T>(ws_c.cast<py::array>(), "ws_c", {s.T + 1, s.B, s.H});
    a.dcT = optional_input<T>(dcT, "dcT", {s.B, s.H});
  }
  if (cell == Cell::gru) a.ws_hn = input<T>(ws_hn.cast<py::array>(), "ws_hn", {s.T, s.B, s.H});

  auto dx = empty<T>({s.T, s.B, s.D});
  auto dh0 = empty<T>({s.B, s.H});
  auto dW_ih = empty<T>({GH, s.D});
  auto dW_hh = empty<T>({GH, s.H});
  auto db_ih = empty<T>({GH});
  py::object dc0 = py::none(), db_hh = py::none();
  a.dx = dx.mutable_data();
  a.dh0 = dh0.mutable_data();
  a.dW_ih = dW_ih.mutable_data();
  a.dW_hh = dW_hh.mutable_data();
  a.db_ih = db_ih.mutable_data();
  if (cell == Cell::lstm) {
    auto d = empty<T>({s.B, s.H});
    a.dc0 = d.mutable_data();
    dc0 = d;
  }
  if (cell == Cell::gru) {
    auto d = empty<T>({GH});
    a.db_hh = d.mutable_data();
    db_hh = d;
  }
  const auto& k = table<T>();
  a.num_threads = threads_arg(num_threads);
  auto scratch = empty<T>({k.backward_scratch(cell, s.T, s.B, s.D, s.H, gather)});
  a.scratch = scratch.mutable_data();
  {
    py::gil_scoped_release release;
    k.backward(cell, a);
  }
  return py::make_tuple(dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh);
}

bool is_float64(const py::array& x) { return x.dtype().kind() == 'f' && x.itemsize() == 8; }

// Bytes a forward allocates beyond its inputs and outputs: scratch, and for
// training the arrays kept for backward.
int64_t forward_workspace_bytes(const std::string& cell_name, int64_t T, int64_t B, int64_t D,
                                int64_t H, bool train, bool gather, bool float64) {
  const Cell cell = parse_cell(cell_name);
  const int64_t G = gate_count(cell);
  int64_t n = float64 ? table<double>().forward_scratch(cell, T, B, D, H, train, gather)
                      : table<float>().forward_scratch(cell, T, B, D, H, train, gather);
  if (train) {
    n += (T + 1) * B * H;                           // ws_h
    if (cell != Cell::rnn) n += T * B * G * H;      // ws_gates
    if (cell == Cell::lstm) n += (T + 1) * B * H;   // ws_c
    if (cell == Cell::gru) n += T * B * H;          // ws_hn
  }
  return n * (float64 ? 8 : 4);
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
        py::arg("beta") = 0.0, py::arg("bf16") = false,
        "c = alpha * op(a) @ op(b) + beta * c, in place; float32 or float64, C-contiguous; "
        "bf16: op(a), op(b) rounded to bfloat16, float32 sums (float32 only).");
  m.def(
      "cell_forward",
      [](const std::string& cell, const py::array& x, const py::array& h0, const py::object& c0,
         const py::array& W_ih, const py::array& W_hh, const py::array& b_ih,
         const py::object& b_hh, bool train, const py::object& lengths, bool reverse,
         int num_threads, bool bf16) {
        const Cell c = parse_cell(cell);
        return is_float64(x) ? cell_forward_py<double>(c, x, h0, c0, W_ih, W_hh, b_ih, b_hh, train,
                                                       lengths, reverse, num_threads, bf16)
                             : cell_forward_py<float>(c, x, h0, c0, W_ih, W_hh, b_ih, b_hh, train,
                                                      lengths, reverse, num_threads, bf16);
      },
      py::arg("cell"), py::arg("x"), py::arg("h0"), py::arg("c0"), py::arg("W_ih"),
      py::arg("W_hh"), py::arg("b_ih"), py::arg("b_hh"), py::arg("train"),
      py::arg("lengths") = py::none(), py::arg("reverse") = false, py::arg("num_threads") = 0,
      py::arg("bf16") = false,
      "One layer, one direction, over a padded batch -> (y, hT, cT, ws_h, ws_gates, ws_c, ws_hn); "
      "bf16: every product with bfloat16 operands (float32 only).");
  m.def(
      "cell_backward",
      [](const std::string& cell, const py::array& x, const py::array& W_ih,
         const py::array& W_hh, const py::array& ws_h,
         const py::object& ws_gates, const py::object& ws_c, const py::object& ws_hn,
         const py::object& dy, const py::object& dhT, const py::object& dcT,
         const py::object& lengths, bool reverse, int num_threads, bool bf16) {
        const Cell c = parse_cell(cell);
        return is_float64(x) ? cell_backward_py<double>(c, x, W_ih, W_hh, ws_h, ws_gates, ws_c,
                                                        ws_hn, dy, dhT, dcT, lengths, reverse,
                                                        num_threads, bf16)
                             : cell_backward_py<float>(c, x, W_ih, W_hh, ws_h, ws_gates, ws_c,
                                                       ws_hn, dy, dhT, dcT, lengths, reverse,
                                                       num_threads, bf16);
      },
      py::arg("cell"), py::arg("x"), py::arg("W_ih"), py::arg("W_hh"), py::arg("ws_h"), py::arg("ws_gates"), py::arg("ws_c"), py::arg("ws_hn"), py::arg("dy"),
      py::arg("dhT"), py::arg("dcT"), py::arg("lengths") = py::none(),
      py::arg("reverse") = false, py::arg("num_threads") = 0, py::arg("bf16") = false,
      "BPTT of cell_forward -> (dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh).");
  m.def("forward_workspace_bytes", &forward_workspace_bytes, py::arg("cell"), py::arg("T"),
        py::arg("B"), py::arg("D"), py::arg("H"), py::arg("train"), py::arg("gather"),
        py::arg("float64"), "Bytes a forward allocates beyond its inputs and outputs.");
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
      py::arg("x"), "The sum of the squares of x's elements, accumulated in double (C-contiguous).");
  m.def("sigmoid", [](const py::array& x) { return activation_any(x, true); }, py::arg("x"));
  m.def("tanh", [](const py::array& x) { return activation_any(x, false); }, py::arg("x"));
}
