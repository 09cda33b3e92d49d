// seqcore._core's runtime: the instruction set, the threads and the thread plans.
#include "bindings/common.h"

#include <cstdint>
#include <string>

#include "plan.h"

namespace seqcore {

void bind_runtime(py::module_& m) {
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

}

}  // namespace seqcore
