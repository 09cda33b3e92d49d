"""seqcore.train: SGD, Adam, AdamW and gradient clipping. Oracles: torch's
optimisers and clip functions (when installed), the update rules written out
by hand, and an uninterrupted run for checkpoint resumption."""

import numpy as np
import pytest

import seqcore
from seqcore import ops
from seqcore.nn import Linear, Sequential, Tanh
from seqcore.train import SGD, Adam, AdamW, clip_by_global_norm, clip_by_value

STEPS = 6
SHAPES = {"w": (4, 3), "b": (3,)}


def make_params(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}


def grad_sequence(dtype, steps=STEPS, seed=1):
    """A different gradient at every step."""
    rng = np.random.default_rng(seed)
    return [{k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()} for _ in range(steps)]


# (class, constructor kwargs, torch class name)
CONFIGS = [
    (SGD, dict(lr=0.1), "SGD"),
    (SGD, dict(lr=0.1, momentum=0.9), "SGD"),
    (SGD, dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01), "SGD"),
    (SGD, dict(lr=0.1, weight_decay=0.1), "SGD"),
    (Adam, dict(), "Adam"),
    (Adam, dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1), "Adam"),
    (AdamW, dict(lr=0.01), "AdamW"),
    (AdamW, dict(lr=0.02, betas=(0.5, 0.9), weight_decay=0.3), "AdamW"),
]
CONFIG_IDS = [f"{c.__name__}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'defaults'}" for c, kw, _ in CONFIGS]


# ---------------------------------------------------------------------------
# update rules


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls,kwargs,torch_name", CONFIGS, ids=CONFIG_IDS)
def test_matches_torch_after_several_steps(cls, kwargs, torch_name, dtype):
    torch = pytest.importorskip("torch")
    params = make_params(dtype)
    tparams = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    opt = cls(params, **kwargs)
    topt = getattr(torch.optim, torch_name)(list(tparams.values()), **kwargs)
    for grads in grad_sequence(dtype):
        opt.step(grads)
        for k, p in tparams.items():
            p.grad = torch.tensor(grads[k])
        topt.step()
    tol = 1e-6 if dtype == np.float32 else 1e-12
    for k in params:
        np.testing.assert_allclose(params[k], tparams[k].detach().numpy(), rtol=tol, atol=tol, err_msg=k)


def test_sgd_step_is_p_minus_lr_g():
    params = make_params(np.float64)
    before = {k: v.copy() for k, v in params.items()}
    grads = grad_sequence(np.float64, 1)[0]
    SGD(params, lr=0.5).step(grads)
    for k in params:
        np.testing.assert_allclose(params[k], before[k] - 0.5 * grads[k], rtol=1e-15)


def test_sgd_momentum_rule_by_hand():
    """b = g, then b = momentum·b + g; p -= lr·b (oracle: the rule written out)."""
    p = np.zeros(2)
    opt = SGD({"p": p}, lr=1.0, momentum=0.5)
    opt.step({"p": np.array([1.0, 2.0])})
    opt.step({"p": np.array([1.0, 2.0])})
    # b1 = g, b2 = 0.5·g + g = 1.5·g; p = -(g + 1.5·g)
    np.testing.assert_allclose(p, [-2.5, -5.0], rtol=1e-15)


def test_adam_first_step_moves_each_entry_by_lr():
    """At t = 1, m̂ = g and v̂ = g², so each entry moves by lr·g/(|g| + eps) ≈ lr·sign(g)."""
    params = make_params(np.float64)
    before = {k: v.copy() for k, v in params.items()}
    grads = grad_sequence(np.float64, 1)[0]
    Adam(params, lr=0.01).step(grads)
    for k in params:
        np.testing.assert_allclose(params[k], before[k] - 0.01 * grads[k] / (np.abs(grads[k]) + 1e-8), rtol=1e-12)


def test_adamw_decays_weights_with_zero_gradient():
    """With g = 0 the Adam part is 0; only p·(1 - lr·weight_decay) remains."""
    p = np.ones(3)
    AdamW({"p": p}, lr=0.1, weight_decay=0.5).step({"p": np.zeros(3)})
    np.testing.assert_allclose(p, 0.95, rtol=1e-15)


