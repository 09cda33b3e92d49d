// The memory-bandwidth probe (generic code, see isa/kernels_impl.h): how many
// bytes a second the threads read with the kernels' own vector loads, so
// that a memory-bound kernel's speed can be given as a share of what the
// machine's caches and memory deliver (bench/bandwidth.py).
namespace seqcore {
namespace SEQCORE_ISA_NS {

// Each of `num_threads` workers reads its own share of p[0, n) (an even split
// of cache lines) `repeats` times over, summing it into 8 vector chains (the
// sum is kept, so the loads cannot be dropped). The workers start together
// (a meeting) and each times itself; returns the seconds from the first
// start to the last end. A share small enough stays in its core's caches
// after the first pass, so the size picks the level measured.
template <typename T>
double read_stream(const T* p, int64_t n, int64_t repeats, int num_threads, T* checksum) {
  constexpr int V = Vec<T>::size, chains = 8;
  constexpr int64_t line = 64 / static_cast<int64_t>(sizeof(T));
  const int64_t lines = (n + line - 1) / line;
  const int team = num_threads > lines ? static_cast<int>(lines > 0 ? lines : 1) : num_threads;
  GemmBuffer<int64_t> start(team), end(team);
  GemmBuffer<T> sums(team);
  StepCounter met;
  for (int w = 0; w < team; ++w) start.data[w] = end.data[w] = 0, sums.data[w] = T(0);
  run_workers(team, team, [&](int w, int nw) {
    int64_t l0, l1;
    split_units(lines, w, nw, l0, l1);
    const T* a = p + l0 * line;
    const int64_t m = (l1 * line < n ? l1 * line : n) - l0 * line;
    step_end(&met, w, nw, 0);
    start.data[w] = clock_ns();
    Vec<T> acc[chains];
    for (int c = 0; c < chains; ++c) acc[c] = Vec<T>::zero();
    for (int64_t r = 0; r < repeats; ++r) {
      int64_t i = 0;
      for (; i + chains * V <= m; i += chains * V)
        for (int c = 0; c < chains; ++c) acc[c] = acc[c] + Vec<T>::load(a + i + c * V);
      for (; i < m; i += V) acc[0] = acc[0] + load_n(a + i, static_cast<int>(m - i < V ? m - i : V));
    }
    end.data[w] = clock_ns();
    for (int c = 1; c < chains; ++c) acc[0] = acc[0] + acc[c];
    sums.data[w] = reduce_add(acc[0]);
  });
  // (where OpenMP gave fewer workers than asked, the others' slots stay 0)
  int64_t first = start.data[0], last = end.data[0];
  T total = T(0);
  for (int w = 0; w < team && end.data[w] != 0; ++w) {
    first = start.data[w] < first ? start.data[w] : first;
    last = end.data[w] > last ? end.data[w] : last;
    total += sums.data[w];
  }
  *checksum = total;
  return static_cast<double>(last - first) * 1e-9;
}

}  // namespace SEQCORE_ISA_NS
}  // namespace seqcore
