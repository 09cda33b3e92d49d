// The table of kernels that each instruction set provides. dispatch.cpp picks
// one table at start-up; csrc/bindings/ calls through it. No ISA code here.
#pragma once
#include <cstdint>

namespace seqcore {

// ---------------------------------------------------------------------------
// cells

enum class Cell : int { rnn = 0, lstm = 1, gru = 2 };

inline int gate_count(Cell cell) { return cell == Cell::rnn ? 1 : cell == Cell::lstm ? 4 : 3; }

// One layer, one direction, a whole sequence of a padded batch. G gates;
// arrays C-contiguous, time-major. Pointers a cell does not use are null.
//
// The kernels run T iterations s = 0 … T-1. Row b runs time step
//   t = s                    forward
//   t = length[b] − 1 − s    reverse (each sequence from its own end)
// while s < length[b]; past its end a row is inactive: its state is carried
// unchanged and its outputs y[t ≥ length[b], b] are zero. Everything kept
// for backward is indexed by iteration, not by time, and its rows are in
// `order` (longest sequence first, so that the rows still running are a
// prefix of the batch and the kernels skip the others). The ws_* arrays
// have the padded shapes below, but training stores iteration s in a block
// of only the rows that ran iteration s-1 (cells/loops.h, Rows::offset), so
// a variable-length batch costs what its real rows cost.
//
// RNN: relu selects h = relu(·) in place of tanh (PyTorch's nonlinearity).
// LSTM with a projection (PyTorch's proj_size, 0 < P < H): W_hr (P, H),
// m_t = o ⊙ tanh(c_t), h_t = m_t W_hrᵀ; then h0, hT, y, dy, dhT, dh0 and
// ws_h have P features (the state's width S below: P, or H without a
// projection), W_hh is (4H, P), c and the gates keep H.
template <typename T>
struct CellForwardArgs {
  int64_t T_ = 0, B = 0, D = 0, H = 0;
  int64_t P = 0;                   // LSTM: projection size, 0: none
  bool relu = false;               // RNN: relu in place of tanh
  bool train = false;              // keep what backward needs in ws_*
  bool reverse = false;
  const int64_t* lengths = nullptr;  // (B,) in [0, T], or null: all T
  const int64_t* order = nullptr;    // (B,) kernel row -> batch row, lengths descending; null: identity
  const T* x = nullptr;     // (T, B, D)
  const T* h0 = nullptr;    // (B, H)
  const T* c0 = nullptr;    // (B, H)      LSTM
  const T* W_ih = nullptr;  // (G·H, D)
  const T* W_hh = nullptr;  // (G·H, S)
  const T* W_hr = nullptr;  // (P, H)      LSTM with a projection
  const T* b_ih = nullptr;  // (G·H,)      RNN, LSTM: the one bias
  const T* b_hh = nullptr;  // (G·H,)      GRU
  T* y = nullptr;           // (T, B, S)   out
  T* hT = nullptr;          // (B, S)      out
  T* cT = nullptr;          // (B, H)      out, LSTM
  // Kept for backward when training, by iteration (in blocks, see above;
  // the shapes are what is allocated); null for inference.
  T* ws_h = nullptr;        // (T+1, B, S) states: block 0 is h0, block s+1 after iteration s
  T* ws_gates = nullptr;    // (T, B, G·H) gates after their nonlinearities (LSTM, GRU)
  T* ws_c = nullptr;        // (T+1, B, H) cell states, slots as ws_h (LSTM)
  T* ws_hn = nullptr;       // (T, B, H)   h W_hnᵀ + b_hn (GRU)
  T* ws_m = nullptr;        // (T, B, H)   m of iteration s in the slot of block s+1 of ws_h,
                            //             less B rows (LSTM with a projection)
  T* scratch = nullptr;     // forward_scratch(...) elements
  int num_threads = 1;
  bool bf16 = false;        // precision "bf16": every product with bfloat16 operands (float only)
};

template <typename T>
struct CellBackwardArgs {
  int64_t T_ = 0, B = 0, D = 0, H = 0;
  int64_t P = 0;            // as the forward's
  bool relu = false;        // as the forward's
  bool reverse = false;
  const int64_t* lengths = nullptr;
  const int64_t* order = nullptr;
  // from the forward
  const T *x = nullptr, *W_ih = nullptr, *W_hh = nullptr, *W_hr = nullptr;
  const T *ws_h = nullptr, *ws_gates = nullptr, *ws_c = nullptr, *ws_hn = nullptr, *ws_m = nullptr;
  // incoming gradients, each may be null (no gradient there)
  const T* dy = nullptr;    // (T, B, S)
  const T* dhT = nullptr;   // (B, S)
  const T* dcT = nullptr;   // (B, H)      LSTM
  // outputs, overwritten
  T *dx = nullptr, *dh0 = nullptr, *dc0 = nullptr, *dW_ih = nullptr, *dW_hh = nullptr;
  T* dW_hr = nullptr;       // (P, H)      LSTM with a projection
  T* db_ih = nullptr;       // RNN, LSTM: the one bias
  T* db_hh = nullptr;       // GRU
  T* scratch = nullptr;     // backward_scratch(...) elements
  int num_threads = 1;
  bool bf16 = false;        // as the forward's
};

// ---------------------------------------------------------------------------
// generation (generate/stepper.h)

// A language model prepared for stepping: ids (B,) -> embedding (or
// one-hot) -> L stacked layers of one cell kind -> head -> logits (B, V).
struct StepperSizes {
  Cell cell = Cell::lstm;
  int64_t B = 0;           // rows (samples)
  int64_t V = 0;           // vocabulary: ids in [0, V), logits (B, V)
  int64_t D = 0;           // layer 0's input: the embedding's width, or V (one-hot)
  int64_t H = 0, L = 0;    // hidden units, layers
  bool embedding = false;  // ids go through an embedding (V, D); else one-hot
  bool table = false;      // layer 0's x W_ihᵀ kept for every id (V, G·H)
  bool head_bias = false;
  bool bf16 = false;       // precision "bf16" (float only): the products' operands in bfloat16
  bool int8 = false;       // precision "int8" (float only): the recurrent layers' products in int8
};

// The weights a stepper copies (and packs) when it is prepared or
// refreshed; the caller's arrays, C-contiguous, per layer l < L.
template <typename T>
struct StepperWeights {
  const T* embedding = nullptr;        // (V, D) or null (one-hot)
  const T* const* W_ih = nullptr;      // (G·H, D) for l = 0, (G·H, H) after
  const T* const* W_hh = nullptr;      // (G·H, H)
  const T* const* b_ih = nullptr;      // (G·H,) RNN, LSTM: the one bias b_ih + b_hh
  const T* const* b_hh = nullptr;      // (G·H,) GRU
  const T* head_W = nullptr;           // (V, H)
  const T* head_b = nullptr;           // (V,) or null
};

// ---------------------------------------------------------------------------
// optimizers

// One Adam step's constants (optim/adam.h rounds each to the element type):
// step_size = lr / (1 − β1^t), bias2 = √(1 − β2^t).
struct AdamArgs {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, step_size = 0.0, bias2 = 1.0;
};

// ---------------------------------------------------------------------------
// the table

// Kernels for one element type T (float or double). Matrices are row-major.
template <typename T>
struct KernelTable {
  // C (M,N) = alpha * op(A) op(B) + beta * C, op(A): (M,K), op(B): (K,N).
  // A is (M,K) with row stride lda, or (K,M) when trans_a; B likewise.
  // beta == 0 means C is not read. The result does not depend on num_threads.
  void (*gemm)(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha,
               const T* A, int64_t lda, const T* B, int64_t ldb, T beta, T* C,
               int64_t ldc, int num_threads);
  // The same with op(A) and op(B) rounded to bfloat16 (float32 sums):
  // AVX512-BF16's dot products where the ISA has them. float only (null
  // for double).
  void (*gemm_bf16)(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha,
                    const T* A, int64_t lda, const T* B, int64_t ldb, T beta, T* C,
                    int64_t ldc, int num_threads);
  // y[i] = sigmoid(x[i]) and y[i] = tanh(x[i]), i < n, with the vector code
  // the cells use (exposed so tests can measure its error).
  void (*sigmoid)(const T* x, T* y, int64_t n);
  void (*tanh)(const T* x, T* y, int64_t n);