def test_parameters_missing_from_grads_are_skipped():
    params = make_params(np.float64)
    before = params["b"].copy()
    opt = Adam(params)
    opt.step({"w": np.ones(SHAPES["w"])})
    np.testing.assert_array_equal(params["b"], before)
    assert list(opt.state) == ["w"]


# ---------------------------------------------------------------------------
# on a Layer


def test_optimiser_on_a_layer_reads_its_grads_and_updates_in_place():
    model = Sequential(Linear(3, 4, dtype=np.float64, seed=0), Tanh(), Linear(4, 2, dtype=np.float64, seed=1))
    weight = model[0].weight  # the same array before and after
    before = weight.copy()
    opt = SGD(model, lr=0.1)
    model.forward(np.ones((5, 3)))
    model.backward(np.ones((5, 2)))
    expected = before - 0.1 * model.grads["0.weight"]
    opt.step()
    assert model.params["0.weight"] is weight
    np.testing.assert_allclose(weight, expected, rtol=1e-15)
    opt.zero_grad()
    assert all(not g.any() for g in model.grads.values())


def test_training_a_linear_layer_reduces_the_loss():
    """Adam fits y = x·Aᵀ with a Linear layer (oracle: the loss goes to ~0)."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((2, 3))
    x = rng.standard_normal((64, 3))
    layer = Linear(3, 2, dtype=np.float64, seed=0)
    opt = Adam(layer, lr=0.05)
    for _ in range(300):
        opt.zero_grad()
        diff = layer(x) - x @ A.T
        layer.backward(2 * diff / diff.size)
        opt.step()
    assert np.mean((layer(x) - x @ A.T) ** 2) < 1e-4


# ---------------------------------------------------------------------------
# state dicts


def run(cls, kwargs, params, grads_seq, opt=None):
    opt = opt or cls(params, **kwargs)
    for grads in grads_seq:
        opt.step(grads)
    return opt


@pytest.mark.parametrize("cls,kwargs,torch_name", CONFIGS, ids=CONFIG_IDS)
def test_resume_from_state_dict_is_bitwise_the_same(cls, kwargs, torch_name, tmp_path):
    """N steps, save (np.savez), load into a new optimiser, M steps == N + M steps straight."""
    seq = grad_sequence(np.float32, 7)
    straight = make_params(np.float32)
    run(cls, kwargs, straight, seq)

    resumed = make_params(np.float32)
    first = run(cls, kwargs, resumed, seq[:3])
    np.savez(tmp_path / "opt.npz", **first.state_dict())
    with np.load(tmp_path / "opt.npz", allow_pickle=False) as f:
        saved = dict(f)
    second = cls(resumed, lr=123.0)  # hyperparameters come back from the state dict
    second.load_state_dict(saved)
    run(cls, kwargs, resumed, seq[3:], opt=second)
    for k in straight:
        np.testing.assert_array_equal(resumed[k], straight[k])


@pytest.mark.parametrize("cls,kwargs,torch_name", CONFIGS, ids=CONFIG_IDS)
def test_state_dict_round_trips_exactly(cls, kwargs, torch_name):
    opt = run(cls, kwargs, make_params(np.float64), grad_sequence(np.float64, 2))
    state = opt.state_dict()
    other = cls(make_params(np.float64), lr=1.0)
    other.load_state_dict(state)
    again = other.state_dict()
    assert sorted(again) == sorted(state)
    for k, v in state.items():
        assert isinstance(v, (np.ndarray, int, float, bool)), k  # plain data, nothing pickled
        np.testing.assert_array_equal(again[k], v, err_msg=k)


def test_state_dict_is_a_copy():
    params = make_params(np.float64)
    opt = run(SGD, dict(lr=0.1, momentum=0.9), params, grad_sequence(np.float64, 1))
    state = opt.state_dict()
    saved = state["momentum_buffer.w"].copy()
    opt.step(grad_sequence(np.float64, 1, seed=5)[0])
    np.testing.assert_array_equal(state["momentum_buffer.w"], saved)


def test_load_state_dict_rejects_foreign_state_and_changes_nothing():
    params = make_params(np.float64)
    opt = run(Adam, {}, params, grad_sequence(np.float64, 1))
    before = opt.state_dict()
    sgd_state = SGD(make_params(np.float64), lr=0.1).state_dict()
    with pytest.raises(KeyError, match="state: missing"):
        opt.load_state_dict(sgd_state)
    bad = dict(before, **{"exp_avg.w": np.zeros((2, 2))})
    with pytest.raises(ValueError, match=r"state\['exp_avg.w'\]: expected the parameter's shape"):
        opt.load_state_dict(bad)
    bad = dict(before, lr=-1.0)
    with pytest.raises(ValueError, match="state: lr"):
        opt.load_state_dict(bad)
    bad = {k: v for k, v in before.items() if k != "exp_avg_sq.b"}
    with pytest.raises(KeyError, match="lacks"):
        opt.load_state_dict(bad)
    with pytest.raises(KeyError, match="unexpected"):
        opt.load_state_dict(dict(before, **{"exp_avg.nope": np.zeros(3)}))
    after = opt.state_dict()
    for k in before:
        np.testing.assert_array_equal(after[k], before[k])


# ---------------------------------------------------------------------------
# arguments


@pytest.mark.parametrize("make,match", [
    (lambda p: SGD(p, lr=0), "lr"),
    (lambda p: SGD(p, lr=-0.1), "lr"),
    (lambda p: SGD(p, lr=0.1, momentum=-0.5), "momentum"),
    (lambda p: SGD(p, lr=0.1, nesterov=True), "nesterov"),
    (lambda p: SGD(p, lr=0.1, weight_decay=-1), "weight_decay"),
    (lambda p: Adam(p, betas=(1.0, 0.999)), "betas"),
    (lambda p: Adam(p, betas=(0.9, -0.1)), "betas"),
    (lambda p: Adam(p, lr=float("nan")), "lr"),
    (lambda p: AdamW(p, eps=-1e-8), "eps"),
])
def test_bad_hyperparameters_raise_naming_them(make, match):
    with pytest.raises(ValueError, match=match):
        make(make_params(np.float32))


def test_bad_params_and_grads_raise_naming_them():
    params = make_params(np.float32)
    with pytest.raises(TypeError, match="params: expected a seqcore.nn.Layer or a dict"):
        SGD([params["w"]], lr=0.1)
    with pytest.raises(ValueError, match="params: no parameters"):
        SGD({}, lr=0.1)
    with pytest.raises(TypeError, match=r"params\['x'\]"):
        SGD({"x": np.zeros(3, int)}, lr=0.1)
    with pytest.raises(TypeError, match="lr: expected a number"):
        SGD(params, lr="0.1")
    opt = SGD(params, lr=0.1)
    with pytest.raises(ValueError, match=r"grads: unknown parameter names \['nope'\]"):
        opt.step({"nope": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match=r"grads\['b'\]: expected the parameter's shape"):
        opt.step({"b": np.zeros(4, np.float32)})
    with pytest.raises(ValueError, match="grads: required"):
        opt.step()
    with pytest.raises(RuntimeError, match="zero_grad"):
        opt.zero_grad()


# ---------------------------------------------------------------------------
# clipping


def test_clip_by_value_clips_in_place_to_the_interval():
    grads = {"a": np.array([-7.0, -5.0, 0.5, 6.0]), "b": np.array([[10.0, -1.0]], np.float32)}
    clip_by_value(grads, 5)
    np.testing.assert_array_equal(grads["a"], [-5, -5, 0.5, 5])
    np.testing.assert_array_equal(grads["b"], [[5, -1]])


def test_clip_by_global_norm_scales_to_max_norm():
    """Norm of [3, 4] and [12] is 13 (oracle: arithmetic)."""
    grads = [np.array([3.0, 4.0]), np.array([12.0])]
    total = clip_by_global_norm(grads, 6.5)
    assert total == 13.0
    np.testing.assert_allclose(grads[0], [1.5, 2.0], rtol=1e-6)
    np.testing.assert_allclose(grads[1], [6.0], rtol=1e-6)
    small = [np.array([0.3, 0.4])]
    assert clip_by_global_norm(small, 1.0) == pytest.approx(0.5)
    np.testing.assert_array_equal(small[0], [0.3, 0.4])  # under max_norm: untouched


@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_by_global_norm_matches_torch(max_norm):
    torch = pytest.importorskip("torch")
    grads = grad_sequence(np.float32, 1)[0]
    tparams = [torch.zeros(g.shape, requires_grad=True) for g in grads.values()]
    for p, g in zip(tparams, grads.values()):
        p.grad = torch.tensor(g)
    ref = torch.nn.utils.clip_grad_norm_(tparams, max_norm)
    total = clip_by_global_norm(grads, max_norm)
    assert total == pytest.approx(ref.item(), rel=1e-6)
    for p, g in zip(tparams, grads.values()):
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-6)


def test_clip_by_value_matches_torch():
    torch = pytest.importorskip("torch")
    grads = {k: 4 * v for k, v in grad_sequence(np.float32, 1)[0].items()}
    tparams = [torch.zeros(g.shape, requires_grad=True) for g in grads.values()]
    for p, g in zip(tparams, grads.values()):
        p.grad = torch.tensor(g)
    torch.nn.utils.clip_grad_value_(tparams, 5.0)
    clip_by_value(grads, 5.0)
    for p, g in zip(tparams, grads.values()):
        np.testing.assert_array_equal(g, p.grad.numpy())


def test_clip_rejects_bad_arguments_naming_them():
    with pytest.raises(ValueError, match="clip_value"):
        clip_by_value([np.ones(2)], -5)
    with pytest.raises(ValueError, match="max_norm"):
        clip_by_global_norm([np.ones(2)], 0)
    with pytest.raises(TypeError, match="grads"):
        clip_by_global_norm([[1.0, 2.0]], 1.0)


# ---------------------------------------------------------------------------
# the native fused Adam (ops.adam_update) against the NumPy reference

@pytest.mark.parametrize("n", [0, 1, 15, 17, 100_003], ids=lambda n: f"n{n}")  # tails; > 2 blocks: a team
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_native_adam_equals_the_reference_bitwise(dtype, n, isa):
    """Ten steps (so that the bias corrections change), at 1, 2 and 3 threads:
    the same bits as NumPy's operations in torch's order."""
    rng = np.random.default_rng(n)
    p0 = rng.standard_normal(n).astype(dtype)
    grads = [(rng.standard_normal(n) * 10.0 ** rng.integers(-6, 4, n)).astype(dtype) for _ in range(10)]
    results = []
    for backend, threads in (("reference", 1), ("native", 1), ("native", 2), ("native", 3)):
        before = seqcore.get_num_threads()
        seqcore.set_num_threads(threads)
        try:
            p, m, v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
            with ops._every_thread_works():  # a team whatever the plan would say of this size
                for step, g in enumerate(grads, 1):
                    ops.adam_update(p, g, m, v, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, step=step,
                                    backend=backend)
        finally:
            seqcore.set_num_threads(before)
        results.append((p, m, v))
    for got in results[1:]:
        for name, a, b in zip("pmv", got, results[0]):
            np.testing.assert_array_equal(a, b, err_msg=name)
    assert n == 0 or not np.array_equal(results[0][0], p0)


def test_adam_takes_the_reference_path_for_arrays_it_cannot_update_in_place():
    """A parameter that is a strided view (a dict of params may hold one) is
    updated in place all the same, as a contiguous copy of it would be."""
    base = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    view = base[:, ::2]
    contiguous = np.ascontiguousarray(view)
    g = np.ones_like(contiguous)
    Adam({"p": view}, lr=0.1).step({"p": g})
    Adam({"p": contiguous}, lr=0.1).step({"p": g})
    np.testing.assert_array_equal(view, contiguous)
    np.testing.assert_array_equal(base[:, 1::2], np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)[:, 1::2])


@pytest.mark.parametrize("change,error,words", [
    (dict(p=np.zeros(3, np.float16)), TypeError, "p: expected a float32 or float64"),
    (dict(g=np.zeros(3, np.float64)), TypeError, "g: expected a float32 ndarray of p's shape"),
    (dict(m=np.zeros(4, np.float32)), TypeError, "m: expected a float32 ndarray of p's shape (3,)"),
    (dict(v=np.zeros(6, np.float32)[::2]), ValueError, "v: expected a C-contiguous, writeable array"),
    (dict(step=0), ValueError, "step: expected an int >= 1"),
    (dict(backend="gpu"), ValueError, "backend: expected 'native', 'reference' or None"),
])
def test_adam_update_refuses_bad_arguments_by_name(change, error, words):
    args = dict(p=np.zeros(3, np.float32), g=np.ones(3, np.float32), m=np.zeros(3, np.float32),
                v=np.zeros(3, np.float32), step=1)
    args.update(change)
    p, g, m, v = args.pop("p"), args.pop("g"), args.pop("m"), args.pop("v")
    with pytest.raises(error) as e:
        ops.adam_update(p, g, m, v, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8, **args)
    assert words in str(e.value)


# ---------------------------------------------------------------------------
# ops.sum_of_squares, the global norm of clipping

@pytest.mark.parametrize("n", [0, 1, 7, 9, 100_003], ids=lambda n: f"n{n}")
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_sum_of_squares_matches_numpy_in_float64(dtype, n, isa):
    x = (np.random.default_rng(n).standard_normal(n) * 1e3).astype(dtype)
    expected = float(np.square(x.astype(np.float64)).sum())
    assert ops.sum_of_squares(x) == pytest.approx(expected, rel=1e-12, abs=0.0)


@pytest.mark.parametrize("n", [65_536, 65_537, 3 * 65_536 + 5, 1_000_003], ids=lambda n: f"n{n}")
def test_sum_of_squares_gives_the_same_bits_at_any_threads_and_the_blocks_sum_in_order(n):
    """Past one block (64 Ki elements) the blocks are shared out to the threads;
    the sum is each block's, added in order, at any thread count."""
    x = (np.random.default_rng(n).standard_normal(n) * 1e3).astype(np.float32)
    block = 1 << 16
    before = ops.get_num_threads()
    try:
        ops.set_num_threads(1)
        in_order = 0.0
        for i in range(0, n, block):
            in_order += ops.sum_of_squares(x[i:i + block])  # one block: one thread's eight sums
        with ops._every_thread_works():  # (the plan would keep a pass this small on one thread on a busy machine)
            for t in (1, 2, 3, 5):
                ops.set_num_threads(t)
                assert ops.sum_of_squares(x) == in_order, t
    finally:
        ops.set_num_threads(before)
    assert in_order == pytest.approx(float(np.square(x.astype(np.float64)).sum()), rel=1e-12, abs=0.0)


def test_sum_of_squares_does_not_overflow_float32_squares_and_keeps_nan_and_inf():
    big = np.full(10, 1e20, np.float32)  # each square is 1e40, past float32's 3.4e38
    assert ops.sum_of_squares(big) == pytest.approx(10 * float(np.float32(1e20)) ** 2, rel=1e-12)
    assert np.isnan(ops.sum_of_squares(np.array([1.0, np.nan, 2.0], np.float32)))
    assert ops.sum_of_squares(np.array([1.0, -np.inf], np.float64)) == np.inf


def test_sum_of_squares_takes_any_layout_and_refuses_other_dtypes():
    x = np.arange(24, dtype=np.float32).reshape(4, 6)
    assert ops.sum_of_squares(x[:, ::2].T) == float((x[:, ::2].astype(np.float64) ** 2).sum())
    with pytest.raises(TypeError, match="a: expected a float32 or float64 ndarray, got int64"):
        ops.sum_of_squares(np.arange(3))
