"""RNN with nonlinearity="relu" (torch.nn.RNN's): the native kernels against
the NumPy reference on every ISA this CPU has (float64, float32, and "bf16"
against the bf16 reference), padded and reversed batches, 1, 2 and 3 threads
bitwise; the reference against central differences in float64;
seqcore.nn.RNN(nonlinearity="relu") against torch.nn.RNN (skipped without
torch); bad input."""

import numpy as np
import pytest

import seqcore
from cellcases import relative_error
from gradcheck import assert_close_to_numerical, numerical_gradient
from seqcore import nn, ops

INPUTS = ("x", "h0", "W_ih", "W_hh", "b")
OUTPUTS = ("y", "hT")
TOLERANCE = {np.float64: 1e-10, np.float32: 1e-4}
SHAPES = [(1, 1, 1, 1), (5, 3, 4, 6), (7, 2, 9, 37), (3, 13, 5, 40), (4, 7, 17, 33), (2, 1, 3, 100),
          (3, 37, 20, 96)]
PADDED = {"lengths": np.array([3, 0, 5, 1, 5]), "reverse": True}


def make_inputs(T, B, D, H, dtype=np.float64, seed=0, scale=0.5):
    rng = np.random.default_rng(seed)
    shapes = {"x": (T, B, D), "h0": (B, H), "W_ih": (H, D), "W_hh": (H, H), "b": (H,)}
    return {k: (scale * rng.standard_normal(shapes[k])).astype(dtype) for k in INPUTS}


def output_weights(inputs, seed=1):
    rng = np.random.default_rng(seed)
    (T, B, _), H = inputs["x"].shape, inputs["W_hh"].shape[0]
    return {"y": rng.standard_normal((T, B, H)).astype(inputs["x"].dtype),
            "hT": rng.standard_normal((B, H)).astype(inputs["x"].dtype)}


def forward(inputs, nonlinearity="relu", **options):
    *outs, cache = ops.rnn_forward(*(inputs[k] for k in INPUTS), nonlinearity=nonlinearity, **options)
    return dict(zip(OUTPUTS, outs)), cache


def run(inputs, backend, **options):
    outs, cache = forward(inputs, backend=backend, **options)
    w = output_weights(inputs)
    return outs, dict(zip(INPUTS, ops.rnn_backward(w["y"], w["hT"], cache)))


def errors(a, b):
    (outs, grads), (ref_outs, ref_grads) = a, b
    e = {k: relative_error(outs[k], ref_outs[k]) for k in outs}
    e.update({"d" + k: relative_error(grads[k], ref_grads[k]) for k in grads})
    return e


def assert_bitwise_equal(a, b):
    for part_a, part_b in zip(a, b):
        for k in part_a:
            np.testing.assert_array_equal(part_a[k], part_b[k], err_msg=k)


def test_relu_is_not_tanh():
    """The option is honoured: some pre-activations are negative (zeros in y)
    and others above 1 (past tanh's range)."""
    inputs = make_inputs(6, 4, 5, 16, scale=1.0)
    for backend in ("native", "reference"):
        outs, cache = forward(inputs, backend=backend)
        assert cache.nonlinearity == "relu"
        assert (outs["y"] == 0).mean() > 0.2 and outs["y"].max() > 1
        tanh, _ = forward(inputs, "tanh", backend=backend)
        assert np.abs(tanh["y"]).max() < 1


@pytest.mark.parametrize("options", [{}, PADDED], ids=["full", "lengths-reverse"])
def test_reference_gradients_match_finite_differences(options):
    inputs = make_inputs(5, 5, 3, 6, seed=11)
    w = output_weights(inputs)
    _, grads = run(inputs, "reference", **options)

    def L():
        o, _ = forward(inputs, backend="reference", train=False, **options)
        return sum(float(np.sum(o[k] * w[k])) for k in OUTPUTS)

    for k in INPUTS:
        assert_close_to_numerical(grads[k], numerical_gradient(L, inputs[k]), rtol=1e-7)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "T{}B{}D{}H{}".format(*s))
@pytest.mark.parametrize("options", [{}, PADDED], ids=["full", "lengths-reverse"])
def test_native_matches_reference(shape, dtype, options, isa, threads):
    T, B, D, H = shape
    if options:
        options = dict(options, lengths=np.arange(B) % (T + 1))
    inputs = make_inputs(*shape, dtype=dtype, seed=sum(shape))
    e = errors(run(inputs, "native", **options), run(inputs, "reference", **options))
    worst = max(e, key=e.get)
    assert e[worst] < TOLERANCE[dtype], (worst, e)


@pytest.mark.parametrize("shape", [(1, 5, 9, 37), (6, 5, 12, 40), (4, 37, 20, 96), (3, 64, 16, 64)],
                         ids=lambda s: "T{}B{}D{}H{}".format(*s))
