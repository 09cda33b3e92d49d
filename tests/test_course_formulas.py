"""The LSTM backward formulas, proven at one step against finite differences
(oracle: finite differences), next to the course notes' misprinted ones.

The pre-activation gradients of step t are isolated with an input feature
that is 1 at step t only: the gradient of W_ih's column for that feature is
then exactly step t's pre-activation gradient (B = 1).
"""

import numpy as np

from seqcore import reference

T, D, H = 2, 3, 4
EPS = 1e-6


def problem():
    rng = np.random.default_rng(3)
    x = 0.5 * rng.standard_normal((T, 1, D))
    x[:, 0, :T] = np.eye(T)  # feature t is the indicator of step t
    h0, c0 = 0.5 * rng.standard_normal((2, 1, H))
    W_ih = 0.5 * rng.standard_normal((4 * H, D))
    W_hh = 0.5 * rng.standard_normal((4 * H, H))
    b = 0.5 * rng.standard_normal(4 * H)
    dhT, dcT = rng.standard_normal((2, 1, H))
    return x, h0, c0, W_ih, W_hh, b, dhT, dcT


def loss(x, h0, c0, W_ih, W_hh, b, dhT, dcT):
    _, hT, cT, _ = reference.lstm_forward(x, h0, c0, W_ih, W_hh, b, train=False)
    return float(np.sum(hT * dhT) + np.sum(cT * dcT))


def last_step_preactivation_gradient_by_finite_differences():
    """(4H,) gradient of the loss w.r.t. the last step's pre-activations [i, f, g, o]."""
    args = list(problem())
    W_ih = args[3]
    g = np.zeros(4 * H)
    for j in range(4 * H):
        old = W_ih[j, T - 1]
        W_ih[j, T - 1] = old + EPS
        up = loss(*args)
        W_ih[j, T - 1] = old - EPS
        down = loss(*args)
        W_ih[j, T - 1] = old
        g[j] = (up - down) / (2 * EPS)
    return g


def last_step_values():
    x, h0, c0, W_ih, W_hh, b, dhT, dcT = problem()
    _, _, _, cache = reference.lstm_forward(x, h0, c0, W_ih, W_hh, b)
    gates, cs = cache["gates"], cache["cs"]  # cs[s]: the cell state before step s
    i, f, g, o = (gates[T - 1, 0, k * H:(k + 1) * H] for k in range(4))
    g_prev = gates[T - 2, 0, 2 * H:3 * H]
    return dict(i=i, f=f, g=g, o=o, g_prev=g_prev, c=cs[T, 0], c_prev=cs[T - 1, 0],
                dh=dhT[0], dc_next=dcT[0])


def test_derived_formulas_match_finite_differences():
    v = last_step_values()
    i, f, g, o, dh = v["i"], v["f"], v["g"], v["o"], v["dh"]
    dc = v["dc_next"] + dh * o * (1 - np.tanh(v["c"]) ** 2)
    derived = np.concatenate([
        dc * g * i * (1 - i),           # update gate Γu
        dc * v["c_prev"] * f * (1 - f),  # forget gate Γf
        dc * i * (1 - g**2),            # candidate c̃
        dh * np.tanh(v["c"]) * o * (1 - o),  # output gate Γo
    ])
    fd = last_step_preactivation_gradient_by_finite_differences()
    np.testing.assert_allclose(derived, fd, rtol=1e-6, atol=1e-9)


def test_reference_backward_gives_the_same_step_gradient():
    x, h0, c0, W_ih, W_hh, b, dhT, dcT = problem()
    _, _, _, cache = reference.lstm_forward(x, h0, c0, W_ih, W_hh, b)
    dW_ih = reference.lstm_backward(None, dhT, dcT, cache)[3]
    fd = last_step_preactivation_gradient_by_finite_differences()
    np.testing.assert_allclose(dW_ih[:, T - 1], fd, rtol=1e-6, atol=1e-9)


def test_misprinted_formulas_disagree_with_finite_differences():
    """The notes' dc̃ and dΓu carry an extra factor i_t; their dΓf uses
    c̃_{t-1} where c_{t-1} belongs. Each is visibly wrong."""
    v = last_step_values()
    i, f, g, o, dh = v["i"], v["f"], v["g"], v["o"], v["dh"]
    dc = v["dc_next"] + dh * o * (1 - np.tanh(v["c"]) ** 2)
    fd = last_step_preactivation_gradient_by_finite_differences()
    fd_i, fd_f, fd_g = fd[:H], fd[H:2 * H], fd[2 * H:3 * H]
    misprinted = {
        "dΓu": (dc * g * i * i * (1 - i), fd_i),
        "dΓf": (dc * v["g_prev"] * f * (1 - f), fd_f),
        "dc̃": (dc * i * i * (1 - g**2), fd_g),
    }
    for name, (wrong, right) in misprinted.items():
        assert np.max(np.abs(wrong - right)) > 1e-2 * np.max(np.abs(right)), name
