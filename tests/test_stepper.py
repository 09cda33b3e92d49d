"""LanguageModel.stepper(): a model prepared for generation.

Oracle: the model's own forward on ids (1, 1) with the state carried, one
row at a time, which the stepper must match bit for bit (the rows of a batch
too); torch is not needed. Then the stepper's weights: refreshed after
seqcore writes parameters, stale (and refreshable) after a user's own write.
"""

import numpy as np
import pytest

import seqcore
from seqcore import ops
from seqcore.nn import LanguageModel, Stepper
from seqcore.train.optim import SGD


def step_alone(model, ids, states):
    """Each row alone through model.forward (T = 1, B = 1) from its state:
    the logits (B, V), and the states moved on."""
    rows = []
    for r, i in enumerate(ids):
        logits, states[r] = model.forward(np.array([[i]]), states[r], train=False)
        rows.append(logits[0, 0])
    return np.array(rows)


def check_against_forward(model, batch_size, steps=6, seed=0, num_threads=1):
    stepper = model.stepper(batch_size, num_threads=num_threads)
    assert stepper.precision == model.precision
    rng = np.random.default_rng(seed)
    states = [None] * batch_size
    for _ in range(steps):
        ids = rng.integers(0, model.vocab_size, batch_size)
        got = stepper.step(ids).copy()
        np.testing.assert_array_equal(got, step_alone(model, ids, states))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("embed_size", [5, 0])  # 0: one-hot input
def test_each_row_gets_the_logits_of_the_forward_bit_for_bit(cell, dtype, embed_size):
    # H = 37: a partial vector at the end of every row; 2 layers; 7 rows: partial tiles
    model = LanguageModel(11, embed_size, 37, num_layers=2, cell=cell, dtype=dtype, seed=3)
    check_against_forward(model, batch_size=7)


@pytest.mark.parametrize("batch_size", [1, 2, 3, 13])
def test_every_tile_of_rows(batch_size):
    """Tiles of 1 row (chains interleaved) and of 2 … 8 rows (chain after chain)."""
    for cell in ("lstm", "gru"):
        check_against_forward(LanguageModel(7, 3, 21, num_layers=2, cell=cell, seed=6), batch_size, steps=3)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_without_the_table_of_the_first_projection_too(cell, monkeypatch):
    """A vocabulary too large for the table of x W_ihᵀ: layer 0 projects each step."""
    monkeypatch.setattr(ops, "STEPPER_TABLE_BYTES", 0)
    for embed_size in (6, 0):
        model = LanguageModel(13, embed_size, 20, num_layers=3, cell=cell, seed=1)
        check_against_forward(model, batch_size=5)


def test_every_instruction_set(isa):
    for cell in ("rnn", "lstm", "gru"):
        check_against_forward(LanguageModel(9, 4, 33, num_layers=2, cell=cell, seed=2), batch_size=4, steps=3)


def test_a_shakespeare_sized_model_in_float32():
    check_against_forward(LanguageModel(65, 64, 256, num_layers=2, cell="lstm", seed=0), batch_size=9, steps=3)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_two_threads_give_the_logits_of_one(cell):
    """Big enough a step for two threads (each owning half the units of every
    layer and half the vocabulary); the forward stays the oracle."""
    model = LanguageModel(67, 8, 130, num_layers=2, cell=cell, seed=4)
    one, two = model.stepper(8), model.stepper(8, num_threads=2)
    for i in range(4):
        np.testing.assert_array_equal(one.step(np.arange(8) * (i + 1)), two.step(np.arange(8) * (i + 1)))
    check_against_forward(model, batch_size=8, steps=2, num_threads=2)
    with pytest.raises(ValueError, match="num_threads"):
        model.stepper(1, num_threads=0)


def test_fewer_ids_step_the_first_rows_and_leave_the_others():
    model = LanguageModel(10, 4, 16, num_layers=2, cell="gru", seed=0)
    stepper = model.stepper(4)
    stepper.step([1, 2, 3, 4])
    before = stepper.state
    logits = stepper.step([5, 6])
    assert logits.shape == (2, 10)
    after = stepper.state
    np.testing.assert_array_equal(after[:, 2:], before[:, 2:])
    assert not np.array_equal(after[:, :2], before[:, :2])


