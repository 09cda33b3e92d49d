"""seqcore._core.gemm, c = alpha * op(a) @ op(b) + beta * c, on every
instruction set this CPU runs (oracle: NumPy's matmul in float64)."""

import numpy as np
import pytest

from seqcore import _core

ISAS = _core.isas()
DTYPES = [np.float32, np.float64]

# Sizes around every ISA's register tile (MR rows: 4, 6, 8; NR columns: 8,
# 16, 24, 48), its K blocks (at most 256, 512 or 1024 deep), its M blocks (48,
# 64 rows) and its N panels (1024 to 2048 columns); odd and prime sizes.
SHAPES = [
    (1, 1, 1),
    (1, 1, 300),
    (1, 37, 5),
    (1, 100, 1030),  # one row: a vector-matrix product, B not packed
    (23, 1, 9),
    (1000, 1, 300),  # one column: the same, transposed
    (2, 3, 4),
    (5, 7, 11),
    (7, 15, 13),
    (8, 48, 16),
    (9, 49, 17),
    (13, 25, 31),
    (17, 97, 255),
    (37, 23, 257),
    (47, 61, 513),
    (49, 47, 1030),
    (65, 41, 67),
    (131, 127, 129),
    (3, 4100, 7),  # more columns than one packed B panel
]


def shape_id(shape):
    return "x".join(str(s) for s in shape)


@pytest.fixture
def restore_threads():
    before = _core.get_num_threads()
    yield
    _core.set_num_threads(before)


def operands(M, N, K, dtype, trans_a=False, trans_b=False, seed=0):
    """a, b and c with op(a): (M, K), op(b): (K, N), c: (M, N)."""
    rng = np.random.default_rng(seed + 1000 * M + 10 * N + K)
    a = rng.standard_normal((K, M) if trans_a else (M, K)).astype(dtype)
    b = rng.standard_normal((N, K) if trans_b else (K, N)).astype(dtype)
    c = rng.standard_normal((M, N)).astype(dtype)
    return a, b, c


