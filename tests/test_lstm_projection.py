"""LSTM with a projection (torch.nn.LSTM's proj_size: h_t = (o_t ⊙ tanh(c_t))
W_hrᵀ): the native kernels against the NumPy reference on every ISA this CPU
has (float64, float32, and "bf16" against the bf16 reference), padded and
reversed batches, 1, 2 and 3 threads bitwise; the reference against central
differences in float64; seqcore.nn.LSTM(proj_size=P) against
torch.nn.LSTM(proj_size=P) (skipped without torch); bad input."""

import numpy as np
import pytest

import seqcore
from cellcases import relative_error
from gradcheck import assert_close_to_numerical, numerical_gradient
from seqcore import nn, ops
from seqcore.nn.recurrent import parameter_count

INPUTS = ("x", "h0", "c0", "W_ih", "W_hh", "b", "W_hr")
OUTPUTS = ("y", "hT", "cT")
TOLERANCE = {np.float64: 1e-10, np.float32: 1e-4}
# (T, B, D, H, P): odd sizes around the vector widths and units; P of one
# lane, P = H - 1, and H, P multiples of 32 (AMX's pipelined steps in "bf16")
SHAPES = [(1, 1, 1, 2, 1), (5, 3, 4, 6, 3), (7, 2, 9, 37, 5), (3, 13, 5, 40, 17), (4, 7, 17, 33, 32),
          (2, 1, 3, 100, 99), (3, 37, 20, 96, 64)]
PADDED = {"lengths": np.array([3, 0, 5, 1, 5]), "reverse": True}


def make_inputs(T, B, D, H, P, dtype=np.float64, seed=0, scale=0.5):
    rng = np.random.default_rng(seed)
    shapes = {"x": (T, B, D), "h0": (B, P), "c0": (B, H), "W_ih": (4 * H, D), "W_hh": (4 * H, P),
              "b": (4 * H,), "W_hr": (P, H)}
    return {k: (scale * rng.standard_normal(shapes[k])).astype(dtype) for k in INPUTS}


def output_weights(inputs, seed=1):
    """dL/d(out) of the test loss L = Σ w_y·y + Σ w_h·hT + Σ w_c·cT."""
    rng = np.random.default_rng(seed)
    (T, B, _), (P, H) = inputs["x"].shape, inputs["W_hr"].shape
    shapes = {"y": (T, B, P), "hT": (B, P), "cT": (B, H)}
    return {k: rng.standard_normal(s).astype(inputs["x"].dtype) for k, s in shapes.items()}


def forward(inputs, **options):
    *outs, cache = ops.lstm_forward(*(inputs[k] for k in INPUTS[:-1]), W_hr=inputs["W_hr"], **options)
    return dict(zip(OUTPUTS, outs)), cache


def run(inputs, backend, **options):
    outs, cache = forward(inputs, backend=backend, **options)
    w = output_weights(inputs)
    grads = ops.lstm_backward(w["y"], w["hT"], w["cT"], cache)
    assert len(grads) == 7
    return outs, dict(zip(INPUTS, grads))


def errors(a, b):
    (outs, grads), (ref_outs, ref_grads) = a, b
    e = {k: relative_error(outs[k], ref_outs[k]) for k in outs}
    e.update({"d" + k: relative_error(grads[k], ref_grads[k]) for k in grads})
    return e


def assert_bitwise_equal(a, b):
    for part_a, part_b in zip(a, b):
        for k in part_a:
            np.testing.assert_array_equal(part_a[k], part_b[k], err_msg=k)


# ---------------------------------------------------------------------------
# the reference


def test_reference_without_projection_is_the_plain_lstm():
    """W_hr = None leaves today's 6-tuple and values (the identity as W_hr is
    not allowed, P < H: the shapes differ)."""
    inputs = make_inputs(4, 3, 5, 6, 2)
    rng = np.random.default_rng(3)
    x, H = inputs["x"], 6
    W_hh, h0 = rng.standard_normal((4 * H, H)), rng.standard_normal((3, H))
    *outs, cache = ops.lstm_forward(x, h0, inputs["c0"], inputs["W_ih"], W_hh, inputs["b"], backend="reference")
    assert outs[0].shape == (4, 3, H)
    assert len(ops.lstm_backward(np.ones_like(outs[0]), None, None, cache)) == 6


