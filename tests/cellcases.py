"""One interface over the three cells for tests: random problems, forward,
backward, and named gradients. Names are those of seqcore.ops' arguments."""

import numpy as np

import seqcore
from seqcore import ops

GATES = {"rnn": 1, "lstm": 4, "gru": 3}
CELLS = tuple(GATES)


def state_names(cell):
    return ("h0", "c0") if cell == "lstm" else ("h0",)


def bias_names(cell):
    return ("b_ih", "b_hh") if cell == "gru" else ("b",)


def input_names(cell):
    """The differentiable inputs of a cell, in ops' argument order."""
    return ("x",) + state_names(cell) + ("W_ih", "W_hh") + bias_names(cell)


def output_names(cell):
    return ("y", "hT", "cT") if cell == "lstm" else ("y", "hT")


def make_inputs(cell, T, B, D, H, dtype=np.float64, seed=0, scale=0.5):
    """Random inputs of moderate size, so that no gate saturates."""
    rng = np.random.default_rng(seed)
    G = GATES[cell]
    shapes = {"x": (T, B, D), "h0": (B, H), "c0": (B, H), "W_ih": (G * H, D),
              "W_hh": (G * H, H), "b": (G * H,), "b_ih": (G * H,), "b_hh": (G * H,)}
    return {k: (scale * rng.standard_normal(shapes[k])).astype(dtype) for k in input_names(cell)}


def forward(cell, inputs, train=True, backend=None, **options):
    """Returns ({output name: array}, cache). options: lengths, reverse."""
    f = getattr(ops, f"{cell}_forward")
    out = f(*(inputs[k] for k in input_names(cell)), train=train, backend=backend, **options)
    return dict(zip(output_names(cell), out[:-1])), out[-1]


def backward(cell, dout, cache):
    """dout: {output name: gradient or None}. Returns {input name: gradient}."""
    b = getattr(ops, f"{cell}_backward")
    grads = b(*(dout.get(k) for k in output_names(cell)), cache)
    return dict(zip(input_names(cell), grads))


def make_output_weights(cell, T, B, H, dtype=np.float64, seed=1):
    """Weights w of the test loss L = Σ w_y·y + Σ w_h·hT (+ Σ w_c·cT): dL/d(out) = w."""
    rng = np.random.default_rng(seed)
    shapes = {"y": (T, B, H), "hT": (B, H), "cT": (B, H)}
    return {k: rng.standard_normal(shapes[k]).astype(dtype) for k in output_names(cell)}


def loss(outputs, weights):
    return sum(float(np.sum(outputs[k] * weights[k])) for k in weights)


def at_one_and_two_threads(run):
    """[run() at 1 kernel thread, run() at 2], the thread setting restored after."""
    before = seqcore.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            seqcore.set_num_threads(n)
            results.append(run())
    finally:
        seqcore.set_num_threads(before)
    return results


def assert_bitwise_equal_results(a, b):
    """Two (outputs, gradients) pairs of dicts, equal bit for bit."""
    (outs1, grads1), (outs2, grads2) = a, b
    for k in outs1:
        np.testing.assert_array_equal(outs1[k], outs2[k], err_msg=k)
    for k in grads1:
        np.testing.assert_array_equal(grads1[k], grads2[k], err_msg="d" + k)


def relative_error(a, b) -> float:
    """Max |a - b| (in float64) relative to the largest |b|."""
    return float(np.max(np.abs(a.astype(np.float64) - b), initial=0) / max(np.max(np.abs(b), initial=0), 1e-30))
