"""seqcore._core.sigmoid and seqcore._core.tanh, the vector code that the
cells fuse into their time loops, on every instruction set this CPU runs.

Oracles: for float32, the functions evaluated in float64 by NumPy (their own
error, ~1e-16, is 2^-29 of a float32 ulp); for float64, the functions
evaluated in np.longdouble (x86 80-bit, 64-bit mantissa). `pytest -s` prints
the measured maxima. The bounds here are the ones activations.h documents.
"""

import functools
import warnings

import numpy as np
import pytest

from seqcore import _core

ISAS = _core.isas()
DTYPES = [np.float32, np.float64]
FUNCS = ["sigmoid", "tanh"]

# Enforced bounds: ulps of the exact value, for results that are normal
# numbers (ulp(v) = 2^(floor(log2|v|) - 23), resp. - 52); and the absolute
# error over the whole range: one ulp of 1 (float32), two (float64).
MAX_ULP = {np.float32: 4.0, np.float64: 4.0}
MAX_ABS = {np.float32: 2.0**-23, np.float64: 2.0**-51}

LONGDOUBLE_IS_EXTENDED = np.finfo(np.longdouble).nmant >= 63


def native(name):
    return getattr(_core, name)


# ---------------------------------------------------------------------------
# samples of the whole range and exact references


def float32_sample():
    """About 4.5M float32 values (NaNs dropped):
    - every 4099th bit pattern of all 2^32: every binade of both signs,
      subnormals and infinities included (~8000 values per binade);
    - every 97th float32 in [2^-12, 20] and its negative, where both functions
      are neither x nor saturated;
    - every float32 in [-88, -87] (sigmoid's last normal results) and every
      8th in [8, 10] (tanh reaching 1).
    """
    bits = np.arange(0, 2**32, 4099, dtype=np.uint64).astype(np.uint32)
    lo, hi = np.float32(2.0**-12).view(np.uint32), np.float32(20.0).view(np.uint32)
    mid = np.arange(lo, hi + 1, 97, dtype=np.uint32)
    sig_lo = np.arange(np.float32(87.0).view(np.uint32), np.float32(88.0).view(np.uint32) + 1,
                       dtype=np.uint32)
    tanh_hi = np.arange(np.float32(8.0).view(np.uint32), np.float32(10.0).view(np.uint32) + 1, 8,
                        dtype=np.uint32)
    pos = np.concatenate([mid, tanh_hi]).view(np.float32)
    x = np.concatenate([bits.view(np.float32), pos, -pos, -sig_lo.view(np.float32)])
    return x[~np.isnan(x)]


def float64_sample():
    """About 2.1M float64 values (seeded):
    - 2^20 bit patterns, one at random in each of 2^20 equal slices of all
      2^64: every binade of both signs;
    - 2^19 uniform in [-40, 40], 2^19 log-uniform |x| in [2^-60, 2^10] with
      random signs, 2^15 uniform in [-712, -700] (sigmoid's last normals).
    """
    rng = np.random.default_rng(20240611)
    n = 2**20
    bits = (np.arange(n, dtype=np.uint64) << np.uint64(44)) + rng.integers(
        0, 2**44, n, dtype=np.uint64)
    loguni = np.exp2(rng.uniform(-60, 10, 2**19)) * rng.choice([-1.0, 1.0], 2**19)
    x = np.concatenate([bits.view(np.float64), rng.uniform(-40, 40, 2**19), loguni,
                        rng.uniform(-712, -700, 2**15)])
    return x[~np.isnan(x)]


@functools.lru_cache(maxsize=None)
def sample_and_reference(name, dtype):
    """x (dtype) and the exact f(x) in the oracle's precision."""
    if dtype is np.float32:
        x = float32_sample()
        xr = x.astype(np.float64)
    else:
        x = float64_sample()
        xr = x.astype(np.longdouble)
    with np.errstate(over="ignore"):
        ref = 1 / (1 + np.exp(-xr)) if name == "sigmoid" else np.tanh(xr)
    return x, ref


def ulp(v, dtype):
    """ulp of the exact values v (|v| in the oracle's precision)."""
    fi = np.finfo(dtype)
    _, e = np.frexp(np.abs(v))
    return np.ldexp(np.ones_like(v), np.maximum(e - 1 - fi.nmant, fi.minexp - fi.nmant))


def measure(name, dtype):
    """Max error of the native function over the sample: (ulp, abs, rel, x at max ulp)."""
    x, ref = sample_and_reference(name, dtype)
    y = native(name)(x).astype(ref.dtype)
    err = np.abs(y - ref)
    normal = np.abs(ref) >= np.finfo(dtype).tiny
    ulps = err[normal] / ulp(ref[normal], dtype)
    i = int(np.argmax(ulps))
    rel = float(np.max(err[normal] / np.abs(ref[normal])))
    return float(ulps[i]), float(err.max()), rel, float(x[normal][i]), x.size


