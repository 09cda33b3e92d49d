// Who runs a time loop (generic code, see isa/kernels_impl.h): the workers
// that the thread plan (plan.h) gives a call, within an OpenMP team of the
// threads the call is offered, and their meeting once per step.
namespace seqcore {
namespace SEQCORE_ISA_NS {

// Workers for a loop of `units` units of hidden units: the plan, at most one
// per unit.
inline int loop_workers(int64_t units, double step_work, int64_t steps, int offered) {
  const int planned = plan_loop_threads(step_work, steps, offered);
  return static_cast<int>(units < planned ? units : planned);
}

// Runs body(w, n) for the workers w = 0 … n-1, n <= workers: on the calling
// thread alone when workers == 1, else in a parallel region of `team`
// threads of which the first n work and the rest leave at once. The team
// is the call's offered threads whatever the plan: libgomp ends the pool's
// threads that a smaller team leaves out and starts new ones for the next
// larger team (a thread created and joined per region, tens of µs, when the
// input projection's team and the loop's differed); a team of the same size
// each time reuses them. n is less than `workers` only where OpenMP gave
// fewer threads than asked (nested, or a thread limit).
template <typename Body>
void run_workers(int team, int workers, Body&& body) {
#ifdef _OPENMP
  if (workers > 1 && team > 1) {
#pragma omp parallel num_threads(team)
    {
      const int got = omp_get_num_threads(), w = omp_get_thread_num();
      const int n = workers < got ? workers : got;
      if (w < n) body(w, n);
    }
    return;
  }
#else
  (void)team, (void)workers;
#endif
  body(0, 1);
}

// The end of iteration i (0, 1, … in the loop's order) for worker w of n:
// back once all n have written their share of it. Worker 0 keeps count of
// its waits.
inline void step_end(StepCounter* done, int w, int n, int64_t i) {
  if (n <= 1) return;
  step_arrive(done);
  const int64_t waited = step_wait(done, n * (i + 1));
  if (w == 0) {
    done->waited_ns += waited;
    done->long_waits += waited >= kSpinNs ? 1 : 0;
    done->workers = n;
  }
}

// After a loop of `steps` steps: what its meetings cost, to the plan.
inline void report_loop(const StepCounter& done, int64_t steps) {
  if (done.workers > 1) report_step_waits(done.waited_ns, done.long_waits, steps, done.workers);
}

}  // namespace SEQCORE_ISA_NS
}  // namespace seqcore
