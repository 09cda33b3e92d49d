"""Fuzzing of the binding boundary with atheris (libFuzzer for Python).

Each input picks one entry point of seqcore._core or seqcore.ops and builds
its arguments from the fuzzer's bytes: arrays of any dtype, 0 to 4
dimensions, sizes 0 to 7 (and now and then a huge empty one), strided,
negative-stride, read-only or not arrays at all, None where an array is due,
cell names, lengths, flags and thread counts of any value. The only allowed
outcomes are a result or TypeError / ValueError / MemoryError; anything else
(another exception, a crash, a sanitizer report, a hang) is a finding. Calls
that succeed through seqcore.ops are checked against the NumPy reference
(the native result must be close to it: 1e-4 of its largest magnitude).

    python fuzz/fuzz_core.py -max_total_time=60 -rss_limit_mb=4096 CORPUS_DIR
    python fuzz/fuzz_core.py --make-corpus CORPUS_DIR   # the seed inputs, from code

Run by .ci/fuzz.sh.
"""

import os
import sys

import atheris
import numpy as np

with atheris.instrument_imports():
    from seqcore import _core, ops

ALLOWED = (TypeError, ValueError, MemoryError)
DTYPES = [np.float32, np.float64, np.float16, np.int32, np.int64, np.complex64, np.bool_]
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
CELL_NAMES = ["rnn", "lstm", "gru", "", "LSTM", "rnn\0", "x" * 100]
SPECIALS = [0.0, 1.0, -1.0, np.nan, np.inf, -np.inf, 1e4, -1e4, 1e30, 5e-324]


# ---------------------------------------------------------------------------
# arguments from bytes


def values(fdp, n, dtype):
    """n values of dtype: random, then some replaced by specials (NaN, inf, ±1e4...)."""
    if np.dtype(dtype).kind in "fc":
        v = np.array(fdp.ConsumeFloatListInRange(n, -3.0, 3.0) + [0.0] * n)[:n]
        for _ in range(fdp.ConsumeIntInRange(0, 2)):
            if n:
                v[fdp.ConsumeIntInRange(0, n - 1)] = SPECIALS[fdp.ConsumeIntInRange(0, len(SPECIALS) - 1)]
        with np.errstate(all="ignore"):
            return v.astype(dtype)
    return np.array(fdp.ConsumeIntListInRange(n, -3, 9) + [0] * n)[:n].astype(dtype)


def layout(fdp, a):
    """a as is, or a view of it: strided, negative-stride, transposed, read-only."""
    choice = fdp.ConsumeIntInRange(0, 7)
    if choice == 1 and a.ndim:
        big = np.repeat(a, 2, axis=-1)
        return big[..., ::2]
    if choice == 2 and a.ndim:
        return np.ascontiguousarray(a[..., ::-1])[..., ::-1]
    if choice == 3 and a.ndim >= 2:
        return np.ascontiguousarray(a.swapaxes(0, 1)).swapaxes(0, 1)
    if choice == 4:
        a = a.copy()
        a.setflags(write=False)
    return a


def array(fdp, shape=None, dtype=None):
    """An array of `shape` and `dtype` (each drawn when None), or now and then
    something that is not one."""
    kind = fdp.ConsumeIntInRange(0, 31)
    if kind == 0:
        return None
    if kind == 1:
        return [[1.0, 2.0]]
    if kind == 2:  # a huge empty array: sizes that overflow if multiplied carelessly
        return np.empty((1 << fdp.ConsumeIntInRange(20, 40), 0, 3), np.float32)
    if dtype is None:
        dtype = DTYPES[fdp.ConsumeIntInRange(0, 1 if fdp.ConsumeBool() else len(DTYPES) - 1)]
    if shape is None or fdp.ConsumeIntInRange(0, 9) == 0:  # a wrong shape now and then
        shape = tuple(fdp.ConsumeIntInRange(0, 7) for _ in range(fdp.ConsumeIntInRange(0, 4)))
    n = int(np.prod(shape))
    return layout(fdp, values(fdp, n, dtype).reshape(shape))


def lengths(fdp, B, T):
    kind = fdp.ConsumeIntInRange(0, 5)
    if kind == 0:
        return None
    if kind == 1:
        return np.array(fdp.ConsumeIntListInRange(B, -2, T + 2), np.int64)
    if kind == 2:
        return array(fdp)
    return np.array(fdp.ConsumeIntListInRange(B, 0, T) + [T] * B, np.int64)[:B]


# ---------------------------------------------------------------------------
# the entry points