# ---------------------------------------------------------------------------
# accuracy


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", FUNCS)
def test_error_over_the_whole_range_is_within_the_documented_bound(isa, name, dtype):
    if dtype is np.float64 and not LONGDOUBLE_IS_EXTENDED:
        pytest.skip("np.longdouble is no wider than float64 here: no float64 oracle")
    max_ulp, max_abs, max_rel, at, n = measure(name, dtype)
    print(f"\n{isa:7s} {name:8s} {np.dtype(dtype).name}: max {max_ulp:.3f} ulp "
          f"(at x = {at!r}), abs {max_abs:.3g}, rel {max_rel:.3g}, over {n} inputs")
    assert max_ulp <= MAX_ULP[dtype]
    assert max_abs <= MAX_ABS[dtype]


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_tanh_keeps_relative_accuracy_near_zero(isa, dtype):
    # tanh(x) ~ x - x^3/3: a 2 sigmoid(2x) - 1 formula would lose every digit
    # here; the bound is the same ulp bound as everywhere.
    fi = np.finfo(dtype)
    x = np.geomspace(fi.tiny, 0.5, 20000).astype(dtype)
    x = np.concatenate([x, -x])
    ref = np.tanh(x.astype(np.longdouble if dtype is np.float64 else np.float64))
    err = np.abs(_core.tanh(x).astype(ref.dtype) - ref) / ulp(ref, dtype)
    assert err.max() <= MAX_ULP[dtype]


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_sigmoid_keeps_relative_accuracy_down_to_the_smallest_normal(isa, dtype):
    # sigmoid(x) ~ e^x for x << 0: no 1 - sigmoid(-x) cancellation.
    lo = np.log(np.finfo(dtype).tiny) * 0.999999
    x = np.linspace(lo, -10, 20000).astype(dtype)
    ref = np.exp(x.astype(np.longdouble)) / (1 + np.exp(x.astype(np.longdouble)))
    err = np.abs(_core.sigmoid(x).astype(ref.dtype) - ref) / ulp(ref, dtype)
    assert err.max() <= MAX_ULP[dtype]


# ---------------------------------------------------------------------------
# special values


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_sigmoid_saturates_exactly_without_warnings(isa, dtype):
    # 1 - sigmoid(40) and sigmoid(-800) are far below half an ulp of 1 and the
    # smallest subnormal of float64, so the exact results round to 1 and 0.
    big = np.array([40, 88, 100, 800, 1e4, 1e30, np.finfo(dtype).max, np.inf], dtype)
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        hi, lo = _core.sigmoid(big), _core.sigmoid(-big)
    assert np.all(hi == 1)
    assert np.all(lo[3:] == 0) and not np.any(np.signbit(lo))


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_tanh_saturates_exactly_without_warnings(isa, dtype):
    big = np.array([20, 40, 88, 100, 1e4, 1e30, np.finfo(dtype).max, np.inf], dtype)
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        hi, lo = _core.tanh(big), _core.tanh(-big)
    assert np.all(hi == 1) and np.all(lo == -1)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_sigmoid_flushes_subnormal_results_to_zero(isa, dtype):
    # Below ln(smallest normal) the exact value is subnormal; it becomes +0
    # (absolute error < smallest normal), never a subnormal or a negative.
    tiny = np.finfo(dtype).tiny
    x = np.linspace(np.log(tiny) * 1.000001, np.log(tiny) * 1.3, 1000).astype(dtype)
    y = _core.sigmoid(x)
    assert np.all(y == 0) and not np.any(np.signbit(y))


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", FUNCS)
def test_nan_gives_nan(isa, name, dtype):
    x = np.array([np.nan, 0.5, -np.nan, 3.0, np.nan], dtype)
    y = native(name)(np.tile(x, 7))  # NaNs in every lane position of a vector
    assert np.array_equal(np.isnan(y), np.isnan(np.tile(x, 7)))


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_tanh_is_odd(isa, dtype):
    x, _ = sample_and_reference("tanh", dtype)
    x = np.concatenate([x[x > 0], [0.0]]).astype(dtype)  # +0 -> -0 as well
    assert np.array_equal(_core.tanh(-x), -_core.tanh(x))
    assert np.array_equal(np.signbit(_core.tanh(-x)), ~np.signbit(_core.tanh(x)))


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_subnormal_inputs_give_tanh_x_and_sigmoid_one_half(isa, dtype):
    fi = np.finfo(dtype)
    x = np.array([fi.smallest_subnormal, 3 * fi.smallest_subnormal, fi.tiny / 3, fi.tiny / 2], dtype)
    x = np.concatenate([x, -x])
    assert np.array_equal(_core.tanh(x), x)
    assert np.all(_core.sigmoid(x) == 0.5)


# ---------------------------------------------------------------------------
# sizes


@pytest.mark.parametrize("n", [0, 1, 15, 17, 33])
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", FUNCS)
def test_partial_vectors_match_full_ones(isa, name, dtype, n):
    # Sizes that are not multiples of any vector width (1, 4, 8, 16 lanes):
    # the tail goes through the partial load/store and must give the values
    # the same inputs give in full vectors.
    x = np.random.default_rng(n).uniform(-12, 12, 64).astype(dtype)
    f = native(name)
    y = f(x[:n].copy())
    assert y.shape == (n,) and y.dtype == dtype
    assert np.array_equal(y, f(x)[:n])


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", FUNCS)
def test_output_keeps_the_input_shape(isa, name, dtype):
    x = np.linspace(-5, 5, 3 * 5 * 7, dtype=dtype).reshape(3, 5, 7)
    y = native(name)(x)
    assert y.shape == x.shape and y.dtype == dtype
    assert np.array_equal(y.ravel(), native(name)(x.ravel()))
