"""precision="bf16": bfloat16 products with float32 sums, on every ISA this
CPU has (the isa fixture: the rounding fallback of scalar/avx2/avx512, and
avx512_bf16 / amx_bf16 where present), at 1 and 2 threads.

Oracles: the NumPy reference run in "bf16" (every product's operands rounded
to bfloat16, float32 sums: only the order of the sums differs), float32
results (loose, documented bounds), the float32 gradients' direction, and
torch's bfloat16 LSTM/GRU/RNN when torch is installed.
"""

import numpy as np
import pytest

import seqcore
from cellcases import (CELLS, relative_error, assert_bitwise_equal_results, at_one_and_two_threads, backward, forward, make_inputs,
                       make_output_weights)
from children import CHILD_CWD, child_env
from seqcore import ops, reference

# Relative to the largest magnitude of each result. One product's rounding
# (T = 1): only the order of float32 sums differs from the reference.
TIGHT = 2e-5
# Over a sequence a state or gradient whose float32 value lies at a rounding
# boundary of bfloat16 may round to the neighbour in one of the two (their
# float32 sums differ in the last bits): one bfloat16 ulp (2^-8 relative)
# in one operand, carried on. Still far below the difference from float32.
SEQUENCE = 5e-3




def run(cell, shape, backend, precision="bf16", seed=0, **options):
    T, B, D, H = shape
    inputs = make_inputs(cell, T, B, D, H, dtype=np.float32, seed=seed)
    outs, cache = forward(cell, inputs, backend=backend, precision=precision, **options)
    return outs, backward(cell, make_output_weights(cell, T, B, H, dtype=np.float32), cache), cache


def errors(a, b):
    (outs, grads), (ref_outs, ref_grads) = a, b
    e = {k: relative_error(outs[k], ref_outs[k]) for k in outs}
    e.update({"d" + k: relative_error(grads[k], ref_grads[k]) for k in grads})
    return e


# ---------------------------------------------------------------------------
# rounding


def test_round_bf16_is_round_to_nearest_even():
    bits = np.array([0x3F800000, 0x3F808000, 0x3F818000, 0x3F80FFFF, 0x3F817FFF, 0xBF808001,
                     0x7F7FFFFF, 0x7F800000, 0x000AE398, 0x800AE398, 0x7F800001], dtype=np.uint32)
    out = reference.round_bf16(bits.view(np.float32)).view(np.uint32) >> 16
    # ties to even (down, up), nearest, overflow to inf, inf, denormals flushed
    # to signed zero (as vcvtneps2bf16), NaN stays a (quiet) NaN
    assert list(out[:10]) == [0x3F80, 0x3F80, 0x3F82, 0x3F81, 0x3F81, 0xBF81, 0x7F80, 0x7F80, 0x0000, 0x8000]
    assert np.isnan(reference.round_bf16(bits[10:].view(np.float32))).all()


def test_round_bf16_agrees_with_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal(100_000).astype(np.float32) * 1e3
    ours = reference.round_bf16(x)
    theirs = torch.from_numpy(x).to(torch.bfloat16).float().numpy()
    assert np.array_equal(ours, theirs)


# ---------------------------------------------------------------------------
# matrix product (ops.matmul, also the head's)


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("M, N, K", [(1, 7, 5), (9, 1, 40), (37, 50, 33), (70, 130, 1100)])
def test_matmul_bf16_is_the_product_of_rounded_operands(M, N, K, trans_a, trans_b, isa):
    rng = np.random.default_rng(M * N + K)
    a = rng.standard_normal((K, M) if trans_a else (M, K)).astype(np.float32)
    b = rng.standard_normal((N, K) if trans_b else (K, N)).astype(np.float32)
    opa = reference.round_bf16(a.T if trans_a else a).astype(np.float64)
    opb = reference.round_bf16(b.T if trans_b else b).astype(np.float64)
    exact = opa @ opb  # products of bfloat16 are exact in float32; sums here in float64
    scale = np.abs(opa) @ np.abs(opb)
    out = ops.matmul(a, b, trans_a=trans_a, trans_b=trans_b, precision="bf16")
    assert np.all(np.abs(out - exact) <= 1e-6 * scale + 1e-30)
    # float32 differs from it by the rounding of the operands: the option is honoured
    fp32 = ops.matmul(a, b, trans_a=trans_a, trans_b=trans_b)
    assert np.max(np.abs(fp32 - exact) / scale) > 1e-4


