// The Python module seqcore._core. The files of csrc/bindings/ are the only
// ones that include pybind11; each registers its part here.
#include "bindings/common.h"

PYBIND11_MODULE(_core, m) {
  using namespace seqcore;
  m.doc() = "seqcore's native kernels (C++17, SIMD, OpenMP)";
  m.attr("__version__") = SEQCORE_VERSION;
  // Choose the kernels now, so that a bad SEQCORE_ISA fails the import with
  // a clear message rather than the first call.
  active_kernels();

  bind_runtime(m);
  bind_products(m);
  bind_cells(m);
  bind_generate(m);
}
