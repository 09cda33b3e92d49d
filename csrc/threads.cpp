#include "threads.h"

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace seqcore {

namespace {

int default_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();  // honours OMP_NUM_THREADS
#else
  return 1;
#endif
}

std::atomic<int> g_threads{0};  // 0: not chosen yet

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

inline int64_t load_acquire(const StepCounter* c) { return __atomic_load_n(&c->value, __ATOMIC_ACQUIRE); }

}  // namespace

bool openmp_enabled() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

int get_num_threads() {
  int n = g_threads.load(std::memory_order_relaxed);
  if (n == 0) {
    n = default_threads();
    g_threads.store(n, std::memory_order_relaxed);
  }
  return n;
}

void set_num_threads(int n) {
  if (n < 1) {
    throw std::invalid_argument("n: the number of threads must be at least 1, got " +
                                std::to_string(n));
  }
  g_threads.store(n, std::memory_order_relaxed);
}

void step_arrive(StepCounter* counter) { __atomic_fetch_add(&counter->value, 1, __ATOMIC_ACQ_REL); }

int64_t step_wait(const StepCounter* counter, int64_t target) {
  // Spin, looking at the clock every 64 pauses only (a pause is 10-150
  // cycles, the clock ~20 ns).
  for (int i = 0; i < 64; ++i) {
    if (load_acquire(counter) >= target) return 0;
    cpu_relax();
  }
  using clock = std::chrono::steady_clock;
  const auto start = clock::now(), until = start + std::chrono::nanoseconds(kSpinNs);
  while (load_acquire(counter) < target) {
    for (int i = 0; i < 64 && load_acquire(counter) < target; ++i) cpu_relax();
    if (clock::now() > until) {
      while (load_acquire(counter) < target) std::this_thread::yield();
      break;
    }
  }
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - start).count();
}

}  // namespace seqcore