def test_matmul_bf16_accumulates_into_out(isa):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((20, 30)).astype(np.float32), rng.standard_normal((30, 40)).astype(np.float32)
    out = rng.standard_normal((20, 40)).astype(np.float32)
    expected = out + reference.matmul_bf16(a, b)
    ops.matmul(a, b, out=out, accumulate=True, precision="bf16")
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-4)


# ---------------------------------------------------------------------------
# the cells against the reference in "bf16"


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("shape", [(1, 5, 9, 37), (1, 17, 40, 64), (1, 3, 70, 33)],
                         ids=lambda s: "T{}B{}D{}H{}".format(*s))
def test_one_step_matches_the_bf16_reference_tightly(cell, shape, isa, threads):
    native, reference_ = run(cell, shape, "native"), run(cell, shape, "reference")
    assert native[2].precision == "bf16" and reference_[2].precision == "bf16"
    e = errors(native[:2], reference_[:2])
    worst = max(e, key=e.get)
    assert e[worst] < TIGHT, (worst, e)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("options", [{}, {"lengths": np.array([6, 2, 0, 6, 5]), "reverse": True}],
                         ids=["full", "lengths-reverse"])
def test_sequences_match_the_bf16_reference(cell, options, isa, threads):
    shape = (6, 5, 12, 40)
    native, reference_ = run(cell, shape, "native", **options), run(cell, shape, "reference", **options)
    e = errors(native[:2], reference_[:2])
    worst = max(e, key=e.get)
    assert e[worst] < SEQUENCE, (worst, e)
    # and bfloat16 is really used: float32 is further from the bf16 reference
    fp32 = run(cell, shape, "native", precision="fp32", **options)
    assert max(errors(fp32[:2], reference_[:2]).values()) > 2 * e[worst]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("shape", [(4, 37, 20, 48), (3, 64, 16, 64), (5, 37, 20, 96)],
                         ids=lambda s: "T{}B{}D{}H{}".format(*s))
def test_tiles_of_more_than_16_rows_match_the_bf16_reference(cell, shape, isa, threads):
    # With AMX a tile of 17-32 rows multiplies two tiles of h (or of the gate
    # gradients) by each tile of the panel: B = 37 runs tiles of 19 and 18
    # rows (the second tile of A mostly past the rows, K = 48 with a tail of
    # k after the whole blocks of 32), B = 64 two full tiles of 32; the
    # lengths make the running rows shrink from step to step. With H a
    # multiple of 32 the forward step is the pipelined one (forward_step_amx).
    for options in ({}, {"lengths": np.arange(shape[1]) % (shape[0] + 1), "reverse": True}):
        native, reference_ = run(cell, shape, "native", **options), run(cell, shape, "reference", **options)
        e = errors(native[:2], reference_[:2])
        worst = max(e, key=e.get)
        assert e[worst] < SEQUENCE, (worst, options, e)


@pytest.mark.parametrize("cell", CELLS)
def test_bf16_inference_in_chunks_matches_the_training_forward(cell, isa, threads):
    # Inference projects the inputs a chunk of steps at a time (4 steps at
    # B = 64) from W_ih packed once for all chunks; training projects all
    # steps at once. The same products: bitwise equal. H = 300 gives the
    # gates of LSTM and GRU more than one block of columns (900, 1200); H =
    # 320 too, and runs the pipelined forward step with AMX; the lengths
    # make inference carry the finished rows' states.
    for H, options in ((300, {}), (320, {"lengths": np.arange(64) % 14})):
        inputs = make_inputs(cell, 13, 64, 24, H, dtype=np.float32, seed=3)
        infer, cache = forward(cell, inputs, train=False, precision="bf16", **options)
        assert cache is None
        train, _ = forward(cell, inputs, train=True, precision="bf16", **options)
        for k in infer:
            np.testing.assert_array_equal(infer[k], train[k], err_msg=f"{k}, H = {H}")


