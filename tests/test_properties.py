"""Property tests (hypothesis) over shapes and values.

- The native cells equal the NumPy reference for any sizes (empty ones too),
  padded lengths, direction and dtype.
- A padded batch is its sequences run one by one.
- Any array, of any dtype and shape, given as any argument of a cell or of
  matmul gives a result or TypeError / ValueError, nothing else.
- seqcore's matrix product equals NumPy's for any shapes, transposes and
  memory layouts.
- Cross-entropy is finite with rows of its gradient summing to 0 for any
  finite logits, however large.
- Text: decode(encode(text)) is the text; stream batches' targets are the
  inputs one step later.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cellcases import CELLS, GATES, backward, forward, input_names, output_names

from seqcore import nn, ops
from seqcore.text import Vocabulary, stream_batches

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DTYPES = st.sampled_from([np.float32, np.float64])


@st.composite
def cell_problems(draw):
    """(cell, inputs, lengths, reverse): sizes 0 to 6, values standard normal."""
    cell = draw(st.sampled_from(CELLS))
    T, B, D, H = (draw(st.integers(0, 6)) for _ in range(4))
    dtype = draw(DTYPES)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    G = GATES[cell]
    shapes = {"x": (T, B, D), "h0": (B, H), "c0": (B, H), "W_ih": (G * H, D), "W_hh": (G * H, H),
              "b": (G * H,), "b_ih": (G * H,), "b_hh": (G * H,)}
    inputs = {k: rng.standard_normal(shapes[k]).astype(dtype) for k in input_names(cell)}
    lengths = draw(st.none() | st.lists(st.integers(0, T), min_size=B, max_size=B))
    return cell, inputs, lengths, draw(st.booleans())


def output_gradients(cell, outs, seed=1):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(outs[k].shape).astype(outs[k].dtype) for k in output_names(cell)}


@SETTINGS
@given(cell_problems())
def test_native_equals_the_reference_for_any_sizes(problem):
    cell, inputs, lengths, reverse = problem
    native, cache = forward(cell, inputs, lengths=lengths, reverse=reverse)
    ref, ref_cache = forward(cell, inputs, backend="reference", lengths=lengths, reverse=reverse)
    douts = output_gradients(cell, native)
    grads, ref_grads = backward(cell, douts, cache), backward(cell, douts, ref_cache)
    tol = 1e-4 if inputs["x"].dtype == np.float32 else 1e-10
    for got, want in [(native[k], ref[k]) for k in native] + [(grads[k], ref_grads[k]) for k in grads]:
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(1.0, float(np.abs(want).max(initial=0))))


@SETTINGS
@given(cell_problems())
def test_a_padded_batch_is_its_sequences_run_one_by_one(problem):
    cell, inputs, lengths, reverse = problem
    T, B = inputs["x"].shape[:2]
    assume(lengths is not None and B > 0)
    outs, _ = forward(cell, inputs, lengths=lengths, reverse=reverse, train=False)
    for b, n in enumerate(lengths):
        alone = {k: v[:n, b:b + 1] if k == "x" else v[b:b + 1] if k in ("h0", "c0") else v
                 for k, v in inputs.items()}
        one, _ = forward(cell, alone, reverse=reverse, train=False)
        tol = 1e-5 if inputs["x"].dtype == np.float32 else 1e-12
        np.testing.assert_allclose(outs["y"][:n, b], one["y"][:, 0], rtol=tol, atol=tol)
        assert not outs["y"][n:, b].any()  # zeros past the end
        for k in output_names(cell)[1:]:
            np.testing.assert_allclose(outs[k][b], one[k][0], rtol=tol, atol=tol)


ANY_ARRAY = hnp.arrays(dtype=st.sampled_from([np.float32, np.float64, np.float16, np.int64, np.bool_,
                                              np.complex128]),
                       shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4),
                       elements=None)


@SETTINGS
@given(cell_problems(), st.data(), ANY_ARRAY | st.none() | st.integers() | st.text(max_size=3))
def test_any_value_as_any_argument_gives_a_result_or_a_clear_error(problem, data, value):
    cell, inputs, lengths, reverse = problem
    name = data.draw(st.sampled_from(input_names(cell) + ("lengths",)))
    if name == "lengths":
        lengths = value
    else:
        inputs[name] = value
    try:
        outs, cache = forward(cell, inputs, lengths=lengths, reverse=reverse)
        backward(cell, output_gradients(cell, outs), cache)
    except (TypeError, ValueError) as e:
        assert str(e).split(":")[0] in input_names(cell) + ("lengths", "dy", "dhT", "dcT"), str(e)
    else:
        assert all(np.isfinite(v).all() for v in outs.values())


@st.composite
def layouts(draw, shape, dtype):
    """A float array of `shape`: C order, Fortran order, or a negative-stride view."""
    rng = np.random.default_rng(draw(st.integers(0, 1000)))
    a = rng.standard_normal(shape).astype(dtype)
    kind = draw(st.sampled_from(["c", "f", "reversed"]))
    if kind == "f":
        return np.asfortranarray(a)
    if kind == "reversed":
        return np.ascontiguousarray(a[::-1])[::-1]
    return a


@SETTINGS
@given(st.integers(0, 40), st.integers(0, 40), st.integers(0, 40), st.booleans(), st.booleans(), DTYPES,
       st.data())
def test_matmul_equals_numpy_for_any_shapes_and_layouts(M, N, K, trans_a, trans_b, dtype, data):
    a = data.draw(layouts((K, M) if trans_a else (M, K), dtype))
    b = data.draw(layouts((N, K) if trans_b else (K, N), dtype))
    want = (a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b).astype(np.float64)
    got = ops.matmul(a, b, trans_a=trans_a, trans_b=trans_b)
    assert got.shape == (M, N) and got.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(1, K))


@SETTINGS
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=6),
                  elements=st.floats(-1e300, 1e300)), st.integers(0, 2**32 - 1))
def test_cross_entropy_is_finite_for_any_finite_logits(logits, seed):
    V = logits.shape[-1]
    targets = np.random.default_rng(seed).integers(0, V, logits.shape[:-1])
    loss, dlogits = nn.softmax_cross_entropy(logits, targets)
    assert np.isfinite(loss) and loss >= 0
    assert np.isfinite(dlogits).all()
    np.testing.assert_allclose(dlogits.sum(axis=-1), 0, atol=1e-12)


@SETTINGS
@given(st.text(min_size=1, max_size=200))
def test_char_decode_of_encode_is_the_text(text):
    vocab = Vocabulary.from_text(text)
    assert vocab.decode(vocab.encode(text)) == text


@SETTINGS
@given(st.integers(2, 400), st.integers(1, 8), st.integers(1, 20), st.integers(0, 2**32 - 1))
def test_stream_targets_are_the_inputs_one_step_later(n, batch_size, seq_len, seed):
    ids = np.random.default_rng(seed).integers(0, 50, n)
    try:
        batches = list(stream_batches(ids, batch_size, seq_len))
    except ValueError as e:  # too short for batch_size streams of 2 tokens
        assert "batch_size" in str(e) and n // batch_size < 2
        return
    streams = ids[: (n // batch_size) * batch_size].reshape(batch_size, -1)
    t = 0
    for x, y in batches:
        assert x.shape == y.shape and x.shape[1] == batch_size and x.shape[0] <= seq_len
        np.testing.assert_array_equal(x.T, streams[:, t:t + x.shape[0]])
        np.testing.assert_array_equal(y.T, streams[:, t + 1:t + 1 + x.shape[0]])
        t += x.shape[0]
    assert t == streams.shape[1] - 1  # every input with a target, none left out


if __name__ == "__main__":
    pytest.main([__file__, "-q"])