  // Elements of scratch a cell's forward / backward needs (the layout
  // depends on the vector width, hence per ISA); `gather` when the rows do
  // not run in batch order (reverse, or an order). Inference needs O(B·H)
  // whatever T is.
  // P: the LSTM's projection size (0: none).
  int64_t (*forward_scratch)(Cell cell, int64_t T_, int64_t B, int64_t D, int64_t H, int64_t P,
                             bool train, bool gather);
  int64_t (*backward_scratch)(Cell cell, int64_t T_, int64_t B, int64_t D, int64_t H, int64_t P,
                              bool gather);
  void (*forward)(Cell cell, const CellForwardArgs<T>& args);
  void (*backward)(Cell cell, const CellBackwardArgs<T>& args);

  // One Adam step on n parameters in place (p, m, v written; g read).
  void (*adam)(T* p, const T* g, T* m, T* v, int64_t n, const AdamArgs& args, int num_threads);
  // Σ x[i]², accumulated in double, in blocks shared out to the threads
  // (the result does not depend on num_threads).
  double (*sum_of_squares)(const T* x, int64_t n, int num_threads);
  // Softmax cross-entropy of the rows of z (N, V) against targets (N,) in
  // [0, V), weighted by weights (N,): writes dz (N, V), returns the sum of
  // the negative log-likelihoods of the rows of nonzero weight
  // (optim/softmax_cross_entropy.h). The same bits at any num_threads.
  double (*softmax_cross_entropy)(const T* z, int64_t N, int64_t V, const int64_t* targets,
                                  const double* weights, T* dz, int num_threads);