@pytest.mark.parametrize("options", [{}, PADDED], ids=["full", "lengths-reverse"])
def test_bf16_matches_the_bf16_reference(shape, options, isa, threads):
    T, B, D, H = shape
    if options:
        options = dict(options, lengths=np.arange(B) % (T + 1))
    # (small weights: a sequence of large pre-activations carries a rounding
    # difference far)
    inputs = make_inputs(*shape, dtype=np.float32, seed=sum(shape), scale=0.2)
    native = run(inputs, "native", precision="bf16", **options)
    reference = run(inputs, "reference", precision="bf16", **options)
    e = errors(native, reference)
    worst = max(e, key=e.get)
    assert e[worst] < (2e-5 if T == 1 else 5e-3), (worst, e)
    if T == 1:  # and bfloat16 is really used: float32 is far from the bf16 reference
        fp32 = run(inputs, "native", **options)
        assert max(errors(fp32, reference).values()) > 100 * e[worst]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_one_two_and_three_threads_are_bitwise_equal(precision, isa):
    inputs = make_inputs(9, 11, 21, 70, dtype=np.float32, seed=5)
    options = dict(precision=precision, lengths=np.array([9, 3, 0, 9, 8, 1, 2, 9, 5, 4, 7]), reverse=True)
    with ops._every_thread_works():  # (the plan would keep a call this small on one thread)
        results = [run(inputs, "native", num_threads=n, **options) for n in (1, 2, 3)]
    assert_bitwise_equal(results[0], results[1])
    assert_bitwise_equal(results[0], results[2])


def test_inference_matches_training_forward():
    inputs = make_inputs(300, 3, 5, 20, dtype=np.float32)
    infer, cache = forward(inputs, train=False, lengths=np.array([300, 17, 0]))
    assert cache is None
    train, _ = forward(inputs, train=True, lengths=np.array([300, 17, 0]))
    for k in infer:
        np.testing.assert_array_equal(infer[k], train[k], err_msg=k)


@pytest.mark.parametrize("bad", ["sigmoid", "ReLU", None, 1])
def test_other_nonlinearities_are_refused_naming_the_argument(bad):
    inputs = make_inputs(2, 2, 3, 4)
    with pytest.raises(ValueError, match="^nonlinearity: expected 'tanh' or 'relu'"):
        forward(inputs, bad)
    with pytest.raises(ValueError, match="^nonlinearity: expected 'tanh' or 'relu'"):
        nn.RNN(3, 4, nonlinearity=bad)
    with pytest.raises(TypeError):
        nn.LSTM(3, 4, nonlinearity="relu")
    from seqcore.nn.recurrent import stack_forward
    with pytest.raises(ValueError, match="^nonlinearity: only an RNN"):
        stack_forward("gru", {}, inputs["x"], [None], num_layers=1, directions=1, nonlinearity="relu")


@pytest.mark.parametrize("padded", [False, True], ids=["full", "padded"])
@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, True), (3, False)])
def test_layer_matches_torch(num_layers, bidirectional, padded):
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    torch.manual_seed(0)
    theirs = torch.nn.RNN(5, 9, num_layers=num_layers, bidirectional=bidirectional, nonlinearity="relu").double()
    ours = nn.RNN(5, 9, num_layers=num_layers, bidirectional=bidirectional, nonlinearity="relu", dtype=np.float64)
    ours.load_torch_state_dict(theirs.state_dict())
    T, B, dirs = 6, 5, 2 if bidirectional else 1
    rng = np.random.default_rng(4)
    x, h0 = rng.standard_normal((T, B, 5)), rng.standard_normal((num_layers * dirs, B, 9))
    lengths = np.array([6, 2, 5, 1, 6]) if padded else None
    dy, dh = rng.standard_normal((T, B, 9 * dirs)), rng.standard_normal(h0.shape)
    if padded:
        dy[np.arange(T)[:, None] >= lengths[None, :]] = 0

    tx, th0 = torch.tensor(x, requires_grad=True), torch.tensor(h0, requires_grad=True)
    inp = pack_padded_sequence(tx, torch.tensor(lengths), enforce_sorted=False) if padded else tx
    ty, thT = theirs(inp, th0)
    if padded:
        ty = pad_packed_sequence(ty, total_length=T)[0]
    ((ty * torch.tensor(dy)).sum() + (thT * torch.tensor(dh)).sum()).backward()

    y, hT = ours.forward(x, h0, lengths=lengths)
    dx = ours.backward(dy, dh)
    worst = {"y": relative_error(y, ty.detach().numpy()), "hT": relative_error(hT, thT.detach().numpy()),
             "dx": relative_error(dx, tx.grad.numpy()), "dh0": relative_error(ours.state_grad, th0.grad.numpy())}
    for name, p in theirs.named_parameters():
        worst["d" + name] = relative_error(ours.grads[name], p.grad.numpy())
    assert max(worst.values()) < 1e-10, worst


def test_layer_gradients_match_finite_differences():
    layer = nn.RNN(3, 5, num_layers=2, bidirectional=True, nonlinearity="relu", dtype=np.float64, seed=1)
    report = seqcore.gradcheck(layer, np.random.default_rng(2).standard_normal((4, 3, 3)), lengths=[4, 2, 3])
    assert report, report


def test_a_language_model_refuses_a_relu_rnn():
    model = nn.LanguageModel(10, 4, 8, num_layers=1, cell="rnn")
    with pytest.raises(ValueError, match="^rnn: .* nonlinearity='relu'"):
        model.rnn = nn.RNN(4, 8, nonlinearity="relu")