def test_state_reset_broadcast_and_read_in_the_forwards_format():
    model = LanguageModel(10, 4, 16, num_layers=2, cell="lstm", seed=0)
    _, state = model.forward(np.array([[1], [2], [3]]), None, train=False)  # h, c (2, 1, 16)
    stepper = model.stepper(3)
    stepper.reset(state)  # B = 1: every row
    h, c = stepper.state
    assert h.shape == c.shape == (2, 3, 16)
    np.testing.assert_array_equal(h, np.repeat(state[0], 3, axis=1))
    np.testing.assert_array_equal(c, np.repeat(state[1], 3, axis=1))
    # from there each row continues as the forward does
    logits = stepper.step([4, 5, 6]).copy()
    np.testing.assert_array_equal(logits, step_alone(model, [4, 5, 6], [state] * 3))
    stepper.reset()
    assert not stepper.state[0].any() and not stepper.state[1].any()


def test_keep_moves_the_rows_still_running_to_the_front():
    model = LanguageModel(10, 4, 16, num_layers=1, cell="rnn", seed=0)
    stepper = model.stepper(4)
    stepper.step([1, 2, 3, 4])
    h = stepper.state
    stepper.keep([3, 1])
    np.testing.assert_array_equal(stepper.state[:, :2], h[:, [3, 1]])


def test_step_returns_the_steppers_own_array_every_time():
    """No array is made for the logits per step: the same memory, overwritten."""
    stepper = LanguageModel(10, 4, 16, num_layers=1, seed=0).stepper(2)
    a = stepper.step([1, 2])
    b = stepper.step([3, 4])
    assert np.shares_memory(a, b)


# ---------------------------------------------------------------------------
# precision "bf16": the forward in bf16 is the oracle, bit for bit


def bf16_model(*args, **kwargs):
    return LanguageModel(*args, precision="bf16", **kwargs)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("embed_size", [5, 0])
def test_bf16_rows_get_the_logits_of_the_bf16_forward_on_every_isa(cell, embed_size, isa):
    """amx_bf16 (tiles), avx512_bf16 (vdpbf16ps), and the ISAs without
    bfloat16 instructions (operands rounded to bfloat16, float32 products),
    each against the forward of the same ISA. H = 37: a pair of k with a
    zero, a partial group of columns, no whole AMX block past the first; 2
    layers; 7 rows: one tile, several tiles with the float32 tiles' rows."""
    check_against_forward(bf16_model(11, embed_size, 37, num_layers=2, cell=cell, seed=3), batch_size=7, steps=4)


@pytest.mark.parametrize("batch_size", [1, 5, 16, 21])
def test_bf16_every_tile_of_rows_and_the_amx_remainder(batch_size, isa):
    """H = 72: two whole AMX blocks of 32 k and 4 pairs after them (vdpbf16ps
    chains); up to two AMX tiles of rows (21 = 16 + 5) and rows past B in a
    tile."""
    for cell in ("lstm", "gru"):
        check_against_forward(bf16_model(7, 3, 72, num_layers=2, cell=cell, seed=6), batch_size, steps=3)


def test_bf16_k_past_one_block_of_the_products(monkeypatch, isa):
    """An embedding of 1100 (> 1024: the forward's bf16 product cuts K into
    blocks, summed into C in order), with and without the table of layer 0."""
    model = bf16_model(9, 1100, 40, num_layers=2, cell="lstm", seed=1)
    check_against_forward(model, batch_size=3, steps=3)
    monkeypatch.setattr(ops, "STEPPER_TABLE_BYTES", 0)
    check_against_forward(model, batch_size=3, steps=3)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_bf16_without_the_table_of_the_first_projection(cell, monkeypatch):
    monkeypatch.setattr(ops, "STEPPER_TABLE_BYTES", 0)
    for embed_size in (6, 0):
        check_against_forward(bf16_model(13, embed_size, 20, num_layers=3, cell=cell, seed=1), batch_size=5)


