// The Python module seqcore._core: the only file that includes pybind11.
// Arguments are validated here, before any kernel runs: kernels trust their
// sizes and pointers. Every kernel runs with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "dispatch.h"
#include "generate/draw.h"
#include "plan.h"
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
  const int threads = get_num_threads();
  const auto& k = table<T>();
  py::gil_scoped_release release;
  return k.sum_of_squares(p, n, threads);
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

// Sizes of a cell call, from x (T, B, D) and W_hh (G·H, H), or with an
// LSTM's projection W_hr (P, H) and W_hh (4H, P); S: the state's width (P,
// or H without a projection). relu: for an RNN only.
struct CellSizes {
  int64_t T, B, D, H, G, P, S;
};

template <typename T>
CellSizes cell_sizes(Cell cell, const py::array& x, const py::array& W_hh, const py::object& W_hr,
                     bool relu) {
  check_array<T>(x, "x", 3, false);
  check_array<T>(W_hh, "W_hh", 2, false);
  CellSizes s{x.shape(0), x.shape(1), x.shape(2), W_hh.shape(1), gate_count(cell), 0, W_hh.shape(1)};
  if (relu && cell != Cell::rnn) throw py::value_error("relu: only an RNN has a nonlinearity to choose");
  if (!W_hr.is_none()) {
    if (cell != Cell::lstm) throw py::value_error("W_hr: only an LSTM has a projection");
    const py::array w = W_hr.cast<py::array>();
    check_array<T>(w, "W_hr", 2, false);
    s.P = w.shape(0), s.H = w.shape(1), s.S = s.P;
    if (s.P < 1 || s.P >= s.H) {
      throw py::value_error("W_hr: expected shape (P, H) with 0 < P < H, got (" + std::to_string(s.P) + ", " +
                            std::to_string(s.H) + ")");
    }
  }
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

// Returns (y, hT, cT, ws_h, ws_gates, ws_c, ws_hn, ws_m); entries a cell
// does not have (or inference does not keep) are None.
template <typename T>
py::tuple cell_forward_py(Cell cell, const py::array& x, const py::array& h0, const py::object& c0,
                          const py::array& W_ih, const py::array& W_hh, const py::array& b_ih,
                          const py::object& b_hh, bool train, const py::object& lengths,
                          bool reverse, int num_threads, bool bf16, const py::object& W_hr, bool relu) {
  const CellSizes s = cell_sizes<T>(cell, x, W_hh, W_hr, relu);
  check_bf16<T>(bf16);
  const int64_t GH = s.G * s.H;
  CellForwardArgs<T> a;
  a.T_ = s.T, a.B = s.B, a.D = s.D, a.H = s.H, a.train = train, a.reverse = reverse;
  a.P = s.P, a.relu = relu;
  a.bf16 = bf16;
  a.lengths = lengths_arg(lengths, s.B, s.T);
  const std::vector<int64_t> order = row_order(a.lengths, s.B);
  a.order = order.empty() ? nullptr : order.data();
  const bool gather = gathers(a.lengths, a.order, reverse, s.B, s.T);
  a.x = static_cast<const T*>(x.data());
  a.h0 = input<T>(h0, "h0", {s.B, s.S});
  a.W_ih = input<T>(W_ih, "W_ih", {GH, s.D});
  a.W_hh = input<T>(W_hh, "W_hh", {GH, s.S});
  a.W_hr = optional_input<T>(W_hr, "W_hr", {s.P, s.H});
  a.b_ih = input<T>(b_ih, "b_ih", {GH});
  if (cell == Cell::lstm) a.c0 = input<T>(c0.cast<py::array>(), "c0", {s.B, s.H});
  if (cell == Cell::gru) a.b_hh = input<T>(b_hh.cast<py::array>(), "b_hh", {GH});

  auto y = empty<T>({s.T, s.B, s.S});
  auto hT = empty<T>({s.B, s.S});
  py::object cT = py::none(), ws_h = py::none(), ws_gates = py::none(), ws_c = py::none(),
             ws_hn = py::none(), ws_m = py::none();
  a.y = y.mutable_data();
  a.hT = hT.mutable_data();
  if (cell == Cell::lstm) {
    auto c = empty<T>({s.B, s.H});
    a.cT = c.mutable_data();
    cT = c;
  }
  if (train) {
    auto h = empty<T>({s.T + 1, s.B, s.S});
    a.ws_h = h.mutable_data();
    ws_h = h;
  }
  if (train && s.P > 0) {
    auto m = empty<T>({s.T, s.B, s.H});
    a.ws_m = m.mutable_data();
    ws_m = m;
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
  auto scratch = empty<T>({k.forward_scratch(cell, s.T, s.B, s.D, s.H, s.P, train, gather)});
  a.scratch = scratch.mutable_data();
  {
    py::gil_scoped_release release;
    k.forward(cell, a);
  }
  return py::make_tuple(y, hT, cT, ws_h, ws_gates, ws_c, ws_hn, ws_m);
}

// Returns (dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh); dc0 is None but for
// LSTM, db_hh None but for GRU.
template <typename T>
py::tuple cell_backward_py(Cell cell, const py::array& x, const py::array& W_ih, const py::array& W_hh, const py::array& ws_h,
                           const py::object& ws_gates, const py::object& ws_c,
                           const py::object& ws_hn, const py::object& dy, const py::object& dhT,
                           const py::object& dcT, const py::object& lengths, bool reverse,
                           int num_threads, bool bf16, const py::object& ws_m, const py::object& W_hr,
                           bool relu) {
  const CellSizes s = cell_sizes<T>(cell, x, W_hh, W_hr, relu);
  check_bf16<T>(bf16);
  const int64_t GH = s.G * s.H;
  CellBackwardArgs<T> a;
  a.T_ = s.T, a.B = s.B, a.D = s.D, a.H = s.H, a.reverse = reverse;
  a.P = s.P, a.relu = relu;
  a.bf16 = bf16;
  a.lengths = lengths_arg(lengths, s.B, s.T);
  const std::vector<int64_t> order = row_order(a.lengths, s.B);
  a.order = order.empty() ? nullptr : order.data();
  const bool gather = gathers(a.lengths, a.order, reverse, s.B, s.T);
  a.x = static_cast<const T*>(x.data());
  a.W_ih = input<T>(W_ih, "W_ih", {GH, s.D});
  a.W_hh = input<T>(W_hh, "W_hh", {GH, s.S});
  a.ws_h = input<T>(ws_h, "ws_h", {s.T + 1, s.B, s.S});
  a.dy = optional_input<T>(dy, "dy", {s.T, s.B, s.S});
  a.dhT = optional_input<T>(dhT, "dhT", {s.B, s.S});
  if (s.P > 0) {
    a.W_hr = input<T>(W_hr.cast<py::array>(), "W_hr", {s.P, s.H});
    a.ws_m = input<T>(ws_m.cast<py::array>(), "ws_m", {s.T, s.B, s.H});
  }
  if (cell != Cell::rnn) {
    a.ws_gates = input<T>(ws_gates.cast<py::array>(), "ws_gates", {s.T, s.B, GH});
  }
  if (cell == Cell::lstm) {
    a.ws_c = input<T>(ws_c.cast<py::array>(), "ws_c", {s.T + 1, s.B, s.H});
    a.dcT = optional_input<T>(dcT, "dcT", {s.B, s.H});
  }
  if (cell == Cell::gru) a.ws_hn = input<T>(ws_hn.cast<py::array>(), "ws_hn", {s.T, s.B, s.H});

  auto dx = empty<T>({s.T, s.B, s.D});
  auto dh0 = empty<T>({s.B, s.S});
  auto dW_ih = empty<T>({GH, s.D});
  auto dW_hh = empty<T>({GH, s.S});
  auto db_ih = empty<T>({GH});
  py::object dc0 = py::none(), db_hh = py::none(), dW_hr = py::none();
  if (s.P > 0) {
    auto d = empty<T>({s.P, s.H});
    a.dW_hr = d.mutable_data();
    dW_hr = d;
  }
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
  auto scratch = empty<T>({k.backward_scratch(cell, s.T, s.B, s.D, s.H, s.P, gather)});
  a.scratch = scratch.mutable_data();
  {
    py::gil_scoped_release release;
    k.backward(cell, a);
  }
  return py::make_tuple(dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh, dW_hr);
}

bool is_float64(const py::array& x) { return x.dtype().kind() == 'f' && x.itemsize() == 8; }

// Bytes a forward allocates beyond its inputs and outputs: scratch, and for
// training the arrays kept for backward.
int64_t forward_workspace_bytes(const std::string& cell_name, int64_t T, int64_t B, int64_t D,
                                int64_t H, bool train, bool gather, bool float64, int64_t P) {
  const Cell cell = parse_cell(cell_name);
  const int64_t G = gate_count(cell);
  if (P < 0 || (P > 0 && (cell != Cell::lstm || P >= H))) {
    throw py::value_error("P: expected 0, or for an LSTM 0 < P < H");
  }
  int64_t n = float64 ? table<double>().forward_scratch(cell, T, B, D, H, P, train, gather)
                      : table<float>().forward_scratch(cell, T, B, D, H, P, train, gather);
  if (train) {
    n += (T + 1) * B * (P > 0 ? P : H);             // ws_h
    if (P > 0) n += T * B * H;                      // ws_m
    if (cell != Cell::rnn) n += T * B * G * H;      // ws_gates
    if (cell == Cell::lstm) n += (T + 1) * B * H;   // ws_c
    if (cell == Cell::gru) n += T * B * H;          // ws_hn
  }
  return n * (float64 ? 8 : 4);
}


// ---------------------------------------------------------------------------
// generation: a language model prepared for stepping (generate/stepper.h)
// and the draw of the next token (generate/draw.h)

// A stepper of element type T: its buffer (weights copied and packed, then
// the state), the logits of the last step, and the draw's workspace. The
// kernel table is the one in use when it was made: the buffer's layout is
// that ISA's, whatever set_isa does later.
template <typename T>
class Stepper {
 public:
  Stepper(const std::string& cell, int64_t B, const py::object& embedding, const py::list& W_ih,
          const py::list& W_hh, const py::list& b_ih, const py::object& b_hh, const py::array& head_W,
          const py::object& head_b, bool table, bool bf16)
      : k_(&seqcore::table<T>()) {
    if (bf16 && sizeof(T) != 4) throw py::value_error("precision: 'bf16' needs float32 weights");
    s_.cell = parse_cell(cell);
    s_.L = static_cast<int64_t>(W_hh.size());
    if (s_.L < 1) throw py::value_error("W_hh: expected one array per layer, got none");
    if (B < 1) throw py::value_error("batch_size: expected an int >= 1, got " + std::to_string(B));
    check_array<T>(head_W, "head_W", 2, false);
    check_array<T>(W_hh[0].cast<py::array>(), "W_hh[0]", 2, false);
    check_array<T>(W_ih[0].cast<py::array>(), "W_ih[0]", 2, false);
    s_.B = B;
    s_.V = head_W.shape(0);
    s_.H = head_W.shape(1);
    s_.embedding = !embedding.is_none();
    s_.D = s_.embedding ? embedding.cast<py::array>().shape(1) : s_.V;
    s_.table = table;
    s_.head_bias = !head_b.is_none();
    s_.bf16 = bf16;
    if (s_.V < 1 || s_.H < 1 || s_.D < 1) throw py::value_error("stepper: V, H and D must be at least 1");
    buf_ = empty<T>({k_->stepper_size(s_)});
    logits_ = empty<T>({s_.B, s_.V});
    work_.resize(static_cast<size_t>(2 * s_.V));
    order_.resize(static_cast<size_t>(s_.V));
    refresh(embedding, W_ih, W_hh, b_ih, b_hh, head_W, head_b);
  }

  // Copies and packs the weights again (the same sizes); zeroes the state.
  void refresh(const py::object& embedding, const py::list& W_ih, const py::list& W_hh, const py::list& b_ih,
               const py::object& b_hh, const py::array& head_W, const py::object& head_b) {
    const int64_t GH = gate_count(s_.cell) * s_.H, L = s_.L;
    if (static_cast<int64_t>(W_ih.size()) != L || static_cast<int64_t>(W_hh.size()) != L ||
        static_cast<int64_t>(b_ih.size()) != L) {
      throw py::value_error("W_ih, W_hh, b_ih: expected one array per layer (" + std::to_string(L) + ")");
    }
    if (embedding.is_none() == s_.embedding || head_b.is_none() == s_.head_bias) {
      throw py::value_error("embedding, head_b: expected what the stepper was made with");
    }
    std::vector<const T*> w_ih, w_hh, bi, bh;
    StepperWeights<T> w;
    if (s_.embedding) w.embedding = input<T>(embedding.cast<py::array>(), "embedding", {s_.V, s_.D});
    const py::list bhh = s_.cell == Cell::gru ? b_hh.cast<py::list>() : py::list();
    for (int64_t l = 0; l < L; ++l) {
      const size_t i = static_cast<size_t>(l);
      w_ih.push_back(input<T>(W_ih[i].cast<py::array>(), "W_ih", {GH, l == 0 ? s_.D : s_.H}));
      w_hh.push_back(input<T>(W_hh[i].cast<py::array>(), "W_hh", {GH, s_.H}));
      bi.push_back(input<T>(b_ih[i].cast<py::array>(), "b_ih", {GH}));
      if (s_.cell == Cell::gru) bh.push_back(input<T>(bhh[i].cast<py::array>(), "b_hh", {GH}));
    }
    w.W_ih = w_ih.data();
    w.W_hh = w_hh.data();
    w.b_ih = bi.data();
    w.b_hh = bh.empty() ? nullptr : bh.data();
    w.head_W = input<T>(head_W, "head_W", {s_.V, s_.H});
    if (s_.head_bias) w.head_b = input<T>(head_b.cast<py::array>(), "head_b", {s_.V});
    T* buf = buf_.mutable_data();
    std::lock_guard<std::mutex> lock(mutex_);
    py::gil_scoped_release release;
    k_->stepper_pack(s_, w, buf);
  }

  // One token for rows [0, n): ids (n,) int64 -> logits[:n] (the array
  // `logits()` returns, overwritten by every step).
  void step(const py::array& ids, int num_threads) {
    const int64_t n = ids_arg(ids, "ids");
    const int threads = threads_arg(num_threads);
    const int64_t* p = static_cast<const int64_t*>(ids.data());
    T* buf = buf_.mutable_data();
    T* logits = logits_.mutable_data();
    std::lock_guard<std::mutex> lock(mutex_);
    py::gil_scoped_release release;
    k_->stepper_step(s_, buf, p, n, logits, threads, next_order());
  }

  // step(ids), then out[r] = the token drawn for row r with the uniform u[r]
  // (generate/draw.h); returns false if a row's logits were not finite.
  bool step_draw(const py::array& ids, const py::array& u, py::array& out, double temperature, int64_t top_k,
                 double top_p, int64_t pad_id, int num_threads) {
    const int64_t n = ids_arg(ids, "ids");
    const int threads = threads_arg(num_threads);
    check_array<double>(u, "u", 1, false);
    if (out.dtype().kind() != 'i' || out.itemsize() != 8 || out.ndim() != 1 || !(out.flags() & py::array::c_style) ||
        !out.writeable() || u.shape(0) != n || out.shape(0) != n) {
      throw py::value_error("u, out: expected a float64 and a writeable int64 array of shape (" +
                            std::to_string(n) + ",)");
    }
    if (!(temperature > 0) || top_k < 0 || !(top_p > 0 && top_p <= 1) || pad_id < -1 || pad_id >= s_.V) {
      throw py::value_error("draw: temperature > 0, top_k >= 0, top_p in (0, 1], pad_id in [-1, V)");
    }
    const DrawOptions o{temperature, top_k, top_p, pad_id};
    const int64_t* p = static_cast<const int64_t*>(ids.data());
    const double* pu = static_cast<const double*>(u.data());
    int64_t* po = static_cast<int64_t*>(out.mutable_data());
    T* buf = buf_.mutable_data();
    T* logits = logits_.mutable_data();
    std::lock_guard<std::mutex> lock(mutex_);
    py::gil_scoped_release release;
    k_->stepper_step(s_, buf, p, n, logits, threads, next_order());
    draw_tokens(logits, n, s_.V, pu, o, work_.data(), order_.data(), po);
    for (int64_t r = 0; r < n; ++r) {
      if (po[r] < 0) return false;
    }
    return true;
  }

  // Views into the buffer: the state h (which = 0) or c (1, LSTM) (L, B, H),
  // and the logits (B, V); writing into the state sets it.
  py::array state(int which) {
    if (which != 0 && !(which == 1 && s_.cell == Cell::lstm)) throw py::value_error("state: no such part");
    T* p = buf_.mutable_data() + k_->stepper_state(s_, which);
    const py::ssize_t e = sizeof(T);
    return py::array_t<T>({s_.L, s_.B, s_.H}, {s_.B * s_.H * e, s_.H * e, e}, p, buf_);
  }
  py::array logits() const { return logits_; }
  int64_t nbytes() const { return static_cast<int64_t>(buf_.size()) * static_cast<int64_t>(sizeof(T)); }

 private:
  // ids (n,) int64, C-contiguous, n <= B, values in [0, V); returns n.
  int64_t ids_arg(const py::array& ids, const char* name) const {
    if (ids.dtype().kind() != 'i' || ids.itemsize() != 8 || ids.ndim() != 1 || !(ids.flags() & py::array::c_style)) {
      throw py::value_error(std::string(name) + ": expected a C-contiguous int64 array of shape (n,)");
    }
    const int64_t n = ids.shape(0);
    if (n > s_.B) {
      throw py::value_error(std::string(name) + ": expected at most batch_size = " + std::to_string(s_.B) +
                            " ids, got " + std::to_string(n));
    }
    const int64_t* p = static_cast<const int64_t*>(ids.data());
    for (int64_t r = 0; r < n; ++r) {
      if (p[r] < 0 || p[r] >= s_.V) {
        throw py::value_error(std::string(name) + ": expected values in [0, " + std::to_string(s_.V) + "), got " +
                              std::to_string(p[r]));
      }
    }
    return n;
  }

  // Every other step runs the top layer's product first (see stepper_step).
  bool next_order() { return (steps_++ & 1) != 0; }

  const KernelTable<T>* k_;
  StepperSizes s_;
  uint64_t steps_ = 0;
  py::array_t<T> buf_, logits_;
  std::vector<double> work_;
  std::vector<int64_t> order_;
  std::mutex mutex_;
};

// out[r] = the token drawn from row r of logits (n, V) with u[r] (generate/
// draw.h); returns false if a row's logits were not finite.
template <typename T>
bool draw_py(const py::array& logits, const py::array& u, py::array& out, double temperature, int64_t top_k,
             double top_p, int64_t pad_id) {
  check_array<T>(logits, "logits", 2, false);
  check_array<double>(u, "u", 1, false);
  const int64_t n = logits.shape(0), V = logits.shape(1);
  if (out.dtype().kind() != 'i' || out.itemsize() != 8 || out.ndim() != 1 || !(out.flags() & py::array::c_style) ||
      !out.writeable() || u.shape(0) != n || out.shape(0) != n || V < 1) {
    throw py::value_error("u, out: expected a float64 and a writeable int64 array of shape (" + std::to_string(n) +
                          ",) for logits (n, V >= 1)");
  }
  if (!(temperature > 0) || top_k < 0 || !(top_p > 0 && top_p <= 1) || pad_id < -1 || pad_id >= V) {
    throw py::value_error("draw: temperature > 0, top_k >= 0, top_p in (0, 1], pad_id in [-1, V)");
  }
  std::vector<double> work(static_cast<size_t>(2 * V));
  std::vector<int64_t> order(static_cast<size_t>(V));
  const T* pl = static_cast<const T*>(logits.data());
  const double* pu = static_cast<const double*>(u.data());
  int64_t* po = static_cast<int64_t*>(out.mutable_data());
  const DrawOptions o{temperature, top_k, top_p, pad_id};
  {
    py::gil_scoped_release release;
    draw_tokens(pl, n, V, pu, o, work.data(), order.data(), po);
  }
  for (int64_t r = 0; r < n; ++r) {
    if (po[r] < 0) return false;
  }
  return true;
}

template <typename T>
void bind_stepper(py::module_& m, const char* name) {
  py::class_<Stepper<T>>(m, name)
      .def(py::init<const std::string&, int64_t, const py::object&, const py::list&, const py::list&,
                    const py::list&, const py::object&, const py::array&, const py::object&, bool, bool>(),
           py::arg("cell"), py::arg("batch_size"), py::arg("embedding"), py::arg("W_ih"), py::arg("W_hh"),
           py::arg("b_ih"), py::arg("b_hh"), py::arg("head_W"), py::arg("head_b"), py::arg("table"),
           py::arg("bf16") = false)
      .def("refresh", &Stepper<T>::refresh, py::arg("embedding"), py::arg("W_ih"), py::arg("W_hh"),
           py::arg("b_ih"), py::arg("b_hh"), py::arg("head_W"), py::arg("head_b"))
      .def("step", &Stepper<T>::step, py::arg("ids"), py::arg("num_threads") = 0)
      .def("step_draw", &Stepper<T>::step_draw, py::arg("ids"), py::arg("u"), py::arg("out"),
           py::arg("temperature"), py::arg("top_k"), py::arg("top_p"), py::arg("pad_id"),
           py::arg("num_threads") = 0)
      .def("state", &Stepper<T>::state, py::arg("which"))
      .def("logits", &Stepper<T>::logits)
      .def_property_readonly("nbytes", &Stepper<T>::nbytes);
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
  m.def(
      "plan_threads",
      [](const std::string& cell, int64_t T, int64_t B, int64_t H, bool train, int num_threads) {
        if (T < 1 || B < 1 || H < 1) throw py::value_error("T, B, H: expected sizes of at least 1");
        return plan_cell_threads(parse_cell(cell), T, B, H, train, threads_arg(num_threads));
      },
      py::arg("cell"), py::arg("T"), py::arg("B"), py::arg("H"), py::arg("train"),
      py::arg("num_threads") = 0,
      "Workers the time loop of a call is worth (csrc/plan.h), before the cap of one per unit "
      "of hidden units; num_threads 0 means get_num_threads().");
  m.def(
      "plan_product_threads",
      [](int64_t M, int64_t N, int64_t K, int num_threads) {
        if (M < 1 || N < 1 || K < 1) throw py::value_error("M, N, K: expected sizes of at least 1");
        return plan_product_threads(M, N, K, threads_arg(num_threads));
      },
      py::arg("M"), py::arg("N"), py::arg("K"), py::arg("num_threads") = 0,
      "Threads for a product (M,K)·(K,N): 1 or num_threads (csrc/plan.h).");
  m.def(
      "plan_stream_threads",
      [](double bytes, int num_threads) {
        if (!(bytes >= 0)) throw py::value_error("bytes: expected a number >= 0");
        return plan_stream_threads(bytes, threads_arg(num_threads));
      },
      py::arg("bytes"), py::arg("num_threads") = 0,
      "Threads for a memory-bound pass over bytes bytes: 1 or num_threads (csrc/plan.h).");
  m.def("set_thread_planning", &set_thread_planning, py::arg("on"),
        "Planning on (default) or off: off, every offered thread works (tests of the schedules).");
  m.def("thread_planning", &thread_planning, "Whether threads are planned.");
  m.def("report_step_waits", &report_step_waits, py::arg("waited_ns"), py::arg("long_waits"), py::arg("steps"),
        py::arg("n"),
        "Tells the plan what a loop's meetings cost: worker 0's waits over steps of n workers, long_waits of "
        "them past the spin (csrc/plan.h).");
  m.def("sync_excess_ns", &sync_excess_ns,
        "ns per step the workers' meetings cost beyond the plan's model (a moving average).");
  m.def("reset_sync_excess", &reset_sync_excess, "Forgets the measured excess and lateness.");
  m.def("report_region_lateness", &report_region_lateness, py::arg("late_ns"), py::arg("n"),
        "Tells the plan how late a pass's region found its last of n threads (csrc/plan.h).");
  m.def("region_lateness_ns", &region_lateness_ns, "The passes' measured lateness beyond the model, ns.");
  m.def(
      "plan_costs",
      [] {
        const PlanCosts& c = plan_costs();
        py::dict d;
        d["rate"] = c.rate;
        d["epilogue"] = c.epilogue;
        d["sync_base"] = c.sync_base;
        d["sync_per_thread"] = c.sync_per_thread;
        d["region_base"] = c.region_base;
        d["region_per_thread"] = c.region_per_thread;
        d["product_rate"] = c.product_rate;
        d["stream_rate"] = c.stream_rate;
        return d;
      },
      "The thread plan's cost model constants (csrc/plan.h).");

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
         int num_threads, bool bf16, const py::object& W_hr, bool relu) {
        const Cell c = parse_cell(cell);
        return is_float64(x) ? cell_forward_py<double>(c, x, h0, c0, W_ih, W_hh, b_ih, b_hh, train,
                                                       lengths, reverse, num_threads, bf16, W_hr, relu)
                             : cell_forward_py<float>(c, x, h0, c0, W_ih, W_hh, b_ih, b_hh, train,
                                                      lengths, reverse, num_threads, bf16, W_hr, relu);
      },
      py::arg("cell"), py::arg("x"), py::arg("h0"), py::arg("c0"), py::arg("W_ih"),
      py::arg("W_hh"), py::arg("b_ih"), py::arg("b_hh"), py::arg("train"),
      py::arg("lengths") = py::none(), py::arg("reverse") = false, py::arg("num_threads") = 0,
      py::arg("bf16") = false, py::arg("W_hr") = py::none(), py::arg("relu") = false,
      "One layer, one direction, over a padded batch -> (y, hT, cT, ws_h, ws_gates, ws_c, ws_hn, ws_m); "
      "bf16: every product with bfloat16 operands (float32 only); W_hr (P, H): an LSTM's projection; "
      "relu: an RNN's nonlinearity in place of tanh.");
  m.def(
      "cell_backward",
      [](const std::string& cell, const py::array& x, const py::array& W_ih,
         const py::array& W_hh, const py::array& ws_h,
         const py::object& ws_gates, const py::object& ws_c, const py::object& ws_hn,
         const py::object& dy, const py::object& dhT, const py::object& dcT,
         const py::object& lengths, bool reverse, int num_threads, bool bf16, const py::object& ws_m,
         const py::object& W_hr, bool relu) {
        const Cell c = parse_cell(cell);
        return is_float64(x) ? cell_backward_py<double>(c, x, W_ih, W_hh, ws_h, ws_gates, ws_c,
                                                        ws_hn, dy, dhT, dcT, lengths, reverse,
                                                        num_threads, bf16, ws_m, W_hr, relu)
                             : cell_backward_py<float>(c, x, W_ih, W_hh, ws_h, ws_gates, ws_c,
                                                       ws_hn, dy, dhT, dcT, lengths, reverse,
                                                       num_threads, bf16, ws_m, W_hr, relu);
      },
      py::arg("cell"), py::arg("x"), py::arg("W_ih"), py::arg("W_hh"), py::arg("ws_h"), py::arg("ws_gates"), py::arg("ws_c"), py::arg("ws_hn"), py::arg("dy"),
      py::arg("dhT"), py::arg("dcT"), py::arg("lengths") = py::none(),
      py::arg("reverse") = false, py::arg("num_threads") = 0, py::arg("bf16") = false,
      py::arg("ws_m") = py::none(), py::arg("W_hr") = py::none(), py::arg("relu") = false,
      "BPTT of cell_forward -> (dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh, dW_hr).");
  m.def("forward_workspace_bytes", &forward_workspace_bytes, py::arg("cell"), py::arg("T"),
        py::arg("B"), py::arg("D"), py::arg("H"), py::arg("train"), py::arg("gather"),
        py::arg("float64"), py::arg("P") = 0,
        "Bytes a forward allocates beyond its inputs and outputs (P: an LSTM's projection size).");
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
  // generation: prepared language models, float32 and float64
  bind_stepper<float>(m, "StepperF32");
  bind_stepper<double>(m, "StepperF64");
  m.def(
      "draw",
      [](const py::array& logits, const py::array& u, py::array& out, double temperature, int64_t top_k,
         double top_p, int64_t pad_id) {
        return is_float64(logits) ? draw_py<double>(logits, u, out, temperature, top_k, top_p, pad_id)
                                  : draw_py<float>(logits, u, out, temperature, top_k, top_p, pad_id);
      },
      py::arg("logits"), py::arg("u"), py::arg("out"), py::arg("temperature"), py::arg("top_k"), py::arg("top_p"),
      py::arg("pad_id"), "out[r] = the token drawn from logits[r] with the uniform number u[r]; false if not finite.");
  m.def("sigmoid", [](const py::array& x) { return activation_any(x, true); }, py::arg("x"));
  m.def("tanh", [](const py::array& x) { return activation_any(x, false); }, py::arg("x"));
}
