"""seqcore.gradcheck: passes on every seqcore layer and model (stacked,
bidirectional, with lengths and states), on a user's own layer and on a pair
of functions; catches a planted error (the course's printed dΓf with the
candidate where c_{t-1} belongs); refuses what it cannot check."""


import numpy as np
import pytest

import seqcore
from seqcore import nn, ops
from seqcore.reference.lstm import lstm_cell_forward

F64 = np.float64
RIGHT = 1e-5  # a right backward in float64 gives ~1e-6 or less (rounding in L, see the module doc)
WRONG = 1e-2  # a wrong formula gives errors near 1


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("cell", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("layers, bidirectional, lengths", [(1, False, None), (2, True, [5, 2, 4]), (2, False, [3, 5, 1])])
def test_recurrent_layers_pass_with_states_and_lengths(cell, layers, bidirectional, lengths):
    layer = getattr(nn, cell)(3, 4, num_layers=layers, bidirectional=bidirectional, dtype=F64, seed=1)
    n = layers * (2 if bidirectional else 1)
    state = (randn(n, 3, 4, seed=2), randn(n, 3, 4, seed=3)) if cell == "LSTM" else randn(n, 3, 4, seed=2)
    result = seqcore.gradcheck(layer, randn(5, 3, 3), state=state,
                               lengths=None if lengths is None else np.array(lengths))
    assert result.error < RIGHT, str(result)
    assert result and result.passed
    states = ["state[0]", "state[1]"] if cell == "LSTM" else ["state"]
    assert result.arrays == tuple(layer.params) + ("x", *states)  # every parameter, x and the state


@pytest.mark.parametrize("make, inputs", [
    (lambda: nn.Linear(4, 3, dtype=F64, seed=0), lambda: randn(5, 4)),
    (lambda: nn.Embedding(7, 3, dtype=F64, seed=0), lambda: np.array([[1, 2], [6, 0]])),
    (lambda: nn.Sequential(nn.Linear(4, 5, dtype=F64, seed=0), nn.Tanh(), nn.Linear(5, 2, dtype=F64, seed=1),
                           nn.Sigmoid()), lambda: randn(6, 4)),
    (lambda: nn.LanguageModel(9, embed_size=3, hidden_size=4, num_layers=2, dtype=F64, seed=0),
     lambda: np.array([[1, 2, 3], [4, 5, 6], [7, 8, 0]])),
    (lambda: nn.LanguageModel(6, embed_size=0, hidden_size=4, num_layers=1, cell="rnn", dtype=F64, seed=0),
     lambda: np.array([[1, 2], [3, 4], [5, 0]])),
    (lambda: nn.SequenceClassifier(3, input_size=4, hidden_size=5, bidirectional=True, cell="gru", dtype=F64,
                                   seed=0), lambda: randn(4, 2, 4)),
    (lambda: nn.SequenceTagger(3, vocab_size=8, embed_size=3, hidden_size=4, num_layers=2, dtype=F64, seed=0),
     lambda: np.array([[1, 2], [3, 4], [5, 7]])),
])
def test_other_layers_and_models_pass(make, inputs):
    result = seqcore.gradcheck(make(), inputs())
    assert result.error < RIGHT, str(result)


def test_numerical_gradient_of_a_known_function_at_all_or_listed_entries():
    a = randn(3, 4)
    kept = a.copy()
    f = lambda: float(np.sum(np.sin(a)))  # noqa: E731
    assert np.allclose(seqcore.gradient_check.numerical_gradient(f, a), np.cos(a), rtol=0, atol=1e-9)
    listed = [(0, 1), (2, 3)]
    g = seqcore.gradient_check.numerical_gradient(f, a, entries=listed)
    assert np.allclose([g[i] for i in listed], [np.cos(a[i]) for i in listed], rtol=0, atol=1e-9)
    assert np.count_nonzero(g) == 2
    assert np.array_equal(a, kept)  # every entry moved back


def test_sampled_entries_and_the_report():
    layer = nn.LSTM(6, 8, dtype=F64, seed=0)
    result = seqcore.gradcheck(layer, randn(4, 2, 6), entries=5, seed=3)
    # 4 parameters and x, 5 entries each
    assert result.entries == 5 * 5
    assert result.error < RIGHT
    assert result.where in str(result) and result.where.startswith(result.name + "[")
    assert seqcore.gradcheck(layer, randn(4, 2, 6), entries=5, seed=3) == result  # the seed fixes the sample


def test_every_entry_with_entries_none():
    layer = nn.GRU(3, 4, dtype=F64, seed=0)
    result = seqcore.gradcheck(layer, randn(3, 2, 3), entries=None)
    assert result.entries == layer.num_params() + 3 * 2 * 3 and result.passed


def test_a_nan_gradient_fails_wherever_it_is():
    forward, backward = lstm_pair()
    nan_in_dW_ih = lambda dy, dh: (lambda g: (g[0], g[1] * np.nan, g[2], g[3]))(backward(dy, dh))  # noqa: E731
    result = seqcore.gradcheck((forward, nan_in_dW_ih), lstm_inputs())
    assert result.name == "inputs[1]" and result.error == np.inf and not result
    assert "FAILED" in str(result)


def test_a_users_layer_with_a_state_but_no_state_grad_is_checked_without_it():
    class Affine(nn.Layer):  # y = x·w + h0, no state_grad
        def __init__(self):
            super().__init__()
            self.w = self.add_param("w", randn(3, seed=5))

        def forward(self, x, state=None, train=True):
            self.x = x
            return x * self.w + (0 if state is None else state)

        def backward(self, dy):
            self._grads["w"] += (dy * self.x).reshape(-1, 3).sum(axis=0)
            return dy * self.w

    result = seqcore.gradcheck(Affine(), randn(2, 3), state=randn(2, 3, seed=1))
    assert result.passed and result.arrays == ("w", "x")


def test_the_layers_accumulated_gradients_are_left_as_they_were():
    layer = nn.GRU(3, 4, dtype=F64, seed=0)
    for g in layer.grads.values():
        g[...] = 7.0
    seqcore.gradcheck(layer, randn(3, 2, 3))
    assert all(np.all(g == 7.0) for g in layer.grads.values())


# ---------------------------------------------------------------------------
# a user's own layer, written as the course writes it, with a planted error


class CourseLSTM(nn.Layer):
    """An LSTM over a whole sequence with a hand-written BPTT, the course's
    way; ``course_df=True`` plants the printed course formula for dΓf,
    dΓf = dc ⊙ c̃_{t-1} (the previous step's candidate) where c_{t-1} belongs."""

    def __init__(self, D, H, course_df=False, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.W_ih = self.add_param("W_ih", rng.standard_normal((4 * H, D)) * 0.5)
        self.W_hh = self.add_param("W_hh", rng.standard_normal((4 * H, H)) * 0.5)
        self.b = self.add_param("b", rng.standard_normal(4 * H) * 0.5)
        self.H, self.course_df = H, course_df

    def forward(self, x, train=True):
        T, B, _ = x.shape
        h = [np.zeros((B, self.H))]
        c = [np.zeros((B, self.H))]
        gates = []
        for t in range(T):
            h_t, c_t, g_t = lstm_cell_forward(x[t], h[-1], c[-1], self.W_ih, self.W_hh, self.b)
            h.append(h_t)
            c.append(c_t)
            gates.append(g_t)
        self.saved = (x, h, c, gates)
        return np.stack(h[1:])

    def backward(self, dy):
        x, h, c, gates = self.saved
        H = self.H
        dx = np.zeros_like(x)
        dh_next, dc_next = np.zeros_like(h[0]), np.zeros_like(c[0])
        for t in reversed(range(len(gates))):
            i, f, g, o = (gates[t][:, k * H:(k + 1) * H] for k in range(4))
            dh = dy[t] + dh_next
            tc = np.tanh(c[t + 1])
            dc = dc_next + dh * o * (1 - tc ** 2)
            c_prev = (gates[t - 1][:, 2 * H:3 * H] if t > 0 else np.zeros_like(g)) if self.course_df else c[t]
            da = np.concatenate([dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g ** 2),
                                 dh * tc * o * (1 - o)], axis=1)
            self._grads["W_ih"] += da.T @ x[t]
            self._grads["W_hh"] += da.T @ h[t]
            self._grads["b"] += da.sum(axis=0)
            dx[t] = da @ self.W_ih
            dh_next, dc_next = da @ self.W_hh, dc * f
        return dx


def test_a_users_own_layer_passes():
    result = seqcore.gradcheck(CourseLSTM(3, 4), randn(6, 2, 3))
    assert result.error < RIGHT, str(result)


def test_the_course_formula_for_the_forget_gate_is_caught_where_it_is_wrong():
    H = 4
    result = seqcore.gradcheck(CourseLSTM(3, H, course_df=True), randn(6, 2, 3))
    assert result.error > WRONG and not result, str(result)
    # the worst entry is a forget gate's row of a parameter, or x
    assert result.name == "x" or H <= result.index[0] < 2 * H, str(result)


# ---------------------------------------------------------------------------
# a pair of functions


def lstm_pair(scale_dx=1.0):
    saved = {}

    def forward(x, W_ih, W_hh, b):
        y, hT, cT, saved["cache"] = ops.lstm_forward(x, None, None, W_ih, W_hh, b)
        return y, hT

    def backward(dy, dhT):
        dx, _, _, dW_ih, dW_hh, db = ops.lstm_backward(dy, dhT, None, saved["cache"])
        return dx * scale_dx, dW_ih, dW_hh, db

    return forward, backward


def lstm_inputs(D=3, H=4):
    return randn(5, 2, D, seed=1), randn(4 * H, D, seed=2) * 0.5, randn(4 * H, H, seed=3) * 0.5, randn(4 * H, seed=4)


def test_a_pair_of_functions_passes_and_a_wrong_one_is_caught():
    assert seqcore.gradcheck(lstm_pair(), lstm_inputs()).error < RIGHT
    wrong = seqcore.gradcheck(lstm_pair(scale_dx=1.05), lstm_inputs())
    assert wrong.name == "inputs[0]" and 0.04 < wrong.error < 0.06, str(wrong)


def test_dy_given_for_the_first_output_only():
    x, W_ih, W_hh, b = lstm_inputs()
    forward, backward = lstm_pair()
    dy = randn(5, 2, 4, seed=9)
    result = seqcore.gradcheck((forward, lambda dy, dh: backward(dy, None)), (x, W_ih, W_hh, b), dy)
    assert result.error < RIGHT


# ---------------------------------------------------------------------------
# what it cannot check


def test_what_cannot_be_checked_is_refused_naming_the_argument():
    with pytest.raises(TypeError, match="float64"):
        seqcore.gradcheck(nn.LSTM(3, 4, seed=0), randn(2, 2, 3).astype(np.float32))
    with pytest.raises(TypeError, match="float64"):
        seqcore.gradcheck(nn.Linear(3, 2, dtype=F64), randn(2, 3).astype(np.float32))
    with pytest.raises(ValueError, match="deterministic"):
        seqcore.gradcheck(nn.Sequential(nn.Linear(3, 4, dtype=F64), nn.Dropout(0.5, seed=0)), randn(5, 3))
    with pytest.raises(TypeError, match="model"):
        seqcore.gradcheck(lambda x: x, randn(3))
    with pytest.raises(ValueError, match="entries"):
        seqcore.gradcheck(nn.Linear(3, 2, dtype=F64), randn(2, 3), entries=0)
    with pytest.raises(ValueError, match="eps"):
        seqcore.gradcheck(nn.Linear(3, 2, dtype=F64), randn(2, 3), eps=float("nan"))
    with pytest.raises(ValueError, match="dy"):
        seqcore.gradcheck(nn.Linear(3, 2, dtype=F64), randn(2, 3), dy=randn(3, 2))
    forward, backward = lstm_pair()
    with pytest.raises(ValueError, match="2 gradients for 4 inputs"):
        seqcore.gradcheck((forward, lambda dy, dh: backward(dy, dh)[:2]), lstm_inputs())
    with pytest.raises(ValueError, match="inputs"):
        seqcore.gradcheck((forward, backward), (np.arange(3),))
