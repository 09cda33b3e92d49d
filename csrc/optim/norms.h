// Σ x² of an array, for clipping by the global norm (generic code, see
// isa/kernels_impl.h): accumulated in double, since float32 squares
// overflow past 1.8e19. The array is cut into blocks of kSquaresBlock
// elements; a block's sum is eight independent sums added in a fixed order
// at the end, and the blocks' sums are added in order, one after the
// other. The blocks are shared out to the threads, so the result depends
// on n and the ISA only, never on the threads (an array of one block is
// the eight sums alone).
namespace seqcore {
namespace SEQCORE_ISA_NS {

// 64 Ki elements: 256 KiB of float32, about 10 µs on one thread; below two
// blocks one thread does it all.
constexpr int64_t kSquaresBlock = int64_t{1} << 16;

template <typename T>
double sum_of_squares_block(const T* x, int64_t n) {
  double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) {
      const double v = static_cast<double>(x[i + k]);
      s[k] += v * v;
    }
  }
  for (int k = 0; i < n; ++i, ++k) {
    const double v = static_cast<double>(x[i]);
    s[k] += v * v;
  }
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

template <typename T>
double sum_of_squares(const T* x, int64_t n, int num_threads) {
  const int64_t blocks = (n + kSquaresBlock - 1) / kSquaresBlock;
  if (blocks <= 1) return sum_of_squares_block(x, n);
  GemmBuffer<double> sums(blocks);
  // The team: all the threads offered, as for every region (cells/team.h
  // says why), where the plan says it pays (plan_stream_threads).
  const int team = plan_stream_threads(sizeof(T) * static_cast<double>(n), num_threads);
  stream_blocks(blocks, team, [&](int64_t b) {
    const int64_t i = b * kSquaresBlock;
    sums.data[b] = sum_of_squares_block(x + i, n - i < kSquaresBlock ? n - i : kSquaresBlock);
  });
  double s = 0;
  for (int64_t b = 0; b < blocks; ++b) s += sums.data[b];
  return s;
}

}  // namespace SEQCORE_ISA_NS
}  // namespace seqcore
