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

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
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

// The futex word: the low 32 bits of the counter (little-endian), which
// change at every arrival.
#if defined(__linux__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SEQCORE_FUTEX 1
inline int* futex_word(const StepCounter* c) {
  return reinterpret_cast<int*>(const_cast<int64_t*>(&c->value));
}
#endif

// Sleeps until value >= target. The waiter counts itself in `sleepers`
// before it looks at the value a last time, and the arriver looks at
// `sleepers` after its add (both sequentially consistent): either the
// waiter sees the new value or the arriver sees the sleeper and wakes it;
// the kernel returns at once if the word changed before the waiter slept.
void sleep_until(const StepCounter* counter, int64_t target) {
#ifdef SEQCORE_FUTEX
  auto* c = const_cast<StepCounter*>(counter);
  __atomic_fetch_add(&c->sleepers, 1, __ATOMIC_SEQ_CST);
  for (;;) {
    const int64_t v = __atomic_load_n(&c->value, __ATOMIC_SEQ_CST);
    if (v >= target) break;
    syscall(SYS_futex, futex_word(c), FUTEX_WAIT_PRIVATE, static_cast<int>(v), nullptr, nullptr, 0);
  }
  __atomic_fetch_sub(&c->sleepers, 1, __ATOMIC_SEQ_CST);
#else
  while (load_acquire(counter) < target) std::this_thread::yield();
#endif
}

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

int64_t clock_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void step_arrive(StepCounter* counter) {
  __atomic_fetch_add(&counter->value, 1, __ATOMIC_SEQ_CST);
#ifdef SEQCORE_FUTEX
  if (__atomic_load_n(&counter->sleepers, __ATOMIC_SEQ_CST) > 0)
    syscall(SYS_futex, futex_word(counter), FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr, nullptr, 0);
#endif
}

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
      sleep_until(counter, target);
      break;
    }
  }
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - start).count();
}

}  // namespace seqcore