@pytest.mark.parametrize("cell", CELLS)
def test_bf16_one_and_two_threads_are_bitwise_equal(cell, isa):
    assert_bitwise_equal_results(*at_one_and_two_threads(
        lambda: run(cell, (9, 11, 21, 70), "native", seed=5)[:2]))


# ---------------------------------------------------------------------------
# against float32: documented bounds


def long_problem(cell, T=100, B=4, D=16, H=32):
    """A 100-step problem with PyTorch's initialisation (weights ±1/√H)."""
    inputs = make_inputs(cell, T, B, D, H, dtype=np.float32, seed=3)
    rng, k = np.random.default_rng(4), 1 / np.sqrt(H)
    for name in inputs:
        if name[0] in "Wb":
            inputs[name] = rng.uniform(-k, k, inputs[name].shape).astype(np.float32)
    return inputs, make_output_weights(cell, T, B, H, dtype=np.float32)


@pytest.mark.parametrize("cell", CELLS)
def test_bf16_stays_close_to_float32_over_100_steps(cell, isa):
    """Outputs within 0.02 of float32's (they lie in [-1, 1]; measured: at
    most 0.0035, RNN), and every gradient within 0.99 cosine of float32's
    (measured: above 0.9999)."""
    inputs, w = long_problem(cell)
    o32, c32 = forward(cell, inputs)
    o16, c16 = forward(cell, inputs, precision="bf16")
    for k in o32:
        assert np.max(np.abs(o16[k] - o32[k])) < 0.02, k
    g32, g16 = backward(cell, w, c32), backward(cell, w, c16)
    for k in g32:
        cosine = np.sum(g16[k] * g32[k]) / (np.linalg.norm(g16[k]) * np.linalg.norm(g32[k]))
        assert cosine >= 0.99, (k, cosine)
    assert any(not np.array_equal(o16[k], o32[k]) for k in o32)


@pytest.mark.parametrize("cell", CELLS)
def test_torch_bfloat16_parity(cell):
    """torch's module in bfloat16 (states and outputs rounded too) and ours
    agree within 0.01 over 50 steps, and each is within 0.01 of float32."""
    torch = pytest.importorskip("torch")
    T, B, D, H = 50, 4, 16, 32
    x = make_inputs(cell, T, B, D, H, dtype=np.float32, seed=3)["x"]
    torch.manual_seed(0)
    layer = getattr(torch.nn, {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}[cell])(D, H)
    p = {k: v.detach().numpy().copy() for k, v in layer.named_parameters()}
    biases = ((p["bias_ih_l0"], p["bias_hh_l0"]) if cell == "gru" else (p["bias_ih_l0"] + p["bias_hh_l0"],))
    states = (None, None) if cell == "lstm" else (None,)
    ours = getattr(ops, f"{cell}_forward")(x, *states, p["weight_ih_l0"], p["weight_hh_l0"], *biases,
                                          train=False, precision="bf16")[0]
    with torch.no_grad():
        fp32 = layer(torch.from_numpy(x))[0].numpy()
        theirs = layer.to(torch.bfloat16)(torch.from_numpy(x).to(torch.bfloat16))[0].float().numpy()
    assert np.max(np.abs(ours - theirs)) < 0.01
    assert np.max(np.abs(ours - fp32)) < 0.01 and np.max(np.abs(theirs - fp32)) < 0.01


# ---------------------------------------------------------------------------
# arguments


