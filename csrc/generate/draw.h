// Drawing the next token from logits: softmax with a temperature, <pad>
// never drawn, top-k, top-p, then one uniform number per row. Plain C++ (no
// ISA code): a few hundred operations a row, against the step's millions.
#pragma once
#include <cstdint>

namespace seqcore {

struct DrawOptions {
  double temperature = 1.0;  // > 0
  int64_t top_k = 0;         // 0: all tokens
  double top_p = 1.0;        // in (0, 1]; 1: all tokens
  int64_t pad_id = -1;       // never drawn; -1: none
};

// out[r] = the token of row r of logits (rows, V) for the uniform number
// u[r] in [0, 1): the operations of seqcore/generate.py's reference draw
// (_draw) in float64, in its order, with numpy's summation (pairwise sums,
// cumulative sums in order): log-softmax of logits / temperature, <pad> and
// the tokens past top-k / top-p out, then the first token whose normalised
// cumulative probability exceeds u (numpy's Generator.choice). Ties in
// top-k / top-p go to the lower id, as a stable sort does.
// out[r] = -1 where the row's logits hold a NaN or an infinity, or where
// logits / temperature overflow.
// work: 2·V doubles, order: V integers (the caller's, so no allocation).
template <typename T>
void draw_tokens(const T* logits, int64_t rows, int64_t V, const double* u, const DrawOptions& o,
                 double* work, int64_t* order, int64_t* out);

}  // namespace seqcore
