// How many threads a call's work is worth: the thread plan. Baseline code
// (no ISA flags); the kernels call it, csrc/bindings/ exposes it for tests.
//
// A time loop runs T steps, each a product of B rows with the recurrent
// weights followed by the gates' elementwise work, split by hidden units
// among `n` workers that synchronise once per step. Per step, in ns:
//
//   t(1) = W / r
//   t(n) = W / (n·r) + S(n) + R / steps      (n ≥ 2)
//   W    = B·GH·(H + epilogue)               multiply-adds, GH = G·H gate columns
//   S(n) = sync_base + sync_per_thread·n + excess
//                                            one step's synchronisation of n workers
//                                            (excess: measured, see report_step_waits)
//   R    = region_base + region_per_thread·offered
//                                            waking and joining the team, once a region
// (r = rate; the names are PlanCosts' fields)
//
// and the plan is the n in [1, offered] with the least t(n), the fewest on
// a tie. W/(n·r) falls with n by less and less while S(n) grows linearly,
// so the best n grows with W (B, H, the gates) and with the steps a region
// spans: the plan is monotone in every size and bounded by the offer. R is
// that of the whole offered team (cells/team.h says why the team is all of
// them), paid only when n ≥ 2; with more threads offered, a call takes more
// of them only where the model says they pay, so a small call stays on the
// few threads its steps are worth however many the machine has.
//
// The numbers (PlanCosts) come from measurements of 2026-12-04 on a shared
// 2-core VM (1 against 2 threads, bench/cells.py) and a 16-core Xeon
// (1 to 16 threads, ../shared/measurements/16-core-2026-12-04): one thread
// does 20-50 multiply-adds/ns in the panel product (20 on the small tiles
// of B ≤ 8, where planning matters); a step on 2 threads costs ≈ 1 µs more
// than half a step on one on either machine (S(2)); on 16 cores the small
// shapes ran fastest at 4-8 threads. Products (plan_product_threads) run
// at ~50 multiply-adds/ns a thread.
#pragma once
#include <cstdint>

#include "kernels.h"

namespace seqcore {

struct PlanCosts {
  double rate = 20.0;               // r: multiply-adds per ns, one thread, panel product
  double epilogue = 20.0;           // the gates' work per gate column, in multiply-adds
  double sync_base = 800.0;         // ns
  double sync_per_thread = 100.0;   // ns
  double region_base = 2000.0;      // ns
  double region_per_thread = 200.0; // ns, per thread of the team
  double product_rate = 50.0;       // multiply-adds per ns, one thread, blocked product
  double stream_rate = 20.0;        // bytes per ns, one thread, a memory-bound pass
};

// The model's constants.
const PlanCosts& plan_costs();

// What the meetings of a loop's workers really cost: worker 0's waits
// past a short spin, waited_ns over `steps` steps of n workers, long_waits
// of them kSpinNs or longer. Where most steps waited long (another
// library's threads or another process holding, call after call, cores
// the workers need), the excess of the mean wait over S(n), a moving
// average, is added to S(n) for the next plans, which then take fewer
// workers (one, for small calls). A few long waits (a worker preempted
// now and then on a busy machine, which one worker would suffer as well)
// count for nothing. Each plan lets 10% of the excess go, so after some
// tens of calls the plan tries more workers again, and measures again.
void report_step_waits(int64_t waited_ns, int64_t long_waits, int64_t steps, int n);

// The excess of the measured synchronisation over the model, in ns per
// step (0 until a loop waits long).
double sync_excess_ns();
void reset_sync_excess();

// Workers for a time loop of `steps` steps per parallel region, each
// step_work = B·GH·(H + epilogue) multiply-adds, when `offered` threads
// are allowed: in [1, offered]. With planning off (tests), `offered`.
int plan_loop_threads(double step_work, int64_t steps, int offered);

// Multiply-adds of a step of a time loop (see above).
double loop_step_work(int64_t B, int64_t GH, int64_t H);

// Whether a product of M·N·K multiply-adds is worth a team of `offered`
// threads: when one thread would take more than twice what starting and
// joining the team costs. Returns 1 or offered. (The measured excess does
// not count here: the product's work items go first come first served, so
// a thread held up elsewhere takes fewer of them.)
int plan_product_threads(int64_t M, int64_t N, int64_t K, int offered);

// Threads a memory-bound pass over `bytes` bytes of memory (Adam, the sum
// of squares, the softmax cross-entropy; elementwise or by rows) is worth:
// 1, or all of offered when sharing it saves more than twice what the team
// costs (a margin, as for products: lateness varies from region to region):
//   (1 − 1/offered) · bytes / stream_rate  >  2 · (R + S(offered) + late)
// late: how late a region's last thread arrives, as the passes measure it
// (report_region_lateness), or the loops' excess (report_step_waits) if
// larger. Where other work holds the cores, or the pool's threads have
// gone to sleep, a team's threads come late (100-300 µs on a loaded 2-core
// VM, where 11 Adam updates took 1.1 ms on 2 threads, 0.63 on one) and the
// pass waits for the last of them whatever share it takes. Each plan lets
// 2% of `late` go, so a pass tries a team again after some tens of plans
// (a training step makes about 25: Adam and Σx² per parameter, the loss),
// and measures again. The passes' results do not depend on the threads.
int plan_stream_threads(double bytes, int offered);

// A pass's region: its last thread arrived late_ns after the region began
// (the first thread's arrival). A moving average, less the model's R.
void report_region_lateness(int64_t late_ns, int n);
double region_lateness_ns();

// Steps whose input projection inference computes at once: enough rows for
// an efficient product, and a bound independent of T, so inference needs
// O(B·H) memory whatever the sequence length. Inference runs a parallel
// region per chunk.
int64_t inference_chunk_steps(int64_t T, int64_t B);

// The workers a cell's time loop is worth (forward or backward: the same
// work per step), before the cap of one per unit of hidden units.
int plan_cell_threads(Cell cell, int64_t T, int64_t B, int64_t H, bool train, int offered);

// Planning on (the default) or off: every offered thread works, capped only
// by the work items there are (for tests of the schedules at any count).
void set_thread_planning(bool on);
bool thread_planning();

}  // namespace seqcore