@pytest.mark.parametrize("cell", CELLS)
def test_float64_with_bf16_is_refused(cell):
    inputs = make_inputs(cell, 2, 3, 4, 5, dtype=np.float64)
    for backend in ("native", "reference"):
        with pytest.raises(ValueError, match="^precision: 'bf16' needs float32 arrays, got float64"):
            forward(cell, inputs, backend=backend, precision="bf16")
    with pytest.raises(ValueError, match="^precision: 'bf16' needs float32"):
        ops.matmul(inputs["W_hh"], inputs["W_hh"].T, precision="bf16")


@pytest.mark.parametrize("bad", ["bf32", "BF16", "", None, 16])
def test_unknown_precision_is_named(bad):
    inputs = make_inputs("lstm", 2, 3, 4, 5, dtype=np.float32)
    with pytest.raises(ValueError, match=r"^precision: expected 'fp32', 'bf16' or 'int8', got " + repr(bad).replace("'", ".")):
        forward("lstm", inputs, precision=bad)
    with pytest.raises(ValueError, match="^precision: expected 'fp32', 'bf16' or 'int8'"):
        ops.matmul(inputs["W_hh"], inputs["W_hh"].T, precision=bad)


def test_core_refuses_float64_bf16_directly():
    from seqcore import _core
    a = np.ones((3, 3))
    with pytest.raises(ValueError, match="precision: 'bf16' needs float32"):
        _core.gemm(a, a, np.empty((3, 3)), bf16=True)


def test_bf16_under_a_forced_lower_isa():
    """SEQCORE_ISA=avx2 (or scalar where the CPU lacks AVX2): bf16 still
    rounds, and matches the reference."""
    import subprocess
    import sys
    isa = "avx2" if "avx2" in seqcore.info()["isas"] else "scalar"
    code = ("import numpy as np, seqcore; from seqcore import ops, reference\n"
            "r = np.random.default_rng(0); a, b = r.standard_normal((2, 40, 40)).astype(np.float32)\n"
            "out = ops.matmul(a, b, precision='bf16')\n"
            "ok = np.allclose(out, reference.matmul_bf16(a, b), rtol=1e-5, atol=1e-5)\n"
            "print(seqcore.info()['isa'], ok, np.allclose(out, a @ b, rtol=1e-6, atol=1e-6))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=child_env(None, SEQCORE_ISA=isa), cwd=CHILD_CWD)
    assert done.stdout.split() == [isa, "True", "False"], done.stderr


# ---------------------------------------------------------------------------
# seqcore.nn: layers and models take precision=, changeable between calls


def test_recurrent_layer_runs_its_precision_and_backward_follows_the_forward():
    from seqcore.nn import LSTM
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 3, 10)).astype(np.float32)
    dy = rng.standard_normal((7, 3, 2 * 24)).astype(np.float32)
    runs = {}
    for precision in ("fp32", "bf16"):
        layer = LSTM(10, 24, num_layers=2, bidirectional=True, seed=1, precision=precision)
        y, _ = layer.forward(x)
        if precision == "bf16":
            layer.precision = "fp32"  # changed between forward and backward: backward follows the forward
        runs[precision] = (y, layer.backward(dy), layer.grads)
    # the first layer's forward direction, straight through ops in bf16
    p = LSTM(10, 24, num_layers=2, bidirectional=True, seed=1).params
    y0 = ops.lstm_forward(x, None, None, p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"] + p["bias_hh_l0"],
                          train=False, precision="bf16")[0]
    layer = LSTM(10, 24, bidirectional=True, seed=1, precision="bf16")
    assert np.array_equal(layer.forward(x, train=False)[0][:, :, :24], y0)
    (y32, dx32, g32), (y16, dx16, g16) = runs["fp32"], runs["bf16"]
    assert not np.array_equal(y16, y32) and np.max(np.abs(y16 - y32)) < 0.02
    # the backward of the bf16 forward ran in bf16: a layer that stays in bf16 gives the same, bit for bit
    again = LSTM(10, 24, num_layers=2, bidirectional=True, seed=1, precision="bf16")
    again.forward(x)
    assert np.array_equal(again.backward(dy), dx16)
    assert all(np.array_equal(again.grads[k], g16[k]) for k in g16)
    assert not np.array_equal(dx16, dx32)


