// A memory-bound pass (Adam, the sum of squares, the softmax cross-entropy)
// over blocks of its data, on a team the plan chose (generic code, see
// isa/kernels_impl.h). The results of a block never depend on who runs it,
// so the passes give the same bits at any number of threads.
namespace seqcore {
namespace SEQCORE_ISA_NS {

// body(b) for the blocks b = 0 … blocks-1: on the calling thread when team
// is 1, else in a parallel region of `team` threads, each taking a range of
// blocks. The region measures how late its last thread arrived after its
// first and tells the plan (report_region_lateness), which keeps later
// passes on one thread while the team's threads come late.
template <typename Body>
void stream_blocks(int64_t blocks, int team, Body&& body) {
#ifdef _OPENMP
  if (team > 1 && blocks > 1) {
    GemmBuffer<int64_t> arrived(team);
    int got = 1;
#pragma omp parallel num_threads(team)
    {
      const int w = omp_get_thread_num(), n = omp_get_num_threads();
      arrived.data[w] = clock_ns();
      if (w == 0) got = n;
      int64_t b0, b1;
      split_units(blocks, w, n, b0, b1);
      for (int64_t b = b0; b < b1; ++b) body(b);
    }
    int64_t first = arrived.data[0], last = arrived.data[0];
    for (int w = 1; w < got; ++w) {
      first = arrived.data[w] < first ? arrived.data[w] : first;
      last = arrived.data[w] > last ? arrived.data[w] : last;
    }
    report_region_lateness(last - first, got);
    return;
  }
#else
  (void)team;
#endif
  for (int64_t b = 0; b < blocks; ++b) body(b);
}

}  // namespace SEQCORE_ISA_NS
}  // namespace seqcore
