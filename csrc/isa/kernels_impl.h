// Generic kernel code, compiled once per instruction set: the including file
// defines SEQCORE_ISA_NS and has included simd/<isa>.h, which gives Vec<T>
// in namespace seqcore::SEQCORE_ISA_NS. Not a normal header: no include
// guard, included exactly once per ISA translation unit.
//
// Rule for this code: call only functions of the ISA namespace, intrinsics
// and <cmath>; no std containers or algorithms, whose inline copies would
// be shared between translation units built with different flags. (The
// thread plan and the step counter, plan.h and threads.h, are baseline
// functions called out of line.)

#include "kernels.h"
#include "plan.h"
#include "threads.h"
#include "activations/activations.h"
#include "gemm/bf16_round.h"
#include "gemm/gemm.h"
#include "gemm/bf16.h"
#include "cells/panel.h"
#include "cells/panel_bf16.h"
#include "cells/common.h"
#include "cells/team.h"
#include "cells/loops.h"
#include "cells/rnn.h"
#include "cells/lstm.h"
#include "cells/gru.h"
#include "cells/panel_int8.h"
#include "cells/forward_int8.h"
#include "generate/stepper.h"
#include "optim/stream.h"
#include "optim/adam.h"
#include "optim/norms.h"
#include "optim/softmax_cross_entropy.h"
#include "probe/read_stream.h"

namespace seqcore {
namespace SEQCORE_ISA_NS {

#define SEQCORE_STR2(x) #x
#define SEQCORE_STR(x) SEQCORE_STR2(x)

template <typename T>
int64_t forward_scratch(Cell cell, int64_t T_, int64_t B, int64_t D, int64_t H, int64_t P, bool train,
                        bool gather) {
  switch (cell) {
    case Cell::rnn: return rnn_forward_scratch<T>(T_, B, D, H, train, gather);
    case Cell::lstm: return lstm_forward_scratch<T>(T_, B, D, H, P, train, gather);
    case Cell::gru: return gru_forward_scratch<T>(T_, B, D, H, train, gather);
  }
  return 0;
}

template <typename T>
int64_t backward_scratch(Cell cell, int64_t T_, int64_t B, int64_t D, int64_t H, int64_t P, bool gather) {
  switch (cell) {
    case Cell::rnn: return rnn_backward_scratch<T>(T_, B, D, H, gather);
    case Cell::lstm: return lstm_backward_scratch<T>(T_, B, D, H, P, gather);
    case Cell::gru: return gru_backward_scratch<T>(T_, B, D, H, gather);
  }
  return 0;
}

template <typename T>
void cell_forward(Cell cell, const CellForwardArgs<T>& args) {
  switch (cell) {
    case Cell::rnn: rnn_forward(args); break;
    case Cell::lstm: lstm_forward(args); break;
    case Cell::gru: gru_forward(args); break;
  }
}

template <typename T>
void cell_backward(Cell cell, const CellBackwardArgs<T>& args) {
  switch (cell) {
    case Cell::rnn: rnn_backward(args); break;
    case Cell::lstm: lstm_backward(args); break;
    case Cell::gru: gru_backward(args); break;
  }
}

template <typename T>
KernelTable<T> make_table() {
  KernelTable<T> t{};
  t.gemm = &gemm<T>;
  if constexpr (sizeof(T) == 4) t.gemm_bf16 = &gemm_bf16;
  t.sigmoid = &sigmoid_array<T>;
  t.tanh = &tanh_array<T>;
  t.forward_scratch = &forward_scratch<T>;
  t.backward_scratch = &backward_scratch<T>;
  t.forward = &cell_forward<T>;
  t.backward = &cell_backward<T>;
  t.adam = &adam_update<T>;
  t.sum_of_squares = &sum_of_squares<T>;
  t.softmax_cross_entropy = &softmax_cross_entropy<T>;
  t.read_stream = &read_stream<T>;
  t.stepper_size = &stepper_size<T>;
  t.stepper_state = &stepper_state<T>;
  t.stepper_pack = &stepper_pack<T>;
  t.stepper_step = &stepper_step<T>;
  return t;
}

const IsaKernels& kernels() {
  static const IsaKernels table{SEQCORE_STR(SEQCORE_ISA_NS), make_table<float>(), make_table<double>(),
                                Int8Kernels{&int8_weights_size, &int8_pack, &cell_forward_int8, &int8_sums}};
  return table;
}

#undef SEQCORE_STR
#undef SEQCORE_STR2

}  // namespace SEQCORE_ISA_NS
}  // namespace seqcore
