#include "plan.h"

#include <atomic>

namespace seqcore {

namespace {

const PlanCosts kCosts{};
std::atomic<bool> g_planning{true};
// ns per step the meetings cost beyond the model (relaxed: calls on
// several threads at once may lose an update, and that is all).
std::atomic<double> g_excess{0.0};
// ns by which the memory-bound passes' regions find their last thread late
// beyond the model (relaxed, as g_excess).
std::atomic<double> g_late{0.0};

}  // namespace

const PlanCosts& plan_costs() { return kCosts; }

void set_thread_planning(bool on) { g_planning.store(on, std::memory_order_relaxed); }
bool thread_planning() { return g_planning.load(std::memory_order_relaxed); }

double loop_step_work(int64_t B, int64_t GH, int64_t H) {
  return static_cast<double>(B) * static_cast<double>(GH) * (static_cast<double>(H) + kCosts.epilogue);
}

void report_step_waits(int64_t waited_ns, int64_t long_waits, int64_t steps, int n) {
  if (steps < 1 || n < 2) return;
  const PlanCosts& c = kCosts;
  const double model = c.sync_base + c.sync_per_thread * n;
  const double sample =
      2 * long_waits >= steps ? static_cast<double>(waited_ns) / static_cast<double>(steps) - model : 0.0;
  const double before = g_excess.load(std::memory_order_relaxed);
  g_excess.store(0.5 * before + 0.5 * (sample > 0 ? sample : 0.0), std::memory_order_relaxed);
}

double sync_excess_ns() { return g_excess.load(std::memory_order_relaxed); }
void reset_sync_excess() {
  g_excess.store(0.0, std::memory_order_relaxed);
  g_late.store(0.0, std::memory_order_relaxed);
}

void report_region_lateness(int64_t late_ns, int n) {
  if (n < 2) return;
  const PlanCosts& c = kCosts;
  const double sample = static_cast<double>(late_ns) - (c.region_base + c.region_per_thread * n);
  const double before = g_late.load(std::memory_order_relaxed);
  g_late.store(0.5 * before + 0.5 * (sample > 0 ? sample : 0.0), std::memory_order_relaxed);
}

double region_lateness_ns() { return g_late.load(std::memory_order_relaxed); }

int plan_loop_threads(double step_work, int64_t steps, int offered) {
  if (offered <= 1) return 1;
  if (!thread_planning()) return offered;
  const PlanCosts& c = kCosts;
  const double excess = g_excess.load(std::memory_order_relaxed);
  if (excess > 0) g_excess.store(0.9 * excess, std::memory_order_relaxed);
  const double alone = step_work / c.rate;
  const double region = (c.region_base + c.region_per_thread * offered) / (steps > 0 ? steps : 1);
  int best = 1;
  double best_time = alone;
  for (int n = 2; n <= offered; ++n) {
    const double t = alone / n + c.sync_base + c.sync_per_thread * n + excess + region;
    if (t < best_time) {
      best = n;
      best_time = t;
    }
  }
  return best;
}

int64_t inference_chunk_steps(int64_t T, int64_t B) {
  int64_t steps = 256 / (B > 0 ? B : 1);
  steps = steps < 4 ? 4 : steps > 64 ? 64 : steps;
  return steps < T ? steps : T;
}

int plan_cell_threads(Cell cell, int64_t T, int64_t B, int64_t H, bool train, int offered) {
  const int64_t steps = train ? T : inference_chunk_steps(T, B);
  return plan_loop_threads(loop_step_work(B, gate_count(cell) * H, H), steps, offered);
}

int plan_product_threads(int64_t M, int64_t N, int64_t K, int offered) {
  if (offered <= 1) return 1;
  if (!thread_planning()) return offered;
  const PlanCosts& c = kCosts;
  const double alone = static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K) / c.product_rate;
  const double region = c.region_base + c.region_per_thread * offered;
  return alone > 2 * region ? offered : 1;
}

int plan_stream_threads(double bytes, int offered) {
  if (offered <= 1) return 1;
  if (!thread_planning()) return offered;
  const PlanCosts& c = kCosts;
  const double saved = (1.0 - 1.0 / offered) * bytes / c.stream_rate;
  const double late = g_late.load(std::memory_order_relaxed);
  if (late > 0) g_late.store(0.98 * late, std::memory_order_relaxed);
  const double excess = g_excess.load(std::memory_order_relaxed);
  const double team = c.region_base + c.region_per_thread * offered + c.sync_base + c.sync_per_thread * offered +
                      (late > excess ? late : excess);
  return saved > 2 * team ? offered : 1;
}

}  // namespace seqcore
