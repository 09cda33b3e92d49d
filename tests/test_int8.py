"""precision="int8": inference with int8 products and exact int32 sums, on
every ISA this CPU has (the isa fixture: 16-bit products on scalar, avx2,
avx512; vpdpbusd on avx2_vnni, avx512_vnni, avx512_bf16; AMX-INT8 tiles on
amx_bf16), at 1, 2 and 3 threads.

Oracles: the NumPy reference of the same quantized arithmetic
(seqcore.reference.int8: the int32 sums and the scales bit for bit; whole
sequences equal to float32 rounding), the float32 results within the
documented error bound, torch's quantize_dynamic LSTM on the same weights
(when torch is installed), and the refusals, each naming its argument.
"""

import subprocess
import sys
import warnings

import numpy as np
import pytest

from cellcases import CELLS, forward, make_inputs, relative_error
from children import CHILD_CWD, child_env
from seqcore import _core, nn, ops
from seqcore.reference import int8 as q8


def problem(M, N, K, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    a = (scale * rng.standard_normal((M, K))).astype(np.float32)
    w = rng.standard_normal((N, K)).astype(np.float32)
    a[0, :] = 0  # a row of zeros: scale 0
    if M > 2:
        a[2, : K // 2] *= 1e3  # rows of very different ranges
    return a, w


# ---------------------------------------------------------------------------
# the exact sums


@pytest.mark.parametrize("nv", [1, 3, 4])
@pytest.mark.parametrize("M, N, K", [(1, 1, 1), (3, 17, 5), (20, 40, 64), (37, 33, 130), (16, 64, 256)])
def test_sums_and_scales_equal_the_reference_bit_for_bit(isa, nv, M, N, K):
    a, w = problem(M, N, K)
    S, sa, sw = _core.int8_sums(a, w, nv)
    a_q, ref_sa = q8.quantize_rows(a)
    w_q, ref_sw = q8.quantize_rows(w)
    assert S.dtype == np.int32
    np.testing.assert_array_equal(S, q8.int8_sums(a_q, w_q))
    np.testing.assert_array_equal(sa, ref_sa)
    np.testing.assert_array_equal(sw, ref_sw)


def test_sums_reach_the_extremes_without_saturation(isa):
    # every product 127·127 (or −127·127): vpmaddubsw's 16-bit pairs would saturate
    K = 300
    a = np.ones((5, K), np.float32)
    a[1] = -1
    w = np.ones((9, K), np.float32)
    w[4] = -1
    S, _, _ = _core.int8_sums(a, w, 1)
    expected = np.outer(np.where(np.arange(5) == 1, -1, 1), np.where(np.arange(9) == 4, -1, 1)) * 127 * 127 * K
    np.testing.assert_array_equal(S, expected)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_sums_are_the_same_at_any_thread_count(n):
    a, w = problem(50, 70, 200, seed=3)
    np.testing.assert_array_equal(_core.int8_sums(a, w, 4, n)[0], _core.int8_sums(a, w, 4, 1)[0])


def test_quantization_rounds_half_to_even_as_the_reference():
    # 127 / 127 · x for x = k + 0.5: ties
    a = np.array([[127, 0.5, 1.5, 2.5, -0.5, -1.5, 126.5]], np.float32)
    q, s = q8.quantize_rows(a)
    assert s[0] == np.float32(1)
    assert q.tolist() == [[127, 0, 2, 2, 0, -2, 126]]
    S, _, _ = _core.int8_sums(a, np.eye(7, dtype=np.float32) * 127, 1)
    np.testing.assert_array_equal(S[0], q[0].astype(np.int32) * 127)


def test_one_product_is_within_the_documented_bound():
    a, w = problem(30, 50, 77, seed=5)
    exact = a.astype(np.float64) @ w.T.astype(np.float64)
    got = q8.matmul_int8(a, w.T)
    bound = q8.int8_error_bound(a, w)
    assert (np.abs(got - exact) <= bound * (1 + 1e-5) + 1e-6 * np.abs(exact)).all()
    # and the bound is not vacuous: the error reaches a fair part of it
    assert (np.abs(got - exact) / np.maximum(bound, 1e-30)).max() > 0.05
    K = a.shape[1]
    coarse = K * np.abs(a).max(axis=1)[:, None] * np.abs(w).max(axis=1)[None, :] / 127
    assert (bound <= coarse * (1 + 1e-6)).all()


# ---------------------------------------------------------------------------
# whole sequences


def run(cell, shape, backend=None, seed=0, **options):
    T, B, D, H = shape
    inputs = make_inputs(cell, T, B, D, H, dtype=np.float32, seed=seed)
    outs, _ = forward(cell, inputs, train=False, backend=backend, **options)
    return outs


SHAPES = [(1, 1, 3, 5), (4, 3, 7, 16), (6, 9, 33, 40), (3, 20, 64, 64)]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("shape", SHAPES)
def test_native_equals_the_reference_of_the_same_arithmetic(isa, cell, shape):
    native = run(cell, shape, precision="int8")
    ref = run(cell, shape, backend="reference", precision="int8")
    for k in native:
        # the sums are exact; only the float32 epilogue (the vector sigmoid
        # and tanh, the order of the additions) differs, and a state that
        # lands on a rounding boundary of the next step's quantization
        # moves that row's product by one step of its scale
        assert relative_error(native[k], ref[k]) < 2e-3, (k, relative_error(native[k], ref[k]))


@pytest.mark.parametrize("shape", SHAPES)
def test_a_relu_rnn_in_int8_equals_the_reference_of_the_same_arithmetic(isa, shape):
    """nonlinearity="relu": the int8 products feed the RNN's relu epilogue."""
    T, B, D, H = shape
    rng = np.random.default_rng(4)
    x, h0 = rng.standard_normal((T, B, D)).astype(np.float32), rng.standard_normal((B, H)).astype(np.float32)
    W_ih, W_hh = (rng.uniform(-0.4, 0.4, (H, n)).astype(np.float32) for n in (D, H))
    b = rng.uniform(-0.2, 0.2, H).astype(np.float32)
    options = dict(train=False, precision="int8", nonlinearity="relu")
    y, hT, _ = ops.rnn_forward(x, h0, W_ih, W_hh, b, **options)
    y_ref, hT_ref, _ = ops.rnn_forward(x, h0, W_ih, W_hh, b, backend="reference", **options)
    assert (y >= 0).all() and (y == 0).any()  # relu, not tanh
    assert relative_error(y, y_ref) < 2e-3 and relative_error(hT, hT_ref) < 2e-3
    y_tanh, _, _ = ops.rnn_forward(x, h0, W_ih, W_hh, b, train=False, precision="int8")
    assert not np.allclose(y, y_tanh)


# ISAs whose epilogues are the same vector code: their int8 products differ
# (16-bit products, vpdpbusd, AMX tiles) but give the same int32 sums, so
# their outputs are the same bits. Across widths the epilogue's sigmoid and
# tanh round differently, as in float32.
FAMILIES = {"scalar": "scalar", "avx2": "avx2", "avx2_vnni": "avx2", "avx512": "avx512", "avx512_vnni": "avx512",
            "avx512_bf16": "avx512", "amx_bf16": "avx512"}


@pytest.mark.parametrize("cell", CELLS)
def test_every_isa_and_thread_count_gives_the_same_bits(cell):
    shape = (5, 20, 24, 48)  # 20 rows: AMX's tile of 16 and the rows past it
    before = _core.isa()
    outs = {}
    try:
        for name in _core.isas():
            ops.set_isa(name)
            for n in (1, 2, 3):
                outs[name, n] = run(cell, shape, precision="int8", num_threads=n)
    finally:
        ops.set_isa(before)
    first = {}
    for (name, n), o in outs.items():
        family = FAMILIES[name]
        if family not in first:
            first[family] = o
            continue
        for k in o:
            np.testing.assert_array_equal(o[k], first[family][k], err_msg=f"{name} at {n} threads, {k}")
    base = first["scalar"]
    for family, o in first.items():
        for k in o:
            assert relative_error(o[k], base[k]) < 1e-5, (family, k)


def test_a_forced_lower_isa_in_a_child_gives_the_same_bits(tmp_path):
    """SEQCORE_ISA forces the kernels at start-up: avx512 (16-bit products)
    gives the bits of the best ISA of its family (vpdpbusd, AMX), avx2 those
    of avx2_vnni."""
    code = """
import numpy as np
from seqcore import ops, _core
rng = np.random.default_rng(0)
x = rng.standard_normal((4, 20, 16)).astype(np.float32)
W_ih = (0.3 * rng.standard_normal((128, 16))).astype(np.float32)
W_hh = (0.3 * rng.standard_normal((128, 32))).astype(np.float32)
b = (0.1 * rng.standard_normal(128)).astype(np.float32)
y = ops.lstm_forward(x, None, None, W_ih, W_hh, b, train=False, precision="int8")[0]
np.save({out!r}, y)
print(_core.isa())
"""
    results = {}
    for isa in ("avx2", "avx2_vnni", "avx512", _core.isas()[-1]):
        if isa not in _core.isas() or isa in results:
            continue
        out = str(tmp_path / f"{isa}.npy")
        p = subprocess.run([sys.executable, "-c", code.format(out=out)], capture_output=True, text=True,
                           env=child_env(SEQCORE_ISA=isa), cwd=CHILD_CWD, timeout=120)
        assert p.returncode == 0, p.stderr
        assert p.stdout.strip() == isa
        results[isa] = np.load(out)
    if len(results) < 2:
        pytest.skip("one ISA")
    for isa, y in results.items():
        same = [other for other in results if FAMILIES[other] == FAMILIES[isa]]
        np.testing.assert_array_equal(y, results[same[0]], err_msg=isa)


@pytest.mark.parametrize("cell", CELLS)
def test_padded_reversed_batches_follow_the_reference(cell):
    T, B, D, H = 6, 5, 9, 20
    lengths = np.array([6, 0, 3, 6, 1])
    for reverse in (False, True):
        native = run(cell, (T, B, D, H), precision="int8", lengths=lengths, reverse=reverse)
        ref = run(cell, (T, B, D, H), backend="reference", precision="int8", lengths=lengths, reverse=reverse)
        for k in native:
            assert relative_error(native[k], ref[k]) < 2e-3, k


@pytest.mark.parametrize("cell", CELLS)
def test_int8_is_close_to_float32(cell):
    T, B, D, H = 20, 8, 64, 128
    inputs = make_inputs(cell, T, B, D, H, dtype=np.float32)
    inputs["W_ih"] /= 0.5 * np.sqrt(D) * 2  # as PyTorch's initialisation, U(±1/√H) in spread
    inputs["W_hh"] /= 0.5 * np.sqrt(H) * 2
    got = forward(cell, inputs, train=False, precision="int8")[0]
    fp32 = forward(cell, inputs, train=False)[0]
    for k in got:
        # a step's pre-activations move by at most the bound of its two
        # products (a few 1e-3 here); the gates pass at most that on
        assert np.abs(got[k] - fp32[k]).max() < 0.03, (k, np.abs(got[k] - fp32[k]).max())


def test_prepared_weights_give_the_bits_of_weights_quantized_in_the_call():
    inputs = make_inputs("gru", 4, 3, 128, 256, dtype=np.float32)
    w = ops.Int8Weights("gru", inputs["W_ih"], inputs["W_hh"])
    assert w.nbytes < 0.3 * (inputs["W_ih"].nbytes + inputs["W_hh"].nbytes)
    a = forward("gru", inputs, train=False, precision="int8")[0]
    b = forward("gru", inputs, train=False, precision="int8", int8_weights=w)[0]
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    with pytest.raises(ValueError, match="int8_weights"):
        ops.lstm_forward(np.zeros((1, 1, 10), np.float32), None, None, np.zeros((48, 10), np.float32),
                         np.zeros((48, 12), np.float32), np.zeros(48, np.float32), train=False, precision="int8",
                         int8_weights=w)


@pytest.mark.skipif(len(_core.isas()) < 2, reason="one ISA")
def test_prepared_weights_pack_again_under_another_isa():
    inputs = make_inputs("lstm", 3, 2, 8, 16, dtype=np.float32)
    w = ops.Int8Weights("lstm", inputs["W_ih"], inputs["W_hh"])
    before = _core.isa()
    try:
        ops.set_isa("scalar")
        a = forward("lstm", inputs, train=False, precision="int8", int8_weights=w)[0]
        b = forward("lstm", inputs, train=False, precision="int8")[0]
    finally:
        ops.set_isa(before)
    c = forward("lstm", inputs, train=False, precision="int8", int8_weights=w)[0]
    d = forward("lstm", inputs, train=False, precision="int8")[0]
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
        np.testing.assert_array_equal(c[k], d[k])


# ---------------------------------------------------------------------------
# refusals


def test_training_in_int8_is_refused_naming_precision():
    inputs = make_inputs("lstm", 2, 2, 3, 4, dtype=np.float32)
    with pytest.raises(ValueError, match="precision: 'int8' is for inference"):
        forward("lstm", inputs, train=True, precision="int8")
    layer = nn.LSTM(3, 4, precision="int8")
    with pytest.raises(ValueError, match="precision"):
        layer.forward(np.zeros((2, 2, 3), np.float32), train=True)
    layer.forward(np.zeros((2, 2, 3), np.float32), train=False)


def test_float64_with_int8_is_refused():
    inputs = make_inputs("rnn", 2, 2, 3, 4, dtype=np.float64)
    with pytest.raises(ValueError, match="precision: 'int8' needs float32"):
        forward("rnn", inputs, train=False, precision="int8")
    with pytest.raises(ValueError, match="precision"):
        nn.GRU(3, 4, dtype=np.float64, precision="int8")


@pytest.mark.parametrize("bad", ["int4", "INT8", 8, None])
def test_a_bad_precision_is_refused(bad):
    with pytest.raises(ValueError, match="precision: expected 'fp32', 'bf16' or 'int8'"):
        forward("gru", make_inputs("gru", 2, 2, 3, 4, dtype=np.float32), train=False, precision=bad)


def test_matmul_refuses_int8():
    with pytest.raises(ValueError, match="precision"):
        ops.matmul(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32), precision="int8")


# ---------------------------------------------------------------------------
# layers and models


def test_a_layer_caches_its_weights_and_quantizes_again_after_an_update():
    layer = nn.LSTM(6, 8, num_layers=2, bidirectional=True, seed=0, precision="int8")
    x = np.random.default_rng(0).standard_normal((5, 3, 6)).astype(np.float32)
    y1, _ = layer.forward(x, train=False)
    cached = dict(layer.int8_weights())
    assert set(cached) == {"_l0", "_l0_reverse", "_l1", "_l1_reverse"}
    y2, _ = layer.forward(x, train=False)
    assert all(layer.int8_weights()[k] is cached[k] for k in cached)
    np.testing.assert_array_equal(y1, y2)
    state = {k: v * 0.5 for k, v in layer.state_dict().items()}
    layer.load_state_dict(state)  # seqcore's write: params_version moves
    y3, _ = layer.forward(x, train=False)
    assert layer.int8_weights()["_l0"] is not cached["_l0"]
    layer.precision = "fp32"
    y4, _ = layer.forward(x, train=False)
    assert np.abs(y3 - y4).max() < 0.05 and not np.array_equal(y3, y4)


def test_stack_forward_takes_int8_with_a_cache_the_caller_keeps():
    layer = nn.GRU(5, 7, num_layers=2, seed=1)
    x = np.random.default_rng(1).standard_normal((4, 2, 5)).astype(np.float32)
    cache = {}
    y, final, saved = nn.recurrent.stack_forward("gru", layer.params, x, [None], num_layers=2, directions=1,
                                                 train=False, precision="int8", int8_weights=cache)
    assert saved is None and set(cache) == {"_l0", "_l1"}
    layer.precision = "int8"
    np.testing.assert_array_equal(y, layer.forward(x, train=False)[0])


def test_error_against_float32_is_within_torchs_quantize_dynamic():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    T, B, D, H = 30, 4, 64, 128
    ref = torch.nn.LSTM(D, H)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch 2.13: its quantized tensors are deprecated
        # (quantize_dynamic swaps a container's children, not the module given)
        qlstm = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(ref), {torch.nn.LSTM},
                                                       dtype=torch.qint8)[0]
    assert "quantized" in type(qlstm).__module__
    x = torch.randn(T, B, D)
    with torch.no_grad():
        y32 = ref(x)[0].numpy()
        yq = qlstm(x)[0].numpy()
    layer = nn.LSTM(D, H)
    layer.load_torch_state_dict(ref.state_dict())
    layer.precision = "int8"
    y8, _ = layer.forward(x.numpy(), train=False)
    ours, theirs = np.abs(y8 - y32).max(), np.abs(yq - y32).max()
    assert 0 < theirs and ours <= theirs * 1.25, (ours, theirs)