@pytest.mark.parametrize("options", [{}, PADDED], ids=["full", "lengths-reverse"])
def test_reference_gradients_match_finite_differences(options):
    inputs = make_inputs(5, 5, 3, 5, 2, seed=11)
    w = output_weights(inputs)
    outs, grads = run(inputs, "reference", **options)

    def L():
        o, _ = forward(inputs, backend="reference", train=False, **options)
        return sum(float(np.sum(o[k] * w[k])) for k in OUTPUTS)

    for k in INPUTS:
        assert_close_to_numerical(grads[k], numerical_gradient(L, inputs[k]), rtol=1e-7)


# ---------------------------------------------------------------------------
# the native kernels against the reference


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "T{}B{}D{}H{}P{}".format(*s))
@pytest.mark.parametrize("options", [{}, PADDED], ids=["full", "lengths-reverse"])
def test_native_matches_reference(shape, dtype, options, isa, threads):
    T, B, D, H, P = shape
    if options:
        options = dict(options, lengths=np.arange(B) % (T + 1))
    inputs = make_inputs(*shape, dtype=dtype, seed=sum(shape))
    e = errors(run(inputs, "native", **options), run(inputs, "reference", **options))
    worst = max(e, key=e.get)
    assert e[worst] < TOLERANCE[dtype], (worst, e)


@pytest.mark.parametrize("shape", [(1, 5, 9, 37, 7), (6, 5, 12, 40, 24), (4, 37, 20, 96, 64), (3, 64, 16, 64, 32)],
                         ids=lambda s: "T{}B{}D{}H{}P{}".format(*s))
@pytest.mark.parametrize("options", [{}, PADDED], ids=["full", "lengths-reverse"])
def test_bf16_matches_the_bf16_reference(shape, options, isa, threads):
    T, B, D, H, P = shape
    if options:
        options = dict(options, lengths=np.arange(B) % (T + 1))
    # (small weights: a sequence of large pre-activations carries a rounding
    # difference far)
    inputs = make_inputs(*shape, dtype=np.float32, seed=sum(shape), scale=0.2)
    native = run(inputs, "native", precision="bf16", **options)
    reference = run(inputs, "reference", precision="bf16", **options)
    e = errors(native, reference)
    worst = max(e, key=e.get)
    # one step: only the order of float32 sums differs; a sequence may carry a
    # neighbouring bfloat16 of a value at a rounding boundary (test_bf16.py)
    assert e[worst] < (2e-5 if T == 1 else 5e-3), (worst, e)
    if T == 1:  # and bfloat16 is really used: float32 is far from the bf16 reference
        fp32 = run(inputs, "native", **options)
        assert max(errors(fp32, reference).values()) > 100 * e[worst]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_one_two_and_three_threads_are_bitwise_equal(precision, isa):
    # every offered thread works (the plan would keep a call this small on
    # one): the units of H and of P are shared out, two meetings a step
    inputs = make_inputs(9, 11, 21, 100, 70, dtype=np.float32, seed=5)
    options = dict(precision=precision, lengths=np.array([9, 3, 0, 9, 8, 1, 2, 9, 5, 4, 7]), reverse=True)
    with ops._every_thread_works():
        results = [run(inputs, "native", num_threads=n, **options) for n in (1, 2, 3)]
    assert_bitwise_equal(results[0], results[1])
    assert_bitwise_equal(results[0], results[2])


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_inference_matches_training_forward(precision):
    inputs = make_inputs(300, 3, 5, 20, 7, dtype=np.float32)  # more steps than one chunk
    options = dict(precision=precision, lengths=np.array([300, 17, 0]))
    infer, cache = forward(inputs, train=False, **options)
    assert cache is None
    train, _ = forward(inputs, train=True, **options)
    for k in infer:
        np.testing.assert_array_equal(infer[k], train[k], err_msg=k)


def test_only_some_gradients():
    """dy, dhT or dcT may each be None, as without a projection."""
    inputs = make_inputs(4, 3, 5, 9, 4, seed=2)
    w = output_weights(inputs)
    for backend in ("native", "reference"):
        _, cache = forward(inputs, backend=backend)
        dx, dh0, dc0, *_, dW_hr = ops.lstm_backward(None, w["hT"], None, cache)
        assert dh0.shape == (3, 4) and dc0.shape == (3, 9) and dW_hr.shape == (4, 9)
    ref = ops.lstm_backward(None, w["hT"], None, forward(inputs, backend="reference")[1])
    nat = ops.lstm_backward(None, w["hT"], None, forward(inputs, backend="native")[1])
    for a, b in zip(nat, ref):
        assert relative_error(a, b) < 1e-10


