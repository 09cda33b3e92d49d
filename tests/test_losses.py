"""seqcore.nn's losses and softmax helpers. Oracles: central finite differences
in float64 for every gradient, the textbook formulas, torch (when installed)."""

import warnings

import numpy as np
import pytest

from gradcheck import assert_close_to_numerical, numerical_gradient
from seqcore.nn import (CrossEntropyLoss, MSELoss, log_softmax, mean_squared_error, softmax,
                        softmax_cross_entropy)


def rand(*shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def textbook_cross_entropy(logits, targets):
    """-log(e^z_t / Σ e^z), position by position, then the mean (small logits only)."""
    z = logits.reshape(-1, logits.shape[-1])
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return float(np.mean(-np.log(p[np.arange(len(z)), targets.reshape(-1)])))


# ---------------------------------------------------------------------------
# cross-entropy: values and gradients


def test_cross_entropy_matches_textbook_formula():
    logits, targets = rand(4, 3, 6), np.random.default_rng(1).integers(0, 6, (4, 3))
    loss, _ = softmax_cross_entropy(logits, targets)
    assert isinstance(loss, float)
    assert loss == pytest.approx(textbook_cross_entropy(logits, targets), rel=1e-13)
    total, _ = softmax_cross_entropy(logits, targets, reduction="sum")
    assert total == pytest.approx(12 * loss, rel=1e-13)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_gradient_matches_finite_differences(reduction):
    """With ignored and masked positions among the counted ones."""
    logits = rand(3, 2, 5, seed=2)
    targets = np.array([[0, 4], [-100, 2], [3, 3]])
    mask = np.array([[1, 1], [1, 1], [0, 1]])
    kwargs = dict(ignore_index=-100, mask=mask, reduction=reduction)
    _, dlogits = softmax_cross_entropy(logits, targets, **kwargs)
    num = numerical_gradient(lambda: softmax_cross_entropy(logits, targets, **kwargs)[0], logits)
    assert_close_to_numerical(dlogits, num)


def test_cross_entropy_ignored_and_masked_positions_count_for_nothing():
    """Oracle: the same loss over the counted positions alone."""
    logits = rand(5, 4, seed=3)
    targets = np.array([1, 0, 3, 2, 2])
    mask = np.array([True, True, False, True, True])
    loss, dlogits = softmax_cross_entropy(logits, targets, ignore_index=2, mask=mask)
    counted = np.array([0, 1])
    alone, dalone = softmax_cross_entropy(logits[counted], targets[counted])
    assert loss == pytest.approx(alone, rel=1e-14)  # the mean is over the 2 counted positions
    np.testing.assert_allclose(dlogits[counted], dalone, rtol=1e-14)
    assert not dlogits[2:].any()


def test_cross_entropy_with_nothing_counted_is_zero_without_nan():
    logits = rand(2, 3, 4)
    targets = np.full((2, 3), 7)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, dlogits = softmax_cross_entropy(logits, targets, ignore_index=7)
        empty, _ = softmax_cross_entropy(np.zeros((0, 4)), np.zeros(0, int))
    assert loss == 0.0 and empty == 0.0
    assert not dlogits.any() and dlogits.shape == logits.shape


def test_cross_entropy_is_stable_for_huge_logits():
    """No overflow or warning at ±1e4; oracle: the exact values 0 and 2e4."""
    logits = np.array([[1e4, -1e4], [1e4, -1e4]], np.float32)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        loss0, d0 = softmax_cross_entropy(logits, np.array([0, 0]))
        loss1, d1 = softmax_cross_entropy(logits, np.array([1, 1]))
    assert loss0 == 0.0 and loss1 == pytest.approx(2e4, rel=1e-7)
    np.testing.assert_array_equal(d0, 0)
    np.testing.assert_allclose(d1, [[0.5, -0.5], [0.5, -0.5]])


def test_cross_entropy_keeps_the_dtype_and_shape_of_logits():
    logits = rand(3, 2, 5, dtype=np.float32)
    _, dlogits = softmax_cross_entropy(logits, np.zeros((3, 2), np.int32))
    assert dlogits.dtype == np.float32 and dlogits.shape == (3, 2, 5)


def test_cross_entropy_leaves_the_mask_alone():
    mask = np.array([True, True])
    softmax_cross_entropy(rand(2, 3), np.array([0, 1]), ignore_index=1, mask=mask)
    np.testing.assert_array_equal(mask, [True, True])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_matches_torch_with_ignore_index(reduction, dtype):
    torch = pytest.importorskip("torch")
    logits = rand(5, 3, 7, seed=4, dtype=dtype) * 3
    targets = np.random.default_rng(5).integers(0, 7, (5, 3))
    targets[[0, 2, 4], [1, 0, 2]] = -100
    loss, dlogits = softmax_cross_entropy(logits, targets, ignore_index=-100, reduction=reduction)
    z = torch.tensor(logits, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(z.reshape(-1, 7), torch.tensor(targets).reshape(-1),
                                            ignore_index=-100, reduction=reduction)
    ref.backward()
    tol = 1e-6 if dtype == np.float32 else 1e-13
    assert loss == pytest.approx(ref.item(), rel=tol)
    np.testing.assert_allclose(dlogits, z.grad.numpy(), rtol=tol, atol=tol)


def test_cross_entropy_class_wraps_the_function():
    logits, targets = rand(3, 4), np.array([0, 3, 3])
    loss, grad = CrossEntropyLoss(ignore_index=3, reduction="sum")(logits, targets)
    ref = softmax_cross_entropy(logits, targets, ignore_index=3, reduction="sum")
    assert loss == ref[0]
    np.testing.assert_array_equal(grad, ref[1])


# ---------------------------------------------------------------------------
# cross-entropy: arguments


def test_cross_entropy_rejects_targets_out_of_range_where_counted():
    logits = rand(3, 4)
    with pytest.raises(ValueError, match=r"targets: expected values in \[0, V\) = \[0, 4\)"):
        softmax_cross_entropy(logits, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match="targets: expected values"):
        softmax_cross_entropy(logits, np.array([0, -1, 1]))
    # out of range but ignored or masked: fine
    softmax_cross_entropy(logits, np.array([0, -1, 9]), ignore_index=-1, mask=np.array([1, 1, 0]))


def test_cross_entropy_rejects_bad_arguments_naming_them():
    logits = rand(3, 4)
    with pytest.raises(ValueError, match="targets: expected the leading shape"):
        softmax_cross_entropy(logits, np.array([0, 1]))
    with pytest.raises(TypeError, match="targets: expected integers"):
        softmax_cross_entropy(logits, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(TypeError, match="logits: expected a numpy.ndarray"):
        softmax_cross_entropy([[0.0, 1.0]], np.array([0]))
    with pytest.raises(TypeError, match="logits: expected dtype"):
        softmax_cross_entropy(np.zeros((3, 4), np.int64), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="logits: contains NaN"):
        softmax_cross_entropy(np.full((3, 4), np.inf), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="reduction"):
        softmax_cross_entropy(logits, np.array([0, 1, 2]), reduction="none")
    with pytest.raises(ValueError, match="mask: expected the shape"):
        softmax_cross_entropy(logits, np.array([0, 1, 2]), mask=np.ones(2))
    with pytest.raises(ValueError, match="mask: expected bools or the numbers 0 and 1"):
        softmax_cross_entropy(logits, np.array([0, 1, 2]), mask=np.array([0.5, 1, 1]))
    with pytest.raises(TypeError, match="ignore_index"):
        softmax_cross_entropy(logits, np.array([0, 1, 2]), ignore_index=1.0)
    with pytest.raises(ValueError, match="reduction"):
        CrossEntropyLoss(reduction="avg")


# ---------------------------------------------------------------------------
# softmax helpers


def test_softmax_is_normalised_and_matches_the_formula():
    z = rand(3, 5)
    p = softmax(z)
    np.testing.assert_allclose(p, np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True), rtol=1e-14)
    np.testing.assert_allclose(softmax(z, axis=0).sum(axis=0), 1, rtol=1e-14)
    np.testing.assert_allclose(log_softmax(z), np.log(p), rtol=1e-13)


def test_softmax_temperature_divides_the_logits():
    z = rand(2, 6, dtype=np.float32)
    np.testing.assert_allclose(softmax(z, temperature=0.5), softmax(z * 2), rtol=1e-6)
    flat = softmax(z, temperature=1e6)
    np.testing.assert_allclose(flat, 1 / 6, rtol=1e-4)
    assert flat.dtype == np.float32
    with pytest.raises(ValueError, match="temperature"):
        softmax(z, temperature=0)


def test_softmax_is_stable_for_huge_logits():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = softmax(np.array([1e4, 0.0, -1e4], np.float32))
        logp = log_softmax(np.array([1e4, 0.0, -1e4]))
    np.testing.assert_array_equal(p, [1, 0, 0])
    np.testing.assert_array_equal(logp, [0, -1e4, -2e4])


# ---------------------------------------------------------------------------
# mean squared error


def test_mean_squared_error_matches_formula():
    pred, target = rand(3, 4), rand(3, 4, seed=1)
    loss, dpred = mean_squared_error(pred, target)
    assert loss == pytest.approx(np.mean((pred - target) ** 2), rel=1e-14)
    total, _ = mean_squared_error(pred, target, reduction="sum")
    assert total == pytest.approx(np.sum((pred - target) ** 2), rel=1e-14)
    assert dpred.shape == pred.shape


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_mean_squared_error_gradient_matches_finite_differences(reduction):
    pred, target = rand(2, 3, 2), rand(2, 3, 2, seed=1)
    _, dpred = mean_squared_error(pred, target, reduction)
    num = numerical_gradient(lambda: mean_squared_error(pred, target, reduction)[0], pred)
    assert_close_to_numerical(dpred, num)


def test_mean_squared_error_matches_torch():
    torch = pytest.importorskip("torch")
    pred, target = rand(4, 5, dtype=np.float32), rand(4, 5, seed=1, dtype=np.float32)
    loss, dpred = MSELoss()(pred, target)
    p = torch.tensor(pred, requires_grad=True)
    ref = torch.nn.functional.mse_loss(p, torch.tensor(target))
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-6)
    np.testing.assert_allclose(dpred, p.grad.numpy(), rtol=1e-6)
    assert dpred.dtype == np.float32


def test_mean_squared_error_rejects_bad_arguments_naming_them():
    with pytest.raises(ValueError, match="target: expected the shape of pred"):
        mean_squared_error(rand(3), rand(4))
    with pytest.raises(TypeError, match="pred: expected"):
        mean_squared_error([1.0], np.ones(1))
    with pytest.raises(ValueError, match="reduction"):
        MSELoss(reduction="max")
    assert mean_squared_error(np.zeros(0), np.zeros(0))[0] == 0.0


# ---------------------------------------------------------------------------
# the native kernel of softmax_cross_entropy (ops.softmax_cross_entropy_rows)
# against the NumPy code it replaced (seqcore.reference), every ISA


def _rows_case(N, V, dtype, seed=0):
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal((N, V)) * 4).astype(dtype)
    t = rng.integers(0, V, N)
    w = np.where(rng.random(N) < 0.2, 0.0, 1.0 / max(N, 1))  # some rows do not count
    return z, t, w


