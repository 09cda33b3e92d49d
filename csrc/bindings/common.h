// What the binding files (csrc/bindings/*.cpp, the only files that include
// pybind11) share: the checks of arrays at the boundary, aligned outputs, the
// kernel table of an element type, and each file's registration function.
// Arguments are validated there, before any kernel runs: kernels trust their
// sizes and pointers. Every kernel runs with the GIL released.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "dispatch.h"
#include "threads.h"

namespace py = pybind11;

namespace seqcore {

// Each file registers its part of the module seqcore._core (module.cpp calls them).
void bind_runtime(py::module_& m);   // runtime.cpp: ISA, threads, thread plans
void bind_products(py::module_& m);  // products.cpp: gemm, activations, Adam, norms, softmax cross-entropy
void bind_cells(py::module_& m);     // cells.cpp: the cells' forward and backward
void bind_generate(py::module_& m);  // generate.cpp: the stepper and the draw

// ---------------------------------------------------------------------------
// argument checks

template <typename T>
inline const char* dtype_name() {
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


// precision "bf16": products of float32 arrays with bfloat16 operands.
// float64 has no such precision: refused, never silently ignored.
template <typename T>
void check_bf16(bool bf16) {
  if (bf16 && sizeof(T) != 4) {
    throw py::value_error("precision: 'bf16' needs float32 arrays, got float64 (use precision='fp32')");
  }
}
// ---------------------------------------------------------------------------
// cells

inline Cell parse_cell(const std::string& name) {
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

inline int threads_arg(int num_threads) {
  if (num_threads < 0) throw py::value_error("num_threads: expected 0 (the default) or more");
  return num_threads == 0 ? get_num_threads() : num_threads;
}


inline bool is_float64(const py::array& x) { return x.dtype().kind() == 'f' && x.itemsize() == 8; }

}  // namespace seqcore