# ---------------------------------------------------------------------------
# bad input


def test_bad_projections_are_refused_naming_the_argument():
    inputs = make_inputs(3, 2, 4, 6, 3)
    args = [inputs[k] for k in INPUTS[:-1]]
    with pytest.raises(ValueError, match="^W_hr: expected shape \\(P, H\\) with 0 < P < H"):
        ops.lstm_forward(*args[:2], args[2], args[3], np.zeros((24, 6)), args[5], W_hr=np.zeros((6, 6)))
    with pytest.raises(ValueError, match="^W_hh: expected shape"):
        ops.lstm_forward(*args[:5], args[5], W_hr=np.zeros((2, 6)))
    with pytest.raises(ValueError, match="^W_hr: expected 2 dimensions"):
        ops.lstm_forward(*args, W_hr=np.zeros(6))
    with pytest.raises(TypeError, match="^W_hr: expected dtype float64"):
        ops.lstm_forward(*args, W_hr=inputs["W_hr"].astype(np.float32))
    with pytest.raises(ValueError, match="^h0: expected shape"):
        ops.lstm_forward(inputs["x"], np.zeros((2, 6)), *args[2:], W_hr=inputs["W_hr"])
    _, cache = forward(inputs)
    with pytest.raises(ValueError, match="^dy: expected shape \\(T, B, P\\)"):
        ops.lstm_backward(np.zeros((3, 2, 6)), None, None, cache)
    with pytest.raises(ValueError, match="^dhT: expected shape \\(B, P\\)"):
        ops.lstm_backward(None, np.zeros((2, 6)), None, cache)
    for bad in (6, 7, -1, 2.5, True):
        with pytest.raises(ValueError, match="^proj_size: "):
            nn.LSTM(4, 6, proj_size=bad)
    with pytest.raises(TypeError):
        nn.GRU(4, 6, proj_size=2)
    with pytest.raises(ValueError, match="^proj_size: only an LSTM"):
        from seqcore.nn.recurrent import stack_forward
        stack_forward("gru", {}, inputs["x"], [None], num_layers=1, directions=1, proj_size=2)


# ---------------------------------------------------------------------------
# the layer


def test_layer_sizes_and_parameters():
    layer = nn.LSTM(5, 8, num_layers=2, bidirectional=True, proj_size=3, dtype=np.float64, seed=0)
    assert layer.output_size == 6 and layer.state_size == 3
    p = layer.params
    assert p["weight_ih_l0"].shape == (32, 5) and p["weight_hh_l0"].shape == (32, 3)
    assert p["weight_hr_l0"].shape == (3, 8) and p["weight_hr_l1_reverse"].shape == (3, 8)
    assert p["weight_ih_l1"].shape == (32, 6)
    assert sum(a.size for a in p.values()) == parameter_count("lstm", 5, 8, 2, True, proj_size=3)
    assert np.abs(p["weight_hr_l1"]).max() <= 1 / np.sqrt(8)  # torch: every parameter uniform in ±1/√H
    x = np.random.default_rng(0).standard_normal((4, 2, 5))
    y, (h, c) = layer.forward(x)
    assert y.shape == (4, 2, 6) and h.shape == (4, 2, 3) and c.shape == (4, 2, 8)
    dx = layer.backward(np.ones_like(y), (np.ones_like(h), np.ones_like(c)))
    assert dx.shape == x.shape and set(layer.grads) == set(p)
    assert layer.state_grad[0].shape == (4, 2, 3) and layer.state_grad[1].shape == (4, 2, 8)
    summed = nn.LSTM(5, 8, bidirectional=True, merge="sum", proj_size=3)
    assert summed.output_size == 3
    with pytest.raises(ValueError, match="state: expected h0 .* \\(num_layers·directions, B, P\\)"):
        layer.forward(x, (np.zeros((4, 2, 8)), c))


@pytest.mark.parametrize("proj_size", [0, 3])
def test_layer_gradients_match_finite_differences(proj_size):
    layer = nn.LSTM(3, 5, num_layers=2, bidirectional=True, proj_size=proj_size, dtype=np.float64, seed=1)
    report = seqcore.gradcheck(layer, np.random.default_rng(2).standard_normal((4, 3, 3)), lengths=[4, 2, 3])
    assert report, report


# ---------------------------------------------------------------------------
# against torch