# ---------------------------------------------------------------------------
# the stepper: the int8 forward is the oracle, bit for bit


def step_alone(model, ids, states):
    """Each row alone through the model's forward (train=False), its state carried."""
    out = []
    for r, i in enumerate(ids):
        logits, states[r] = model.forward(np.array([[i]]), states[r], train=False)
        out.append(logits[0, 0])
    return np.stack(out)


def check_against_forward(model, batch_size, steps=4, seed=0, num_threads=1):
    stepper = model.stepper(batch_size, num_threads=num_threads)
    assert stepper.precision == "int8"
    rng = np.random.default_rng(seed)
    states = [None] * batch_size
    for _ in range(steps):
        ids = rng.integers(0, model.vocab_size, batch_size)
        got = stepper.step(ids).copy()
        np.testing.assert_array_equal(got, step_alone(model, ids, states))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("embed_size", [5, 0])
def test_stepper_rows_get_the_logits_of_the_int8_forward_on_every_isa(cell, embed_size, isa):
    model = nn.LanguageModel(11, embed_size, 37, num_layers=2, cell=cell, seed=3, precision="int8")
    check_against_forward(model, batch_size=7)


@pytest.mark.parametrize("batch_size", [1, 9, 21])
def test_stepper_tiles_of_rows_and_threads(batch_size, isa):
    """9, 21 rows: AMX tiles of 16 and the rows past them; 3 threads."""
    model = nn.LanguageModel(7, 3, 72, num_layers=2, cell="lstm", seed=6, precision="int8")
    check_against_forward(model, batch_size, steps=3, num_threads=3)


