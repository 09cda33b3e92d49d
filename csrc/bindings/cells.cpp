// seqcore._core's cells: one layer, one direction, forward and backward.
#include "bindings/common.h"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

namespace seqcore {
namespace {

// ---------------------------------------------------------------------------
// cells

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
// precision "int8" (inference, float32; cells/forward_int8.h)

// A cell's weights quantized and packed once, in the layout of the ISA in
// use when it was made (the forward refuses them under another: pack again).
class Int8Weights {
 public:
  Int8Weights(const std::string& cell, const py::array& W_ih, const py::array& W_hh, int num_threads)
      : cell_(parse_cell(cell)), k_(&active_kernels()) {
    check_array<float>(W_ih, "W_ih", 2, false);
    check_array<float>(W_hh, "W_hh", 2, false);
    H_ = W_hh.shape(1);
    D_ = W_ih.shape(1);
    const int64_t GH = gate_count(cell_) * H_;
    if (H_ < 1 || D_ < 1) throw py::value_error("W_ih, W_hh: expected D and H of at least 1");
    const float* w_ih = input<float>(W_ih, "W_ih", {GH, D_});
    const float* w_hh = input<float>(W_hh, "W_hh", {GH, H_});
    buf_ = empty<uint8_t>({k_->int8.weights_size(cell_, D_, H_)});
    uint8_t* buf = buf_.mutable_data();
    const int threads = threads_arg(num_threads);
    py::gil_scoped_release release;
    k_->int8.pack(cell_, D_, H_, w_ih, w_hh, buf, threads);
  }

  Cell cell() const { return cell_; }
  int64_t D() const { return D_; }
  int64_t H() const { return H_; }
  const IsaKernels* kernels() const { return k_; }
  const uint8_t* data() const { return buf_.data(); }
  std::string isa() const { return k_->name; }
  int64_t nbytes() const { return static_cast<int64_t>(buf_.size()); }

 private:
  Cell cell_;
  const IsaKernels* k_;
  int64_t D_ = 0, H_ = 0;
  py::array_t<uint8_t> buf_;
};

// Returns (y, hT, cT); cT is None but for LSTM.
py::tuple cell_forward_int8_py(Cell cell, const py::array& x, const py::array& h0, const py::object& c0,
                               const Int8Weights& w, const py::array& b_ih, const py::object& b_hh,
                               const py::object& lengths, bool reverse, int num_threads, bool relu) {
  check_array<float>(x, "x", 3, false);
  if (w.cell() != cell) throw py::value_error("weights: packed for another cell");
  if (relu && cell != Cell::rnn) throw py::value_error("relu: only an RNN has a nonlinearity to choose");
  if (w.kernels() != &active_kernels()) {
    throw py::value_error(std::string("weights: packed for the ISA '") + w.isa() + "', and '" +
                          active_kernels().name + "' is in use now: pack them again");
  }
  const int64_t T_ = x.shape(0), B = x.shape(1), D = x.shape(2), H = w.H(), GH = gate_count(cell) * H;
  if (T_ < 1 || B < 1) throw py::value_error("native cells need T and B of at least 1");
  if (D != w.D()) {
    throw py::value_error("x: expected D = " + std::to_string(w.D()) + " (the weights'), got " + std::to_string(D));
  }
  CellForwardArgs<float> a;
  a.T_ = T_, a.B = B, a.D = D, a.H = H, a.train = false, a.reverse = reverse, a.relu = relu;
  a.lengths = lengths_arg(lengths, B, T_);
  const std::vector<int64_t> order = row_order(a.lengths, B);
  a.order = order.empty() ? nullptr : order.data();
  a.x = static_cast<const float*>(x.data());
  a.h0 = input<float>(h0, "h0", {B, H});
  a.b_ih = input<float>(b_ih, "b_ih", {GH});
  if (cell == Cell::lstm) a.c0 = input<float>(c0.cast<py::array>(), "c0", {B, H});
  if (cell == Cell::gru) a.b_hh = input<float>(b_hh.cast<py::array>(), "b_hh", {GH});
  auto y = empty<float>({T_, B, H});
  auto hT = empty<float>({B, H});
  py::object cT = py::none();
  a.y = y.mutable_data();
  a.hT = hT.mutable_data();
  if (cell == Cell::lstm) {
    auto c = empty<float>({B, H});
    a.cT = c.mutable_data();
    cT = c;
  }
  a.num_threads = threads_arg(num_threads);
  {
    py::gil_scoped_release release;
    w.kernels()->int8.forward(cell, a, w.data());
  }
  return py::make_tuple(y, hT, cT);
}

// (S (M, N) int32, sa (M,), sw (N,)) of a (M, K) and w (N, K), float32.
py::tuple int8_sums_py(const py::array& a, const py::array& w, int nv, int num_threads) {
  check_array<float>(a, "a", 2, false);
  check_array<float>(w, "w", 2, false);
  const int64_t M = a.shape(0), K = a.shape(1), N = w.shape(0);
  if (w.shape(1) != K) throw py::value_error("w: expected " + std::to_string(K) + " columns (a's)");
  if (M < 1 || N < 1 || K < 1) throw py::value_error("a, w: expected sizes of at least 1");
  if (nv != 1 && nv != 3 && nv != 4) throw py::value_error("nv: expected 1, 3 or 4");
  py::array_t<int32_t> S({M, N});
  py::array_t<float> sa(M), sw(N);
  const float* pa = static_cast<const float*>(a.data());
  const float* pw = static_cast<const float*>(w.data());
  int32_t* ps = S.mutable_data();
  float* psa = sa.mutable_data();
  float* psw = sw.mutable_data();
  const int threads = threads_arg(num_threads);
  {
    py::gil_scoped_release release;
    active_kernels().int8.sums(M, N, K, pa, pw, ps, psa, psw, nv, threads);
  }
  return py::make_tuple(S, sa, sw);
}

}  // namespace

void bind_cells(py::module_& m) {
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
  py::class_<Int8Weights>(m, "Int8Weights")
      .def(py::init<const std::string&, const py::array&, const py::array&, int>(), py::arg("cell"), py::arg("W_ih"),
           py::arg("W_hh"), py::arg("num_threads") = 0)
      .def_property_readonly("isa", &Int8Weights::isa)
      .def_property_readonly("nbytes", &Int8Weights::nbytes);
  m.def(
      "cell_forward_int8",
      [](const std::string& cell, const py::array& x, const py::array& h0, const py::object& c0,
         const Int8Weights& weights, const py::array& b_ih, const py::object& b_hh, const py::object& lengths,
         bool reverse, int num_threads, bool relu) {
        return cell_forward_int8_py(parse_cell(cell), x, h0, c0, weights, b_ih, b_hh, lengths, reverse, num_threads,
                                    relu);
      },
      py::arg("cell"), py::arg("x"), py::arg("h0"), py::arg("c0"), py::arg("weights"), py::arg("b_ih"),
      py::arg("b_hh"), py::arg("lengths") = py::none(), py::arg("reverse") = false, py::arg("num_threads") = 0,
      py::arg("relu") = false,
      "Inference of one layer, one direction, in precision 'int8' (float32) -> (y, hT, cT); relu: an RNN's "
      "nonlinearity.");
  m.def("int8_sums", &int8_sums_py, py::arg("a"), py::arg("w"), py::arg("nv") = 1, py::arg("num_threads") = 0,
        "For tests: the exact int32 sums of a and w quantized per row -> (S, scale_a, scale_w).");
}

}  // namespace seqcore
