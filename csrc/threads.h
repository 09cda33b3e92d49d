// The number of threads the kernels use: OMP_NUM_THREADS at start-up, else
// the cores OpenMP sees; set_num_threads changes it for later calls.
#pragma once

namespace seqcore {

bool openmp_enabled();
int get_num_threads();
void set_num_threads(int n);  // throws std::invalid_argument if n < 1

}  // namespace seqcore