@pytest.mark.parametrize("N, V", [(1, 1), (3, 7), (50, 16), (3200, 68), (130, 100)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_native_cross_entropy_rows_match_the_numpy_reference(isa, N, V, dtype):
    from seqcore import ops
    z, t, w = _rows_case(N, V, dtype)
    loss, dz = ops.softmax_cross_entropy_rows(z, t, w)
    ref_loss, ref_dz = ops.softmax_cross_entropy_rows(z, t, w, backend="reference")
    assert dz.dtype == dtype and dz.shape == (N, V)
    tol = 1e-5 if dtype == np.float32 else 1e-13
    assert loss == pytest.approx(ref_loss, rel=tol, abs=tol)
    np.testing.assert_allclose(dz, ref_dz, rtol=tol, atol=tol * np.abs(ref_dz).max())
    assert np.all(dz[w == 0] == 0)


def test_native_cross_entropy_rows_give_the_same_bits_at_any_threads():
    """Rows are shared out to the threads in blocks; the loss is the blocks'
    sums added in order."""
    from seqcore import ops
    z, t, w = _rows_case(3200, 68, np.float32, seed=3)
    before = ops.get_num_threads()
    try:
        ops.set_num_threads(1)
        loss1, dz1 = ops.softmax_cross_entropy_rows(z, t, w)
        with ops._every_thread_works():  # every offered thread takes part, whatever the plan
            for n in (2, 3, 5):
                ops.set_num_threads(n)
                loss, dz = ops.softmax_cross_entropy_rows(z, t, w)
                assert loss == loss1 and np.array_equal(dz, dz1), n
    finally:
        ops.set_num_threads(before)


def test_native_cross_entropy_rows_are_stable_for_huge_and_tiny_logits():
    from seqcore import ops
    z = np.array([[1e30, 0.0, -1e30], [-200.0, -100.0, -300.0]], np.float32)
    loss, dz = ops.softmax_cross_entropy_rows(z, np.array([1, 1]), np.array([1.0, 1.0]))
    assert loss == pytest.approx(1e30 + 0.0, rel=1e-6)  # row 0: -log softmax = 1e30; row 1: ~0
    assert np.isfinite(dz).all()
    np.testing.assert_allclose(dz, [[1, -1, 0], [0, 0, 0]], atol=1e-6)


def test_native_cross_entropy_rows_reject_bad_arguments_naming_them():
    from seqcore import ops
    z = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="targets"):
        ops.softmax_cross_entropy_rows(z, np.array([0, 3]), np.ones(2))
    with pytest.raises(ValueError, match="targets, weights"):
        ops.softmax_cross_entropy_rows(z, np.array([0]), np.ones(2))
    with pytest.raises(ValueError, match="z: expected shape"):
        ops.softmax_cross_entropy_rows(np.zeros(3, np.float32), np.array([0]), np.ones(1))
    with pytest.raises(TypeError, match="z"):
        ops.softmax_cross_entropy_rows(np.zeros((2, 3), np.int32), np.array([0, 1]), np.ones(2))
