#include "generate/draw.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace seqcore {
namespace {

// numpy's pairwise sum of a float64 array (np.sum): runs of 8 partial sums
// up to 128 elements, halves above.
double pairwise_sum(const double* a, int64_t n) {
  if (n < 8) {
    double s = 0.0;
    for (int64_t i = 0; i < n; ++i) s += a[i];
    return s;
  }
  if (n <= 128) {
    double r[8];
    for (int j = 0; j < 8; ++j) r[j] = a[j];
    int64_t i = 8;
    for (; i < n - n % 8; i += 8)
      for (int j = 0; j < 8; ++j) r[j] += a[i + j];
    double s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) s += a[i];
    return s;
  }
  int64_t n2 = n / 2;
  n2 -= n2 % 8;
  return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
}

template <typename T>
int64_t draw_row(const T* x, int64_t V, double u, const DrawOptions& o, double* logp, double* p,
                 int64_t* order) {
  constexpr double inf = std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < V; ++j) {
    if (!std::isfinite(x[j])) return -1;
  }
  // log_softmax(x / temperature): shifted by the max, minus log Σ exp
  for (int64_t j = 0; j < V; ++j) logp[j] = o.temperature != 1.0 ? double(x[j]) / o.temperature : double(x[j]);
  const double top = *std::max_element(logp, logp + V);
  for (int64_t j = 0; j < V; ++j) {
    logp[j] -= top;
    p[j] = std::exp(logp[j]);
  }
  const double log_z = std::log(pairwise_sum(p, V));
  if (!std::isfinite(log_z)) return -1;  // logits / temperature overflowed
  for (int64_t j = 0; j < V; ++j) logp[j] -= log_z;
  if (o.pad_id >= 0) logp[o.pad_id] = -inf;
  if (o.top_k > 0 || o.top_p < 1.0) {
    // most likely first, ties: the lower id (numpy's stable argsort of -logp)
    std::iota(order, order + V, int64_t{0});
    const auto before = [logp](int64_t a, int64_t b) { return -logp[a] < -logp[b] || (-logp[a] == -logp[b] && a < b); };
    int64_t n = V - (o.pad_id >= 0 ? 1 : 0);  // <pad> sorts last
    if (o.top_k > 0 && o.top_k < n && o.top_p >= 1.0) {
      std::partial_sort(order, order + o.top_k, order + V, before);
    } else {
      std::sort(order, order + V, before);
    }
    if (o.top_k > 0) n = std::min(n, o.top_k);
    if (o.top_p < 1.0) {
      // the first prefix whose renormalised probability reaches top_p
      for (int64_t i = 0; i < n; ++i) p[i] = std::exp(logp[order[i]] - logp[order[0]]);
      const double sum = pairwise_sum(p, n);
      double cum = 0.0;
      int64_t reach = n;
      for (int64_t i = 0; i < n; ++i) {
        cum += p[i] / sum;
        if (cum >= o.top_p) {
          reach = i;
          break;
        }
      }
      n = std::min(n, reach + 1);
    }
    for (int64_t i = n; i < V; ++i) logp[order[i]] = -inf;
  }
  // the kept tokens' probabilities, normalised twice as numpy does (p / p.sum(),
  // then choice's cdf / cdf[-1]), and the first cdf above u
  const double most = *std::max_element(logp, logp + V);
  for (int64_t j = 0; j < V; ++j) p[j] = std::exp(logp[j] - most);
  const double sum = pairwise_sum(p, V);
  if (!(sum > 0.0 && std::isfinite(sum))) return -1;
  for (int64_t j = 0; j < V; ++j) p[j] /= sum;  // the divisions apart from the sums' chain (vectorised)
  double cdf = 0.0;
  for (int64_t j = 0; j < V; ++j) {
    cdf += p[j];
    p[j] = cdf;
  }
  // The first j with p[j] / last > u: p is non-decreasing, and so is a
  // correctly rounded p[j] / last, so a bisection finds the j a scan would.
  const double last = p[V - 1];
  int64_t lo = 0, hi = V - 1;  // p[hi] / last = 1 > u
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (p[mid] / last > u) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return lo;
}

}  // namespace

template <typename T>
void draw_tokens(const T* logits, int64_t rows, int64_t V, const double* u, const DrawOptions& o,
                 double* work, int64_t* order, int64_t* out) {
  for (int64_t r = 0; r < rows; ++r) out[r] = draw_row(logits + r * V, V, u[r], o, work, work + V, order);
}

template void draw_tokens<float>(const float*, int64_t, int64_t, const double*, const DrawOptions&, double*,
                                 int64_t*, int64_t*);
template void draw_tokens<double>(const double*, int64_t, int64_t, const double*, const DrawOptions&, double*,
                                  int64_t*, int64_t*);

}  // namespace seqcore
