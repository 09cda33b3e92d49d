#include "plan.h"

#include <atomic>

namespace seqcore {

namespace {

const PlanCosts kCosts{};
std::atomic<bool> g_planning{true};

}  // namespace

const PlanCosts& plan_costs() { return kCosts; }

void set_thread_planning(bool on) { g_planning.store(on, std::memory_order_relaxed); }
bool thread_planning() { return g_planning.load(std::memory_order_relaxed); }

double loop_step_work(int64_t B, int64_t GH, int64_t H) {
  return static_cast<double>(B) * static_cast<double>(GH) * (static_cast<double>(H) + kCosts.epilogue);
}

int plan_loop_threads(double step_work, int64_t steps, int offered) {
  if (offered <= 1) return 1;
  if (!thread_planning()) return offered;
  const PlanCosts& c = kCosts;
  const double alone = step_work / c.rate;
  const double region = (c.region_base + c.region_per_thread * offered) / (steps > 0 ? steps : 1);
  int best = 1;
  double best_time = alone;
  for (int n = 2; n <= offered; ++n) {
    const double t = alone / n + c.sync_base + c.sync_per_thread * n + region;
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

}  // namespace seqcore