def test_precision_attribute_is_checked():
    from seqcore.nn import GRU, LanguageModel, Linear
    for make in (lambda **k: GRU(4, 5, **k), lambda **k: Linear(4, 5, **k),
                 lambda **k: LanguageModel(11, 4, 5, num_layers=1, **k)):
        with pytest.raises(ValueError, match="^precision: expected 'fp32', 'bf16' or 'int8', got 'fp16'"):
            make(precision="fp16")
        with pytest.raises(ValueError, match="^precision: 'bf16' needs float32"):
            make(precision="bf16", dtype=np.float64)
        layer = make(dtype=np.float64)
        with pytest.raises(ValueError, match="^precision: 'bf16' needs float32"):
            layer.precision = "bf16"
        assert layer.precision == "fp32"


def test_linear_in_bf16():
    from seqcore.nn import Linear
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 3, 40)).astype(np.float32)
    layer = Linear(40, 30, seed=0, precision="bf16")
    y = layer.forward(x)
    expected = reference.matmul_bf16(x.reshape(-1, 40), layer.weight.T) + layer.bias
    np.testing.assert_allclose(y.reshape(-1, 30), expected, rtol=1e-5, atol=1e-5)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    layer.precision = "fp32"  # the backward follows the forward's bf16
    dx = layer.backward(dy)
    np.testing.assert_allclose(dx.reshape(-1, 40), reference.matmul_bf16(dy.reshape(-1, 30), layer.weight),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.grads["weight"], reference.matmul_bf16(dy.reshape(-1, 30).T, x.reshape(-1, 40)),
                               rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("model", ["LanguageModel", "SequenceClassifier", "SequenceTagger"])
def test_models_take_precision_and_keep_it_in_their_config(model):
    from seqcore import nn
    cls = getattr(nn, model)
    args = dict(vocab_size=13, embed_size=6, hidden_size=8, num_layers=1, seed=3)
    if model != "LanguageModel":
        args["num_classes"] = 4
    m = cls(**args, precision="bf16")
    assert m.precision == m.rnn.precision == m.head.precision == "bf16"
    assert m.config()["precision"] == "bf16"
    rebuilt = cls(**m.config())  # as a checkpoint rebuilds it
    rebuilt.load_state_dict(m.state_dict())
    assert rebuilt.precision == "bf16"
    ids = np.random.default_rng(0).integers(0, 13, (5, 2))
    out16 = m.forward(ids, train=False)[0]
    m.precision = "fp32"
    assert m.rnn.precision == m.head.precision == "fp32" and m.config()["precision"] == "fp32"
    out32 = m.forward(ids, train=False)[0]
    assert not np.array_equal(out16, out32) and np.max(np.abs(out16 - out32)) < 0.05
    assert np.array_equal(rebuilt.forward(ids, train=False)[0], out16)
    assert cls(**{k: v for k, v in args.items()}).precision == "fp32"  # the default


def test_a_bf16_language_model_samples_in_bf16():
    """A bf16 model's stepper computes in bf16 (its precision): sampling on it
    gives the text a model without a stepper (the reference path, whose
    forward runs bf16) gives."""
    from seqcore import generate
    from seqcore.nn import LanguageModel
    from seqcore.text import Vocabulary

    class ForwardOnly:  # the model's forward alone: generate's reference path
        def __init__(self, model):
            self.model, self.vocab_size = model, model.vocab_size

        def forward(self, ids, state=None, train=True):
            return self.model.forward(ids, state, train=train)

    vocab = Vocabulary.from_text("abcdefgh\n" * 3, level="char")
    model = LanguageModel(len(vocab), 8, 16, num_layers=1, seed=0, precision="bf16")
    assert model.stepper().precision == "bf16"
    options = dict(seed=1, prime="ab", stop_at_eos=False)
    text = generate.sample(model, vocab, 40, **options)
    assert text == generate.sample(ForwardOnly(model), vocab, 40, **options)
    assert generate.sample(model, vocab, 40, num_samples=2, **options)[0] == text