  // The bandwidth probe (probe/read_stream.h): num_threads workers read
  // their shares of p[0, n) repeats times over with the kernels' vector
  // loads; returns the seconds from the first start to the last end, and
  // the sum of what was read into *checksum.
  double (*read_stream)(const T* p, int64_t n, int64_t repeats, int num_threads, T* checksum);

  // A stepper's buffer (64-byte aligned, stepper_size elements): the
  // weights, copied and packed by stepper_pack, then the state, which
  // stepper_pack zeroes. stepper_state gives the offset of h (which = 0)
  // or c (which = 1, LSTM), each (L, B, H). stepper_step runs one token
  // for rows [0, rows): ids (rows,) in [0, V) -> logits (rows, V), the
  // state updated; rows >= B are left as they are. It uses at most
  // num_threads threads; the results do not depend on them, nor on
  // top_first (the order of the layers' products, see generate/stepper.h).
  int64_t (*stepper_size)(const StepperSizes& s);
  int64_t (*stepper_state)(const StepperSizes& s, int which);
  void (*stepper_pack)(const StepperSizes& s, const StepperWeights<T>& w, T* buf);
  void (*stepper_step)(const StepperSizes& s, T* buf, const int64_t* ids, int64_t rows, T* logits,
                       int num_threads, bool top_first);
};

// Precision "int8" (inference, float32; cells/forward_int8.h, the scheme
// in seqcore/reference/int8.py). A cell's weights are quantized and packed
// once by pack into a buffer of weights_size bytes (64-byte aligned; its
// layout is this ISA's), which forward then reads: args as the float32
// forward's with train false (scratch unused). sums, for tests: the exact
// int32 sums S (M, N) of A (M, K) and W (N, K) quantized per row (their
// scales into sa (M,), sw (N,)), through panels of nv (1, 3 or 4) vectors.
struct Int8Kernels {
  int64_t (*weights_size)(Cell cell, int64_t D, int64_t H);
  void (*pack)(Cell cell, int64_t D, int64_t H, const float* W_ih, const float* W_hh, uint8_t* buf,
               int num_threads);
  void (*forward)(Cell cell, const CellForwardArgs<float>& args, const uint8_t* weights);
  void (*sums)(int64_t M, int64_t N, int64_t K, const float* A, const float* W, int32_t* S, float* sa, float* sw,
               int nv, int num_threads);
};

struct IsaKernels {
  const char* name;
  KernelTable<float> f32;
  KernelTable<double> f64;
  Int8Kernels int8;
};

// One per ISA translation unit (csrc/isa/kernels_<isa>.cpp).
namespace scalar { const IsaKernels& kernels(); }
namespace avx2 { const IsaKernels& kernels(); }
namespace avx512 { const IsaKernels& kernels(); }
namespace avx512_bf16 { const IsaKernels& kernels(); }
namespace amx_bf16 { const IsaKernels& kernels(); }
namespace avx2_vnni { const IsaKernels& kernels(); }
namespace avx512_vnni { const IsaKernels& kernels(); }

}  // namespace seqcore