def core_cell_forward(fdp):
    cell = CELL_NAMES[fdp.ConsumeIntInRange(0, len(CELL_NAMES) - 1)]
    G = GATES.get(cell, 2)
    T, B, D, H = (fdp.ConsumeIntInRange(0, 6) for _ in range(4))
    dtype = [np.float32, np.float64][fdp.ConsumeIntInRange(0, 1)]
    shapes = {"x": (T, B, D), "h0": (B, H), "c0": (B, H), "W_ih": (G * H, D), "W_hh": (G * H, H),
              "b_ih": (G * H,), "b_hh": (G * H,)}
    args = {k: array(fdp, s, dtype) for k, s in shapes.items()}
    return _core.cell_forward(cell, args["x"], args["h0"], args["c0"], args["W_ih"], args["W_hh"], args["b_ih"],
                              args["b_hh"], fdp.ConsumeBool(), lengths(fdp, B, T), fdp.ConsumeBool(),
                              fdp.ConsumeIntInRange(-2, 4))


def core_cell_backward(fdp):
    """A valid forward, then a backward with some of its arguments replaced."""
    cell = ["rnn", "lstm", "gru"][fdp.ConsumeIntInRange(0, 2)]
    G = GATES[cell]
    T, B, D, H = (fdp.ConsumeIntInRange(1, 5) for _ in range(4))
    dtype = [np.float32, np.float64][fdp.ConsumeIntInRange(0, 1)]
    rng = np.random.default_rng(fdp.ConsumeIntInRange(0, 1000))
    x = rng.standard_normal((T, B, D)).astype(dtype)
    W_ih, W_hh = (rng.standard_normal(s).astype(dtype) for s in ((G * H, D), (G * H, H)))
    zeros = np.zeros((B, H), dtype)
    lens = np.sort(rng.integers(0, T + 1, B))[::-1].copy() if fdp.ConsumeBool() else None
    reverse = fdp.ConsumeBool()
    _, _, _, ws_h, ws_gates, ws_c, ws_hn, _ = _core.cell_forward(
        cell, x, zeros, zeros, W_ih, W_hh, np.zeros(G * H, dtype), np.zeros(G * H, dtype), True, lens, reverse, 0)
    args = dict(x=x, W_ih=W_ih, W_hh=W_hh, ws_h=ws_h, ws_gates=ws_gates, ws_c=ws_c, ws_hn=ws_hn,
                dy=np.ones((T, B, H), dtype), dhT=np.ones((B, H), dtype), dcT=np.ones((B, H), dtype))
    for _ in range(fdp.ConsumeIntInRange(0, 3)):
        name = sorted(args)[fdp.ConsumeIntInRange(0, len(args) - 1)]
        args[name] = array(fdp, getattr(args[name], "shape", None))
    if fdp.ConsumeBool():
        lens = lengths(fdp, B, T)
    return _core.cell_backward(cell, **args, lengths=lens, reverse=reverse, num_threads=fdp.ConsumeIntInRange(-1, 3))


def core_gemm(fdp):
    M, N, K = (fdp.ConsumeIntInRange(0, 9) for _ in range(3))
    ta, tb = fdp.ConsumeBool(), fdp.ConsumeBool()
    dtype = [np.float32, np.float64][fdp.ConsumeIntInRange(0, 1)]
    a = array(fdp, (K, M) if ta else (M, K), dtype)
    b = array(fdp, (N, K) if tb else (K, N), dtype)
    c = array(fdp, (M, N), dtype)
    alpha, beta = (SPECIALS[fdp.ConsumeIntInRange(0, len(SPECIALS) - 1)] for _ in range(2))
    return _core.gemm(a, b, c, ta, tb, alpha, beta)


def core_activation(fdp):
    f = _core.sigmoid if fdp.ConsumeBool() else _core.tanh
    x = array(fdp)
    y = f(x)
    if isinstance(x, np.ndarray) and y.size:
        finite = np.isfinite(x)
        assert np.all(np.abs(y[finite]) <= 1.0), "an activation out of [-1, 1]"
    return y


def core_workspace(fdp):
    sizes = [fdp.ConsumeIntInRange(-3, 1 << 20) if fdp.ConsumeBool() else fdp.ConsumeInt(8) for _ in range(4)]
    cell = CELL_NAMES[fdp.ConsumeIntInRange(0, len(CELL_NAMES) - 1)]
    return ops.forward_workspace_bytes(cell, *sizes, train=fdp.ConsumeBool())


