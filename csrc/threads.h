// The number of threads the kernels use: OMP_NUM_THREADS at start-up, else
// the cores OpenMP sees; set_num_threads changes it for later calls. And
// the per-step synchronisation of a time loop's workers.
#pragma once
#include <cstdint>

namespace seqcore {

bool openmp_enabled();
int get_num_threads();
void set_num_threads(int n);  // throws std::invalid_argument if n < 1

// The workers of a time loop meet once per step on a counter of their
// own: each adds 1 when its share of step i is written, then waits until
// the counter reaches workers·(i + 1). One atomic add and a read per step,
// among the workers only (not the whole OpenMP team, whose threads past
// the plan have left). A waiter spins for kSpinNs, then sleeps until the
// counter moves (a futex on Linux, else it yields the core at each look):
// where another process or another library's thread pool holds the core a
// late worker needs, the waiters give theirs up rather than spin through
// the scheduler's time slices (yielding was no better on a busy 2-core
// machine: a yielded core goes to the other runnable threads for a slice).
//
// Worker 0 also sums the time it waited past a first short spin (a step's
// ordinary meeting takes less), for the thread plan to learn what a step's
// synchronisation really costs (plan.h, report_step_waits).
struct alignas(64) StepCounter {
  int64_t value = 0;
  int32_t sleepers = 0;  // waiters asleep on value (futex), or about to be
  char pad[64 - sizeof(int64_t) - sizeof(int32_t)] = {};
  int64_t waited_ns = 0;   // worker 0's, past the first spin
  int64_t long_waits = 0;  // worker 0's waits of kSpinNs or more
  int workers = 0;         // who met: set by worker 0
};

constexpr int64_t kSpinNs = 50000;

// A monotonic clock in ns (steady_clock), for code that must not include
// <chrono> itself (the ISA translation units).
int64_t clock_ns();

void step_arrive(StepCounter* counter);  // release
// Acquire: returns once value >= target, with the ns waited past the first
// spin (0 when the counter got there within it).
int64_t step_wait(const StepCounter* counter, int64_t target);

}  // namespace seqcore