def test_bf16_a_shakespeare_sized_model():
    check_against_forward(bf16_model(65, 64, 256, num_layers=2, cell="lstm", seed=0), batch_size=9, steps=3)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_bf16_two_and_three_threads_give_the_logits_of_one(cell, isa):
    """Each thread converts its own columns of the rows and meets the others
    before they are read; the sums do not depend on who computes them."""
    model = bf16_model(67, 8, 130, num_layers=2, cell=cell, seed=4)
    one, two, three = model.stepper(8), model.stepper(8, num_threads=2), model.stepper(8, num_threads=3)
    for i in range(4):
        ids = np.arange(8) * (i + 1) % 67
        want = one.step(ids).copy()
        np.testing.assert_array_equal(two.step(ids), want)
        np.testing.assert_array_equal(three.step(ids), want)
    check_against_forward(model, batch_size=8, steps=2, num_threads=2)


def test_bf16_matches_the_numpy_reference_on_rounded_operands():
    """Independent of the forward: one step from a zero state against NumPy
    on weights and inputs rounded to bfloat16 (float64 sums: only the
    summation order differs)."""
    from seqcore.reference.bf16 import round_bf16
    model = bf16_model(12, 6, 48, num_layers=2, cell="lstm", seed=5)
    got = model.stepper(1).step([7])[0].astype(np.float64)
    p, r = model.rnn.params, lambda a: round_bf16(a).astype(np.float64)
    x = model.embedding.weight[7]
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    for l in range(2):
        g = r(p[f"weight_ih_l{l}"]) @ r(x) + p[f"bias_ih_l{l}"] + p[f"bias_hh_l{l}"]  # h0 = 0: no W_hh term
        i, f, gg, o = np.split(g, 4)
        x = (sig(o) * np.tanh(sig(i) * np.tanh(gg))).astype(np.float32)  # h as the stepper keeps it
    want = r(model.head.weight) @ r(x) + model.head.bias
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    fp32 = model.stepper(1, precision="fp32").step([7])[0]
    assert not np.array_equal(fp32, got.astype(np.float32))  # bf16 is not float32's products


def test_bf16_follows_the_model_and_may_be_chosen():
    model = LanguageModel(10, 4, 16, seed=0)
    assert model.stepper(1).precision == "fp32"
    assert model.stepper(1, precision="bf16").precision == "bf16"
    model.precision = "bf16"
    assert model.stepper(1).precision == "bf16"
    assert model.stepper(1, precision="fp32").precision == "fp32"
    with pytest.raises(ValueError, match="^precision: expected 'fp32', 'bf16' or 'int8', got 'bf32'"):
        model.stepper(1, precision="bf32")
    double = LanguageModel(10, 4, 16, seed=0, dtype=np.float64)
    with pytest.raises(ValueError, match="^precision: 'bf16' needs float32"):
        double.stepper(1, precision="bf16")


