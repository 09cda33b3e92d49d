"""bfloat16 products with float32 sums (precision "bf16"), in NumPy.

``round_bf16`` rounds float32 to the nearest bfloat16 (ties to even), as
AVX512-BF16's vcvtneps2bf16 and torch do, with the instruction's treatment of
denormals (flushed to zero of their sign); NaN stays NaN, values past the
largest bfloat16 become infinite. The result is float32 (NumPy has no
bfloat16). ``matmul_for("bf16")`` multiplies the rounded operands in float32:
every product of two bfloat16 is exact in float32, so only the order of the
sums differs from the native kernels'.
"""

import numpy as np

from .int8 import matmul_int8


def round_bf16(a):
    """a (float32, any shape) rounded to bfloat16, as float32."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    tiny = (u & 0x7F800000) == 0  # zero or denormal
    bits = np.where(nan, (u >> 16) | 0x40, np.where(tiny, (u >> 16) & 0x8000, rounded))
    return (bits.astype(np.uint32) << 16).view(np.float32).reshape(np.shape(a))


def matmul_bf16(a, b):
    """round_bf16(a) @ round_bf16(b), summed in float32."""
    return round_bf16(a) @ round_bf16(b)


def matmul_for(precision: str):
    """The product of a precision: np.matmul for "fp32", matmul_bf16 for
    "bf16", int8.matmul_int8 for "int8" (its second operand is Wᵀ)."""
    if precision == "int8":
        return matmul_int8
    return matmul_bf16 if precision == "bf16" else np.matmul