def core_runtime(fdp):
    """Thread counts and ISAs of any value, put back afterwards."""
    threads, isa = _core.get_num_threads(), _core.isa()
    try:
        if fdp.ConsumeBool():
            _core.set_num_threads(fdp.ConsumeIntInRange(-3, 8))
        else:
            _core.set_isa(["scalar", "avx2", "avx512", "avx1024", ""][fdp.ConsumeIntInRange(0, 4)])
        return core_gemm(fdp)
    finally:
        _core.set_num_threads(threads)
        _core.set_isa(isa)


def well_conditioned(cell, args, y) -> bool:
    """Whether the gates' pre-activations are known to within 1e-6 whatever
    the order of their sums: their rounding error is up to about
    (D + H + 2) · eps · (max|x|·max|W_ih| + max|h|·max|W_hh| + max|b|). Values
    like 1e30 that cancel leave a gate anywhere in (0, 1), and two correct
    implementations (the reference summing in another order) disagree. Such
    inputs still go through the native call; only the comparison is skipped.
    args: x, h0 (, c0), W_ih, W_hh, bias(es); y: the reference's outputs."""
    n_states = 2 if cell == "lstm" else 1
    x, h0 = args[0], args[1]
    W_ih, W_hh, biases = args[1 + n_states], args[2 + n_states], args[3 + n_states:]
    big = lambda a: float(np.abs(a).max(initial=0))
    D, H = x.shape[2], h0.shape[1]
    scale = big(x) * big(W_ih) + max(big(h0), big(y)) * big(W_hh) + sum(big(b) for b in biases)
    return (D + H + 2) * np.finfo(x.dtype).eps * scale < 1e-6


def ops_against_reference(fdp):
    """A well-formed call through seqcore.ops (any sizes, lengths, direction):
    the native result is the reference's."""
    cell = ["rnn", "lstm", "gru"][fdp.ConsumeIntInRange(0, 2)]
    G = GATES[cell]
    T, B, D, H = (fdp.ConsumeIntInRange(0, 6) for _ in range(4))
    dtype = np.float64
    shapes = [(T, B, D)] + [(B, H)] * (2 if cell == "lstm" else 1) + [(G * H, D), (G * H, H)] + \
        [(G * H,)] * (2 if cell == "gru" else 1)
    args = [values(fdp, int(np.prod(s)), dtype).reshape(s) for s in shapes]
    lens = np.array(fdp.ConsumeIntListInRange(B, 0, T) + [T] * B, np.int64)[:B] if fdp.ConsumeBool() else None
    options = dict(lengths=lens, reverse=fdp.ConsumeBool(), train=True)
    forward, backward = getattr(ops, f"{cell}_forward"), getattr(ops, f"{cell}_backward")
    native = forward(*args, **options)
    reference = forward(*args, backend="reference", **options)
    if not well_conditioned(cell, args, reference[0]):
        return  # the native call ran (no crash, no exception); only the comparison is skipped
    dout = [np.ones_like(native[0])] + [np.ones_like(native[1])] * (2 if cell == "lstm" else 1)
    for got, want in zip(native[:-1] + backward(*dout, native[-1]),
                         reference[:-1] + backward(*dout, reference[-1])):
        assert got.shape == want.shape, (got.shape, want.shape)
        # 1e-4 of the largest magnitude: garbage shows, while the extreme
        # values drawn (1e30, 1e4) saturate gates, where the activations'
        # documented absolute error is a relative one of 1 - σ (measured:
        # 3e-6 of a float64 gradient of 7e19)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(want).max(initial=0))))


TARGETS = [core_cell_forward, core_cell_backward, core_gemm, core_activation, core_workspace, core_runtime,
           ops_against_reference]


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    target = TARGETS[fdp.ConsumeIntInRange(0, len(TARGETS) - 1)]
    try:
        with np.errstate(all="ignore"):
            target(fdp)
    except ALLOWED:
        pass


def make_corpus(directory: str) -> None:
    """Seed inputs: for each target, a few byte strings that select it."""
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(0)
    for t in range(len(TARGETS)):
        for i in range(8):
            body = rng.integers(0, 256, int(rng.integers(16, 600)), dtype=np.uint8).tobytes()
            # ConsumeIntInRange reads its bytes from the end of the input
            with open(os.path.join(directory, f"seed-{TARGETS[t].__name__}-{i}"), "wb") as f:
                f.write(body + bytes([t]))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--make-corpus":
        make_corpus(sys.argv[2])
    else:
        atheris.Setup(sys.argv, test_one_input)
        atheris.Fuzz()