def torch_and_ours(num_layers, bidirectional, proj_size, seed=0):
    torch = pytest.importorskip("torch")
    torch.manual_seed(seed)
    theirs = torch.nn.LSTM(5, 9, num_layers=num_layers, bidirectional=bidirectional, proj_size=proj_size).double()
    ours = nn.LSTM(5, 9, num_layers=num_layers, bidirectional=bidirectional, proj_size=proj_size, dtype=np.float64)
    ours.load_torch_state_dict(theirs.state_dict())
    assert sum(p.numel() for p in theirs.parameters()) == ours.num_params()
    return torch, theirs, ours


@pytest.mark.parametrize("padded", [False, True], ids=["full", "padded"])
@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, True), (3, False)])
def test_layer_matches_torch(num_layers, bidirectional, padded):
    torch, theirs, ours = torch_and_ours(num_layers, bidirectional, 4)
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    T, B, dirs = 6, 5, 2 if bidirectional else 1
    rng = np.random.default_rng(4)
    x = rng.standard_normal((T, B, 5))
    h0, c0 = rng.standard_normal((num_layers * dirs, B, 4)), rng.standard_normal((num_layers * dirs, B, 9))
    lengths = np.array([6, 2, 5, 1, 6]) if padded else None
    dy = rng.standard_normal((T, B, 4 * dirs))
    if padded:
        dy[np.arange(T)[:, None] >= lengths[None, :]] = 0  # torch's padded outputs are no function of anything
    dh, dc = rng.standard_normal(h0.shape), rng.standard_normal(c0.shape)

    tx, th0, tc0 = (torch.tensor(a, requires_grad=True) for a in (x, h0, c0))
    inp = pack_padded_sequence(tx, torch.tensor(lengths), enforce_sorted=False) if padded else tx
    ty, (thT, tcT) = theirs(inp, (th0, tc0))
    if padded:
        ty = pad_packed_sequence(ty, total_length=T)[0]
    ((ty * torch.tensor(dy)).sum() + (thT * torch.tensor(dh)).sum() + (tcT * torch.tensor(dc)).sum()).backward()

    y, (hT, cT) = ours.forward(x, (h0, c0), lengths=lengths)
    dx = ours.backward(dy, (dh, dc))
    worst = {"y": relative_error(y, ty.detach().numpy()), "hT": relative_error(hT, thT.detach().numpy()),
             "cT": relative_error(cT, tcT.detach().numpy()), "dx": relative_error(dx, tx.grad.numpy()),
             "dh0": relative_error(ours.state_grad[0], th0.grad.numpy()),
             "dc0": relative_error(ours.state_grad[1], tc0.grad.numpy())}
    for name, p in theirs.named_parameters():
        worst["d" + name] = relative_error(ours.grads[name], p.grad.numpy())
    assert any(k.startswith("dweight_hr") for k in worst)
    assert max(worst.values()) < 1e-10, worst


def test_bitwise_threads_through_the_layer():
    layer = nn.LSTM(6, 33, num_layers=2, bidirectional=True, proj_size=17, seed=3)
    x = np.random.default_rng(0).standard_normal((7, 9, 6)).astype(np.float32)
    results = []
    before = seqcore.get_num_threads()
    try:
        for n in (1, 2, 3):
            seqcore.set_num_threads(n)
            layer.zero_grad()
            with ops._every_thread_works():
                y, _ = layer.forward(x, lengths=[7, 1, 3, 7, 0, 2, 5, 6, 7])
                layer.backward(np.ones_like(y))
            results.append(({"y": y}, {k: v.copy() for k, v in layer.grads.items()}))
    finally:
        seqcore.set_num_threads(before)
    assert_bitwise_equal(results[0], results[1])
    assert_bitwise_equal(results[0], results[2])


def test_workspace_bytes_count_the_projection():
    plain = ops.forward_workspace_bytes("lstm", 10, 4, 8, 32, train=True)
    projected = ops.forward_workspace_bytes("lstm", 10, 4, 8, 32, train=True, proj_size=8)
    assert projected != plain and projected > 0
    with pytest.raises(ValueError, match="^proj_size: "):
        ops.forward_workspace_bytes("lstm", 10, 4, 8, 32, train=True, proj_size=32)


def test_a_language_model_refuses_a_projected_lstm():
    model = nn.LanguageModel(10, 4, 8, num_layers=1)
    with pytest.raises(ValueError, match="^rnn: .* proj_size=3"):
        model.rnn = nn.LSTM(4, 8, proj_size=3)