@pytest.mark.parametrize("cell", CELLS)
def test_stepper_without_the_table(cell, monkeypatch):
    monkeypatch.setattr(ops, "STEPPER_TABLE_BYTES", 0)
    for embed_size in (6, 0):
        model = nn.LanguageModel(13, embed_size, 20, num_layers=3, cell=cell, seed=1, precision="int8")
        check_against_forward(model, batch_size=5, steps=3)


def test_stepper_weights_take_a_quarter_and_follow_an_update():
    model = nn.LanguageModel(65, 64, 256, num_layers=2, cell="lstm", seed=0)
    fp32 = model.stepper(1, precision="fp32")
    int8 = model.stepper(1, precision="int8")
    recurrent = sum(v.nbytes for k, v in model.rnn.params.items() if k.startswith("weight_hh") or k.startswith("weight_ih_l1"))
    # (less than the whole saving: layer 0's unused W_ih slot, the threads' row buffers)
    assert int8.nbytes < fp32.nbytes - 0.5 * recurrent
    ids = np.array([3])
    before = int8.step(ids).copy()
    model.load_state_dict({k: v * 0.5 for k, v in model.state_dict().items()})
    int8.reset()
    after = int8.step(ids).copy()
    assert not np.array_equal(before, after)


def test_sampling_in_int8_follows_float32_but_near_ties():
    from seqcore.generate import sample
    from seqcore.text import Vocabulary
    vocab = Vocabulary([chr(97 + i) for i in range(20)])
    model = nn.LanguageModel(len(vocab), 16, 64, num_layers=2, cell="lstm", seed=2)
    a = sample(model, vocab, 40, seed=5, temperature=0.5, stop_at_eos=False)
    model.precision = "int8"
    b = sample(model, vocab, 40, seed=5, temperature=0.5, stop_at_eos=False)
    # the same draw u on nearly the same distribution: the same token but where a cumulative
    # probability lands within the logits' small error of u; then the texts part
    same = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), 40)
    assert same >= 5, (a, b)


