// seqcore._core's generation: the stepper (generate/stepper.h) and the draw of the next token.
#include "bindings/common.h"

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "generate/draw.h"

namespace seqcore {
namespace {

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
          const py::object& head_b, bool table, bool bf16, bool int8)
      : k_(&seqcore::table<T>()) {
    if (bf16 && sizeof(T) != 4) throw py::value_error("precision: 'bf16' needs float32 weights");
    if (int8 && sizeof(T) != 4) throw py::value_error("precision: 'int8' needs float32 weights");
    if (int8 && bf16) throw py::value_error("precision: one of bf16 and int8");
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
    s_.int8 = int8;
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
                    const py::list&, const py::object&, const py::array&, const py::object&, bool, bool, bool>(),
           py::arg("cell"), py::arg("batch_size"), py::arg("embedding"), py::arg("W_ih"), py::arg("W_hh"),
           py::arg("b_ih"), py::arg("b_hh"), py::arg("head_W"), py::arg("head_b"), py::arg("table"),
           py::arg("bf16") = false, py::arg("int8") = false)
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

void bind_generate(py::module_& m) {
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
}

}  // namespace seqcore
