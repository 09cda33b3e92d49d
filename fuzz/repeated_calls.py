"""Every entry point of seqcore._core called ROUNDS times, the error paths
included: run under LeakSanitizer by .ci/sanitize.sh, which compares the
memory left unreachable after few and after many rounds (a leak grows with
the rounds).

    python fuzz/repeated_calls.py ROUNDS
"""

import sys

import numpy as np

from seqcore import _core, ops

GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def cell_calls(rng, cell, dtype, lengths, reverse):
    T, B, D, H = 6, 3, 5, 7
    G = GATES[cell]
    x = rng.standard_normal((T, B, D)).astype(dtype)
    h0 = rng.standard_normal((B, H)).astype(dtype)
    W_ih = (0.3 * rng.standard_normal((G * H, D))).astype(dtype)
    W_hh = (0.3 * rng.standard_normal((G * H, H))).astype(dtype)
    b = rng.standard_normal(G * H).astype(dtype)
    states = [h0, h0.copy()] if cell == "lstm" else [h0]
    biases = [b, b.copy()] if cell == "gru" else [b]
    forward, backward = getattr(ops, f"{cell}_forward"), getattr(ops, f"{cell}_backward")
    out = forward(x, *states, W_ih, W_hh, *biases, lengths=lengths, reverse=reverse, num_threads=2)
    dy = np.ones_like(out[0])
    backward(dy, *([np.ones_like(h0)] * len(states)), out[-1])
    forward(x, *states, W_ih, W_hh, *biases, train=False, lengths=lengths, reverse=reverse)


def stepper_calls(rng, cell, dtype):
    """A language model's stepper: made, stepped, drawn from, refreshed, its state read and set."""
    V, D, H, L, B = 9, 4, 5, 2, 3
    G = GATES[cell]
    w = lambda *shape: (0.3 * rng.standard_normal(shape)).astype(dtype)  # noqa: E731
    weights = (w(V, D), [w(G * H, D), w(G * H, H)], [w(G * H, H) for _ in range(L)], [w(G * H) for _ in range(L)],
               [w(G * H) for _ in range(L)] if cell == "gru" else None, w(V, H), w(V))
    before = ops.STEPPER_TABLE_BYTES
    for table_bytes in (before, 0):  # layer 0's x W_ihᵀ in a table, then computed each step
        ops.STEPPER_TABLE_BYTES = table_bytes
        stepper = ops.NativeStepper(cell, B, *weights, num_threads=2)
        ids, out = np.array([1, 8, 0], np.int64), np.empty(B, np.int64)
        stepper.step(ids)
        stepper.drawer(temperature=0.7, top_k=3, top_p=0.9, pad_id=0)(ids, rng.random(B), out)
        stepper.h[...] = 0.5
        stepper.refresh(*weights)
        ops.draw(stepper.step(ids[:2]).copy(), rng.random(2))
    ops.STEPPER_TABLE_BYTES = before
    native = _core.StepperF64 if dtype == np.float64 else _core.StepperF32
    for bad in (lambda: native(cell, B, None, weights[1], weights[2], weights[3], weights[4], weights[5], None, True),
                lambda: native(cell, 0, *weights, True),
                lambda: stepper.step(np.array([V], np.int64)),
                lambda: stepper.step(np.zeros(B + 1, np.int64))):
        try:
            bad()
        except (TypeError, ValueError):
            pass
        else:
            raise AssertionError("a bad call was accepted")


def error_calls(rng):
    """Calls the binding rejects: each raises after some arguments were converted."""
    x = np.ones((2, 2, 3), np.float32)
    W = np.ones((4, 3), np.float32)
    bad = [
        lambda: _core.cell_forward("lstm", x, np.ones((2, 1), np.float32), None, W, np.ones((4, 1), np.float32),
                                   np.ones(4, np.float32), None, True),  # c0 None for an LSTM
        lambda: _core.cell_forward("gru", x, np.ones((2, 1), np.float32), None, np.ones((3, 3), np.float32),
                                   np.ones((3, 1), np.float32), np.ones(3, np.float32), np.ones(2, np.float32), True),
        lambda: _core.cell_forward("rnn", x, np.ones((2, 1), np.float32), None, np.ones((1, 3), np.float32),
                                   np.ones((1, 1), np.float32), np.ones(1, np.float32), None, True,
                                   np.array([5, 1], np.int64)),
        lambda: _core.cell_forward("rnn", x[:, :, ::2], np.ones((2, 1), np.float32), None, W, W, W, None, True),
        lambda: _core.cell_backward("rnn", x, W, W, x, None, None, None, None, None, None),
        lambda: _core.gemm(W, W, np.ones((4, 4), np.float64)),
        lambda: _core.gemm(W, W.T, np.ones((3, 3), np.float32)),
        lambda: _core.tanh(np.ones(3, np.int32)),
        lambda: _core.set_isa("avx1024"),
        lambda: _core.forward_workspace_bytes("cnn", 1, 1, 1, 1, True, False, False),
        lambda: _core.adam(W, W, W, np.ones((4, 3), np.float64), 0.9, 0.999, 1e-8, 0.1, 1.0),
        lambda: _core.adam(W, np.ones(5, np.float32), W, W, 0.9, 0.999, 1e-8, 0.1, 1.0),
        lambda: _core.sum_of_squares(np.ones(3, np.int64)),
    ]
    for call in bad:
        try:
            call()
        except (TypeError, ValueError, RuntimeError):
            pass
        else:
            raise AssertionError("a bad call was accepted")


def one_round(rng):
    for cell in GATES:
        for dtype in (np.float32, np.float64):
            cell_calls(rng, cell, dtype, None, False)
            cell_calls(rng, cell, dtype, np.array([6, 0, 3]), True)
    a = rng.standard_normal((33, 17))
    ops.matmul(a, a, trans_a=True)
    ops.matmul(a.astype(np.float32), a.astype(np.float32), trans_b=True)
    _core.sigmoid(a)
    _core.tanh(a.astype(np.float32))
    for dtype in (np.float32, np.float64):
        p, g = a.astype(dtype), rng.standard_normal(a.shape).astype(dtype)
        ops.adam_update(p, g, np.zeros_like(p), np.zeros_like(p), lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, step=3)
        ops.sum_of_squares(g)
    for cell in GATES:
        for dtype in (np.float32, np.float64):
            stepper_calls(rng, cell, dtype)
    error_calls(rng)


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    rng = np.random.default_rng(0)
    for _ in range(rounds):
        one_round(rng)
    print(f"repeated_calls: {rounds} rounds")


if __name__ == "__main__":
    main()
