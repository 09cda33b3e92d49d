"""int8 products with exact int32 sums (precision "int8", inference), in NumPy.

The scheme is dynamic quantization as PyTorch's ``quantize_dynamic`` and
oneDNN's do it: the weights quantized once, the activations at every step,
integer products, a float32 epilogue. Here, for a product a · Wᵀ with a
(M, K) activations and W (N, K) weights:

- weights: symmetric, per output row j (each gate unit its own scale):
  ``s_w[j] = max_k |W[j, k]| / 127``, ``W_q = rint(W · (127 / max|W[j]|))``
  in [-127, 127] (int8, no zero point);
- activations: symmetric, per row r of a (each row of x, and of h at every
  step: so a row's result never depends on the other rows of its batch),
  ``s_a[r] = max_k |a[r, k]| / 127``, ``a_q = rint(a · (127 / max|a[r]|))``
  in [-127, 127]; a row whose max |a| is below 2⁻¹⁰⁰ (zeros, in practice)
  is all 0 with scale 0 (127 / max|a| would overflow float32);
- sums: ``S = a_q · W_qᵀ`` in int32, exact (|S| <= K · 127², no overflow
  for K < 2¹⁷);
- epilogue, float32: ``y[r, j] = float32(S[r, j]) · s_a[r] · s_w[j]`` (in this
  order), then the biases and the gates as in float32.

``rint`` rounds half to even, as the vector conversions (vcvtps2dq) do; every
operation above is one IEEE float32 operation, so the native kernels give
these bits exactly. The native kernels feed VNNI's vpdpbusd (unsigned ×
signed bytes) a_q + 128 and subtract 128 · Σ_k W_q[j, k] (the compensation,
computed when the weights are packed): the same int32 sums. Symmetric
activations (not u8 with a zero point) keep the sums those of a_q · W_qᵀ
on every ISA, and the fallbacks (AVX2's vpmaddwd on bytes widened to 16
bits, scalar code) exact: no vpmaddubsw, whose 16-bit pairs saturate.

Error bound (``int8_error_bound``), per element of one product: with
â = s_a·a_q and Ŵ = s_w·W_q (|a − â| <= s_a / 2, |W − Ŵ| <= s_w / 2 elementwise),

    |y[r, j] − (a · Wᵀ)[r, j]| <= s_a[r] / 2 · Σ_k |Ŵ[j, k]| + s_w[j] / 2 · Σ_k |a[r, k]|
                               <= K · max|a[r]| · max|W[j]| / 127

plus the float32 rounding of the epilogue (a few ulp of y). Through a
sequence the gates' errors are those of their pre-activations (σ' <= 1/4,
tanh' <= 1) and the state's carry them on; tests compare whole sequences
with float32 within a multiple of this bound, and against torch's
``quantize_dynamic`` on the same weights.
"""

import numpy as np

# Rows with max |a| below this quantize to zeros (scale 0).
TINY = np.float32(2.0 ** -100)


def quantize_rows(a):
    """a (M, K) float32 -> (a_q (M, K) int8, scale (M,) float32): symmetric
    per row, a ≈ scale[:, None] · a_q."""
    a = np.asarray(a, dtype=np.float32)
    amax = np.abs(a).max(axis=1) if a.shape[1] else np.zeros(a.shape[0], np.float32)
    amax = amax.astype(np.float32)
    zero = amax < TINY
    inv = np.float32(127) / np.where(zero, np.float32(1), amax)  # one float32 division, as the kernels
    q = np.rint(a * inv[:, None])
    q = np.where(zero[:, None], 0, np.clip(q, -127, 127)).astype(np.int8)
    scale = np.where(zero, np.float32(0), amax / np.float32(127)).astype(np.float32)
    return q, scale


def int8_sums(a_q, w_q):
    """a_q (M, K) int8 · w_q (N, K) int8ᵀ -> (M, N) int32, exact."""
    return a_q.astype(np.int32) @ w_q.astype(np.int32).T


def dequantize(sums, scale_a, scale_w):
    """float32(sums) · scale_a[r] · scale_w[j], in this order, float32."""
    return (sums.astype(np.float32) * scale_a[:, None]) * scale_w[None, :]


def matmul_int8(a, b):
    """a (M, K) · b (K, N), both float32, in precision "int8": a quantized per
    row, b per column (b is Wᵀ: per row of W), exact int32 sums, float32
    epilogue. Returns float32 (M, N)."""
    a_q, s_a = quantize_rows(a)
    w_q, s_w = quantize_rows(np.asarray(b, dtype=np.float32).T)
    return dequantize(int8_sums(a_q, w_q), s_a, s_w)


def int8_error_bound(a, W):
    """The bound above, (M, N) float64, for the product a (M, K) · W (N, K)ᵀ
    in precision "int8" against the exact product."""
    a = np.asarray(a, dtype=np.float32)
    W = np.asarray(W, dtype=np.float32)
    _, s_a = quantize_rows(a)
    w_q, s_w = quantize_rows(W)
    w_hat = np.abs(w_q.astype(np.float64)).sum(axis=1) * s_w.astype(np.float64)  # Σ_k |Ŵ[j, k]|
    a_abs = np.abs(a.astype(np.float64)).sum(axis=1)
    return s_a.astype(np.float64)[:, None] / 2 * w_hat[None, :] + s_w.astype(np.float64)[None, :] / 2 * a_abs[:, None]
