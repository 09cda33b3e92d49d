// Rounding of float32 to bfloat16 (generic code, see isa/kernels_impl.h),
// as AVX512-BF16's vcvtneps2bf16 does it, so that every ISA's "bf16"
// products read the same operands: round to nearest even; denormals flush
// to zero of their sign (the instruction treats them as zero); NaN stays a
// quiet NaN; values past the largest bfloat16 round to infinity.
// seqcore/reference/bf16.py is the same in NumPy.
namespace seqcore {
namespace SEQCORE_ISA_NS {

// The 16 bits of x in bfloat16.
inline uint32_t bf16_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof(u));
  if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40u;  // NaN, quieted
  if ((u & 0x7f800000u) == 0) return (u >> 16) & 0x8000u;         // zero or denormal
  return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

// x rounded to bfloat16, as a float.
inline float bf16_round(float x) {
  const uint32_t u = bf16_bits(x) << 16;
  float y;
  std::memcpy(&y, &u, sizeof(y));
  return y;
}

// Two values as the 32-bit word the bfloat16 dot products read: lo in the
// lower half (the even k), hi in the upper one.
inline uint32_t bf16_pair(float lo, float hi) { return bf16_bits(lo) | (bf16_bits(hi) << 16); }

// What a packing routine stores: x itself, or (RB) x rounded to bfloat16
// (the "bf16" products of ISAs without bfloat16 instructions).
template <bool RB, typename T>
inline T gemm_operand(T x) {
  if constexpr (RB && sizeof(T) == 4) {
    return bf16_round(x);
  } else {
    return x;
  }
}

}  // namespace SEQCORE_ISA_NS
}  // namespace seqcore