def expected(a, b, c, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    """The product in float64, and a bound on each element's size: the sum of
    the magnitudes of its terms."""
    a64 = a.astype(np.float64).T if trans_a else a.astype(np.float64)
    b64 = b.astype(np.float64).T if trans_b else b.astype(np.float64)
    value = alpha * (a64 @ b64)
    scale = abs(alpha) * (np.abs(a64) @ np.abs(b64))
    if beta != 0:
        value = value + beta * c.astype(np.float64)
        scale = scale + abs(beta) * np.abs(c.astype(np.float64))
    return value, scale


def assert_close(got, a, b, c, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    """Element by element, |error| <= tol * (sum of |terms|): tol is 1e-5 *
    sqrt(K) in float32 and 1e-12 in float64."""
    want, scale = expected(a, b, c, trans_a, trans_b, alpha, beta)
    K = a.shape[0] if trans_a else a.shape[1]
    tol = 1e-5 * np.sqrt(max(K, 1)) if got.dtype == np.float32 else 1e-12
    err = np.abs(got.astype(np.float64) - want)
    bad = err > tol * scale + np.finfo(got.dtype).tiny
    assert not bad.any(), f"{bad.sum()} elements off; worst error {err.max():.3g}"


def run_gemm(a, b, c, **kwargs):
    out = c.copy()
    _core.gemm(a, b, out, **kwargs)
    return out


# ---------------------------------------------------------------------------
# results


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_product_matches_numpy_for_edge_and_odd_shapes(isa, dtype, shape):
    a, b, c = operands(*shape, dtype)
    assert_close(run_gemm(a, b, c), a, b, c)


@pytest.mark.parametrize("trans_b", [False, True], ids=["b", "bT"])
@pytest.mark.parametrize("trans_a", [False, True], ids=["a", "aT"])
@pytest.mark.parametrize(
    "shape", [(1, 1, 1), (1, 70, 300), (70, 1, 300), (13, 33, 17), (70, 45, 300)], ids=shape_id
)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_transposed_operands_are_read_as_their_transposes(isa, dtype, shape, trans_a, trans_b):
    a, b, c = operands(*shape, dtype, trans_a, trans_b)
    got = run_gemm(a, b, c, trans_a=trans_a, trans_b=trans_b)
    assert_close(got, a, b, c, trans_a, trans_b)


@pytest.mark.parametrize("alpha, beta", [(2.5, 0.0), (1.0, 1.0), (-0.5, 3.0), (1.0, -1.0)])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_alpha_scales_the_product_and_beta_scales_c(isa, dtype, alpha, beta):
    a, b, c = operands(29, 35, 2100, dtype)  # several K blocks: beta applies once
    assert_close(run_gemm(a, b, c, alpha=alpha, beta=beta), a, b, c, alpha=alpha, beta=beta)


@pytest.mark.parametrize("trans_a", [False, True], ids=["a", "aT"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_beta_zero_does_not_read_c(isa, dtype, trans_a):
    """NaN in c must not leak into the result when beta == 0."""
    a, b, c = operands(19, 37, 300, dtype, trans_a)
    c[:] = np.nan
    got = run_gemm(a, b, c, trans_a=trans_a, alpha=1.5)
    assert_close(got, a, b, c, trans_a, alpha=1.5)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_zero_k_gives_beta_times_c(isa, dtype):
    a, b, c = operands(5, 6, 0, dtype)
    np.testing.assert_array_equal(run_gemm(a, b, c, beta=2.0), 2 * c)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_zero_k_with_beta_zero_gives_zeros_even_over_nan(isa, dtype):
    a, b, c = operands(5, 6, 0, dtype)
    c[:] = np.nan
    np.testing.assert_array_equal(run_gemm(a, b, c), np.zeros_like(c))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_alpha_zero_gives_beta_times_c_without_reading_a_or_b(isa, dtype):
    """As in BLAS: alpha == 0 skips the product, so NaN in a does not leak."""
    a, b, c = operands(7, 9, 4, dtype)
    a[:] = np.nan
    np.testing.assert_array_equal(run_gemm(a, b, c, alpha=0.0, beta=0.5), 0.5 * c)


@pytest.mark.parametrize("shape", [(0, 5, 3), (4, 0, 3), (0, 0, 0)], ids=shape_id)
def test_empty_output_is_accepted_and_left_empty(isa, shape):
    a, b, c = operands(*shape, np.float32)
    got = run_gemm(a, b, c, beta=1.0)
    assert got.shape == shape[:2]


# ---------------------------------------------------------------------------
# threads


@pytest.mark.parametrize(
    "shape, trans_a, trans_b",
    [
        ((300, 200, 90), False, False),  # rows split between threads
        ((5, 3000, 100), False, False),  # columns split between threads
        ((131, 67, 2100), True, False),  # weight-gradient layout, several K blocks
        ((97, 150, 260), False, True),  # input-projection layout
        ((1, 5000, 300), False, False),  # one row
        ((1, 5000, 300), True, True),  # one row, both transposed
        ((5000, 1, 300), False, False),  # one column
    ],
    ids=["rows", "columns", "aT", "bT", "one-row", "one-row-aT-bT", "one-column"],
)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_result_is_bitwise_the_same_for_any_thread_count(
    isa, restore_threads, dtype, shape, trans_a, trans_b
):
    a, b, c = operands(*shape, dtype, trans_a, trans_b)
    results = []
    for threads in (1, 2, 3):
        _core.set_num_threads(threads)
        results.append(run_gemm(a, b, c, trans_a=trans_a, trans_b=trans_b, alpha=0.7, beta=0.3))
    bits = [r.view(np.uint32 if dtype == np.float32 else np.uint64) for r in results]
    np.testing.assert_array_equal(bits[0], bits[1])
    np.testing.assert_array_equal(bits[0], bits[2])


# ---------------------------------------------------------------------------
# bad input (checked in csrc/bindings/ before any kernel runs)


def test_integer_arrays_are_a_type_error():
    a = np.ones((2, 3), np.int32)
    with pytest.raises(TypeError, match="a: expected a float32 array"):
        _core.gemm(a, np.ones((3, 4), np.float32), np.zeros((2, 4), np.float32))


def test_float16_arrays_are_a_type_error():
    c = np.zeros((2, 4), np.float16)
    with pytest.raises(TypeError, match="expected a float32 array"):
        _core.gemm(np.ones((2, 3), np.float16), np.ones((3, 4), np.float16), c)


def test_mixed_float32_and_float64_is_a_type_error():
    with pytest.raises(TypeError, match="b: expected a float64 array"):
        _core.gemm(np.ones((2, 3)), np.ones((3, 4), np.float32), np.zeros((2, 4)))


def test_non_contiguous_input_is_a_value_error():
    a = np.ones((3, 2), np.float32).T
    with pytest.raises(ValueError, match="a: expected a C-contiguous array"):
        _core.gemm(a, np.ones((3, 4), np.float32), np.zeros((2, 4), np.float32))


def test_non_contiguous_output_is_a_value_error():
    c = np.zeros((2, 8), np.float32)[:, ::2]
    with pytest.raises(ValueError, match="c: expected a C-contiguous array"):
        _core.gemm(np.ones((2, 3), np.float32), np.ones((3, 4), np.float32), c)


def test_read_only_output_is_a_value_error():
    c = np.zeros((2, 4), np.float32)
    c.flags.writeable = False
    with pytest.raises(ValueError, match="c: the array is read-only"):
        _core.gemm(np.ones((2, 3), np.float32), np.ones((3, 4), np.float32), c)


@pytest.mark.parametrize(
    "a_shape, b_shape, c_shape, trans_a",
    [((2, 3), (4, 4), (2, 4), False), ((2, 3), (3, 4), (3, 4), False),
     ((2, 3), (3, 5), (2, 4), False), ((2, 3), (3, 4), (2, 4), True)],
    ids=["inner", "rows", "columns", "transposed-inner"],
)
def test_shapes_that_do_not_agree_are_a_value_error(a_shape, b_shape, c_shape, trans_a):
    a, b, c = (np.ones(s, np.float32) for s in (a_shape, b_shape, c_shape))
    with pytest.raises(ValueError, match="gemm: shapes do not agree"):
        _core.gemm(a, b, c, trans_a=trans_a)


def test_one_dimensional_arrays_are_a_value_error():
    with pytest.raises(ValueError, match="a: expected 2 dimensions"):
        _core.gemm(np.ones(3, np.float32), np.ones((3, 4), np.float32),
                   np.zeros((1, 4), np.float32))