def test_bf16_under_a_forced_lower_isa_in_a_child():
    """SEQCORE_ISA set at start-up (as test_bf16 does): the stepper rounds and
    matches that ISA's forward."""
    import subprocess
    import sys
    from children import CHILD_CWD, child_env
    isa = "avx2" if "avx2" in seqcore.info()["isas"] else "scalar"
    code = ("import numpy as np, seqcore\n"
            "from seqcore.nn import LanguageModel\n"
            "m = LanguageModel(11, 5, 37, num_layers=2, seed=3, precision='bf16')\n"
            "st, states, same = m.stepper(3), [None] * 3, True\n"
            "for t in range(3):\n"
            "    got = st.step(np.array([t, t + 1, t + 2])).copy()\n"
            "    for r in range(3):\n"
            "        y, states[r] = m.forward(np.array([[t + r]]), states[r], train=False)\n"
            "        same &= np.array_equal(got[r], y[0, 0])\n"
            "print(seqcore.info()['isa'], same)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=child_env(None, SEQCORE_ISA=isa), cwd=CHILD_CWD)
    assert done.stdout.split() == [isa, "True"], done.stderr


def test_bf16_stepper_is_refreshed_after_an_optimisers_step():
    model = bf16_model(10, 4, 16, num_layers=2, cell="lstm", seed=0)
    stepper = model.stepper(1)
    stepper.step([1])
    state = stepper.state
    logits, _ = model.forward(np.array([[1, 2, 3]]).T, None, train=True)
    model.backward(np.ones_like(logits))
    SGD(model, lr=0.5).step()
    got = stepper.step([2]).copy()
    np.testing.assert_array_equal(got, step_alone(model, [2], [state]))


# ---------------------------------------------------------------------------
# fresh weights


def test_an_optimisers_step_refreshes_the_weights():
    model = LanguageModel(10, 4, 16, num_layers=2, cell="lstm", seed=0)
    stepper = model.stepper(1)
    stepper.step([1])
    state = stepper.state
    logits, _ = model.forward(np.array([[1, 2, 3]]).T, None, train=True)
    model.backward(np.ones_like(logits))
    SGD(model, lr=0.5).step()
    got = stepper.step([2]).copy()  # the new weights, from the kept state
    np.testing.assert_array_equal(got, step_alone(model, [2], [state]))


def test_load_state_dict_refreshes_the_weights():
    model = LanguageModel(10, 4, 16, num_layers=1, cell="gru", seed=0)
    other = LanguageModel(10, 4, 16, num_layers=1, cell="gru", seed=1)
    stepper = model.stepper(1)
    stepper.step([3])
    model.load_state_dict(other.state_dict())
    stepper.reset()
    np.testing.assert_array_equal(stepper.step([3]), step_alone(other, [3], [None]))


def test_a_users_own_write_needs_refresh_which_keeps_the_state():
    model = LanguageModel(10, 4, 16, num_layers=1, cell="rnn", seed=0)
    stepper = model.stepper(1)
    stepper.step([3])
    state = stepper.state
    model.head.bias[...] += 1.0  # not seen: the stepper has its own copy
    stale = stepper.step([4]).copy()
    stepper.reset(state)
    stepper.refresh()
    np.testing.assert_array_equal(stepper.state, state)
    fresh = stepper.step([4]).copy()
    np.testing.assert_array_equal(fresh, step_alone(model, [4], [state]))
    np.testing.assert_allclose(fresh, stale + 1.0, rtol=1e-6)


# ---------------------------------------------------------------------------
# bad input


def test_bad_arguments_are_rejected_with_their_names():
    model = LanguageModel(10, 4, 16, num_layers=2, cell="lstm", seed=0)
    with pytest.raises(ValueError, match="batch_size"):
        model.stepper(0)
    with pytest.raises(TypeError, match="model"):
        Stepper(object())
    stepper = model.stepper(2)
    with pytest.raises(ValueError, match=r"ids: expected values in \[0, 10\), got 10"):
        stepper.step([1, 10])
    with pytest.raises(ValueError, match="ids: expected at most batch_size = 2 ids, got 3"):
        stepper.step([1, 2, 3])
    with pytest.raises(TypeError, match="ids"):
        stepper.step([1.5])
    with pytest.raises(TypeError, match=r"state: expected a tuple \(h, c\)"):
        stepper.reset(np.zeros((2, 2, 16), np.float32))
    with pytest.raises(ValueError, match="state: expected h"):
        stepper.reset((np.zeros((2, 3, 16), np.float32), np.zeros((2, 3, 16), np.float32)))
    with pytest.raises(ValueError, match="rows"):
        stepper.keep([0, 0])


def test_draw_rejects_what_it_cannot_draw_from():
    with pytest.raises(ValueError, match="logits: contains NaN or inf"):
        ops.draw(np.array([[0.0, np.nan]]), np.array([0.5]))
    with pytest.raises(FloatingPointError, match="temperature"):
        ops.draw(np.array([[1e300, -1e300]]), np.array([0.5]), temperature=1e-10)
    with pytest.raises(ValueError, match="u: expected 1 numbers in"):
        ops.draw(np.array([[0.0, 1.0]]), np.array([1.0]))