def test_evaluate_in_int8_is_close_to_float32():
    from seqcore.train import evaluate
    from seqcore.text import Vocabulary
    vocab = Vocabulary([chr(97 + i) for i in range(20)])
    model = nn.LanguageModel(len(vocab), 16, 64, num_layers=2, cell="gru", seed=2)
    data = np.random.default_rng(0).integers(3, len(vocab), 3000)
    fp32 = evaluate(model, data, 8, 32, vocab).loss
    model.precision = "int8"
    int8 = evaluate(model, data, 8, 32, vocab).loss
    assert abs(int8 - fp32) < 0.02


# ---------------------------------------------------------------------------
# the command line


def test_cli_refuses_sizes_that_cannot_fit_at_once(tmp_path, capsys):
    import time
    from cli_calls import cli_exit
    from test_cli import TEXT, train
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "run"
    train(str(corpus), out)
    capsys.readouterr()
    start = time.perf_counter()
    assert cli_exit(["sample", str(out), "--num-samples", "100000000", "--length", "5"]) == 2
    assert time.perf_counter() - start < 5  # < 1 s on a quiet machine; the bound leaves room for a loaded one
    assert "--num-samples" in capsys.readouterr().err
    assert cli_exit(["eval", str(out), str(corpus), "--batch", "100000000", "--seq-len", "1000"]) == 2
    assert "--batch, --seq-len" in capsys.readouterr().err
    assert cli_exit(["sample", str(out), "--length", "20", "--precision", "int8", "--seed", "1"]) == 0
    assert cli_exit(["eval", str(out), str(corpus), "--precision", "int8"]) == 0
    assert "nats/char" in capsys.readouterr().out


def test_cli_bench_in_int8_and_its_threads(capsys):
    from cli_calls import cli_exit
    assert cli_exit(["bench", "--T", "2", "--B", "2", "--D", "3", "--H", "4", "--repeat", "1", "--threads", "1",
                     "--precision", "int8"]) == 0
    out = capsys.readouterr().out
    assert "float32 int8" in out and "infer" in out and "train" not in out.split("\n", 3)[3]
    assert cli_exit(["bench", "--dtype", "float64", "--precision", "int8"]) == 2
    assert "--precision int8 needs --dtype float32" in capsys.readouterr().err
    assert cli_exit(["bench", "--threads", "0"]) == 2
    assert "--threads" in capsys.readouterr().err
