#include "threads.h"

#include <atomic>
#include <stdexcept>
#include <string>

#ifdef _OPENMP
#include <omp.h>
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

}  // namespace seqcore
