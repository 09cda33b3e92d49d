"""Gradient checking: a backward pass against central finite differences.

The way BPTT is taught is the way it is tested: write the backward by hand,
then compare it, entry by entry, with

    dL/dθ ≈ (L(θ + ε) − L(θ − ε)) / 2ε          (float64, ε = 1e-6)

where L = Σ ⟨output, dy⟩ is the scalar whose gradient at the output is dy.
``gradcheck`` does this for a seqcore layer or model (anything with
``params``/``grads`` and ``forward``/``backward``, a user's own layer
included) or for a pair of functions, and reports the worst entry, as
``torch.autograd.gradcheck`` does for autograd:

    >>> layer = seqcore.nn.LSTM(3, 4, num_layers=2, dtype=np.float64, seed=0)
    >>> print(seqcore.gradcheck(layer, x))      # x (T, B, 3) float64
    worst relative error 1.16e-06 at weight_hh_l0[7, 3] (analytic 0.00010631594,
    numerical 0.00010631629), 334 entries checked: passed
    >>> assert seqcore.gradcheck(layer, x)     # truthy where it passed (error < 1e-5)

Each entry's error is |analytic − numerical| / max(|analytic|, |numerical|,
ref), ref being a thousandth of the array's largest numerical gradient: so
a near-zero gradient's rounding is not taken for an error, and a wrong
gradient shows as an error near 1. In float64 a right backward gives about
1e-6 or less (L's rounding, ~1e-16·|L|, divided by ε, against a small
entry); a wrong formula, 1e-2 or more.

numpy only: this module imports nothing else of seqcore.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

EPS = 1e-6
ENTRIES = 64       # entries checked per array by default: all of a smaller one
REF_FRACTION = 1e-3  # ref = this × the array's largest numerical gradient
TOLERANCE = 1e-5   # a result passes below it (right backwards: ~1e-6 or less)


@dataclass(frozen=True)
class GradcheckResult:
    """The worst entry over every array checked."""

    error: float                # its relative error (see the module doc)
    name: str                   # the array: a parameter's name, "x", "state", "state[1]" or "inputs[k]"
    index: Tuple[int, ...]      # the entry in it
    analytic: float             # the backward's value there
    numerical: float            # central differences' value there
    entries: int                # entries checked, all arrays together
    tolerance: float = TOLERANCE  # passed: error < tolerance
    arrays: Tuple[str, ...] = ()  # the names of the arrays checked, in order

    @property
    def passed(self) -> bool:
        """Whether the worst error is below the tolerance (False for NaN)."""
        return self.error < self.tolerance  # False for NaN

    def __bool__(self) -> bool:
        """``assert seqcore.gradcheck(...)`` fails where the check does, as
        with torch.autograd.gradcheck."""
        return self.passed

    @property
    def where(self) -> str:
        """The worst entry as ``name[i, j, ...]``."""
        return f"{self.name}[{', '.join(map(str, self.index))}]"

    def __str__(self) -> str:
        return (f"worst relative error {self.error:.2e} at {self.where} (analytic {self.analytic:.8g}, "
                f"numerical {self.numerical:.8g}), {self.entries} entries checked: "
                + ("passed" if self.passed else f"FAILED (tolerance {self.tolerance:g})"))


def numerical_gradient(f: Callable[[], float], a: np.ndarray, eps: float = EPS,
                       entries: Optional[Sequence[Tuple[int, ...]]] = None) -> np.ndarray:
    """d f() / d a by central differences, moving entries of ``a`` in place
    (f reads ``a``), ``a`` left as it was. All entries, or those listed in
    ``entries`` (the others stay 0)."""
    g = np.zeros(a.shape, dtype=np.float64)
    for idx in (np.ndindex(a.shape) if entries is None else entries):
        old = a[idx]
        a[idx] = old + eps
        up = f()
        a[idx] = old - eps
        down = f()
        a[idx] = old
        g[idx] = (up - down) / (2 * eps)
    return g


def gradcheck(model, inputs, dy=None, *, state=None, lengths=None, entries: Optional[int] = ENTRIES,
              eps: float = EPS, seed: Optional[int] = 0, tolerance: float = TOLERANCE) -> GradcheckResult:
    """Compares the analytic gradients of every parameter and input with
    central differences in float64; returns the worst entry.

    model: a layer or model (``params``, ``grads``, ``forward``, ``backward``),
      called as ``forward(inputs, [state=state,] [lengths=lengths,] train=True)``
      and ``backward(dy)``, or ``backward(dy, dstate)`` where forward returns
      (y, state); checked: every parameter, the input when backward returns
      its gradient, and ``state`` when the model sets ``state_grad`` (as the
      recurrent layers do). Its ``grads`` are left as they were.
      Or a pair ``(forward, backward)`` of functions: ``forward(*inputs)``
      returns an array or a tuple of them, ``backward(*douts)`` the gradients
      of the inputs, in order (None where there is none); checked: the float
      inputs.
    inputs: the model's input (float64 features, or integer ids); for a pair,
      one array or a tuple of them.
    dy: the gradient at the output (the same structure as forward's result:
      an array, or a tuple with None for outputs without one); default:
      standard normal numbers drawn from ``seed``.
    entries: per array, how many entries (all of a smaller array), drawn
      from ``seed``; None: every entry of every array.
    tolerance: the result is truthy (``passed``) where its error is below.

    Every parameter and float input must be float64 (float32 differences are
    too coarse to check anything); forward must give the same output twice
    (dropout off).
    """
    if entries is not None:
        _check_positive_int("entries", entries)
    if not (isinstance(tolerance, (int, float)) and tolerance > 0):
        raise ValueError(f"tolerance: expected a number > 0, got {tolerance!r}")
    if not (isinstance(eps, (int, float)) and np.isfinite(eps) and eps > 0):
        raise ValueError(f"eps: expected a finite number > 0, got {eps!r}")
    rng = np.random.default_rng(seed)
    if isinstance(model, tuple) and len(model) == 2 and all(callable(f) for f in model):
        if state is not None or lengths is not None:
            raise ValueError("state, lengths: for a layer or model; pass them to a pair of functions as inputs")
        run, checked = _functions(model, inputs)
    elif all(hasattr(model, a) for a in ("params", "grads", "forward", "backward")):
        run, checked = _layer(model, inputs, state, lengths)
    else:
        raise TypeError("model: expected a layer or model (with params, grads, forward and backward) or a pair "
                        f"(forward, backward) of functions, got {type(model).__name__}")

    out = run()
    douts = _output_gradients(out, dy, rng)
    if not _same(out, run()):
        raise ValueError("model: forward gave two different outputs for the same inputs (dropout on?); "
                         "gradcheck needs a deterministic forward")

    def loss() -> float:
        return sum(float(np.vdot(o, d)) for o, d in zip(_leaves(run()), _leaves(douts)) if d is not None)

    analytic = checked(douts)  # [(name, array to move, its analytic gradient)]
    worst, total, names = None, 0, []
    for name, array, grad in analytic:
        if array.size == 0:
            continue
        picks = _entries(array.shape, entries, rng)
        numerical = numerical_gradient(loss, array, eps, picks)
        rows = tuple(np.array(picks).T)
        a, n = np.asarray(grad, np.float64)[rows], numerical[rows]
        ref = max(REF_FRACTION * float(np.max(np.abs(n))), np.finfo(np.float64).tiny)
        errors = np.abs(a - n) / np.maximum(np.maximum(np.abs(a), np.abs(n)), ref)
        errors[~np.isfinite(errors)] = np.inf  # a NaN or inf gradient is the worst error there is
        k = int(np.argmax(errors))
        total += len(picks)
        names.append(name)
        if worst is None or errors[k] > worst[0]:
            worst = (float(errors[k]), name, tuple(int(i) for i in picks[k]), float(a[k]), float(n[k]))
    if worst is None:
        raise ValueError("model: nothing to check (no parameters, and no float input with a gradient)")
    return GradcheckResult(*worst, entries=total, tolerance=float(tolerance), arrays=tuple(names))


# ---------------------------------------------------------------------------
# the two kinds of model: each gives run() -> output and
# checked(douts) -> [(name, array, analytic gradient)]


def _layer(model, x, state, lengths):
    params: Dict[str, np.ndarray] = model.params
    for name, p in params.items():
        _check_float64(name, p)
    if isinstance(x, np.ndarray) and x.dtype.kind == "f":
        _check_float64("x", x)
    states = [] if state is None else _leaves(state)
    for s in states:
        _check_float64("state", s)
    kwargs: Dict[str, Any] = {"train": True}
    if state is not None:
        kwargs["state"] = state
    if lengths is not None:
        kwargs["lengths"] = lengths

    def run():
        return model.forward(x, **kwargs)

    def checked(douts) -> List[Tuple[str, np.ndarray, np.ndarray]]:
        grads = model.grads
        kept = {name: g.copy() for name, g in grads.items()}
        try:
            for g in grads.values():
                g[...] = 0
            run()
            dx = model.backward(*douts) if isinstance(douts, tuple) else model.backward(douts)
            out = [(name, params[name], grads[name].copy()) for name in params]
        finally:
            for name, g in grads.items():
                g[...] = kept[name]
        if isinstance(dx, np.ndarray) and isinstance(x, np.ndarray) and x.dtype.kind == "f":
            out.append(("x", x, dx))
        reported = getattr(model, "state_grad", None)  # a layer without it: the state is not checked
        if states and reported is not None:
            state_grad = _leaves(reported)
            if len(state_grad) != len(states):
                raise ValueError(f"model: state_grad has {len(state_grad)} arrays, the state {len(states)}")
            names = ["state"] if len(states) == 1 else [f"state[{k}]" for k in range(len(states))]
            out += list(zip(names, states, state_grad))
        return out

    return run, checked


def _functions(pair, inputs):
    forward, backward = pair
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    floats = [k for k, a in enumerate(inputs) if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
    if not floats:
        raise ValueError("inputs: expected at least one float64 array")
    for k in floats:
        _check_float64(f"inputs[{k}]", inputs[k])

    def run():
        return forward(*inputs)

    def checked(douts) -> List[Tuple[str, np.ndarray, np.ndarray]]:
        run()
        grads = backward(*douts) if isinstance(douts, tuple) else backward(douts)
        grads = grads if isinstance(grads, (tuple, list)) else (grads,)
        if len(grads) != len(inputs):
            raise ValueError(f"model: backward returned {len(grads)} gradients for {len(inputs)} inputs")
        out = []
        for k in floats:
            g = grads[k]
            if g is None:
                continue
            if np.shape(g) != inputs[k].shape:
                raise ValueError(f"model: backward's gradient {k} has shape {np.shape(g)}, "
                                 f"the input's is {inputs[k].shape}")
            out.append((f"inputs[{k}]", inputs[k], g))
        return out

    return run, checked


# ---------------------------------------------------------------------------
# helpers


def _leaves(tree) -> List[Optional[np.ndarray]]:
    """The arrays of an array, None, or nested tuples/lists of them, in order."""
    if isinstance(tree, (tuple, list)):
        return [leaf for item in tree for leaf in _leaves(item)]
    return [tree]


def _output_gradients(out, dy, rng):
    """dy for forward's result ``out``: the given one checked, or drawn."""
    if dy is None:
        return _draw(out, rng)
    if isinstance(out, tuple) and isinstance(dy, np.ndarray):
        dy = (dy,) + (None,) * (len(out) - 1)  # the gradient of the first output only
    outs, dys = _leaves(out), _leaves(dy)
    if len(outs) != len(dys):
        raise ValueError(f"dy: expected {len(outs)} arrays (forward's outputs), got {len(dys)}")
    for k, (o, d) in enumerate(zip(outs, dys)):
        if d is not None and np.shape(d) != np.shape(o):
            raise ValueError(f"dy: output {k} has shape {np.shape(o)}, its gradient {np.shape(d)}")
    return dy


def _draw(out, rng):
    if isinstance(out, (tuple, list)):
        return tuple(_draw(item, rng) for item in out)
    if out is None:
        return None
    return rng.standard_normal(np.shape(out))


def _same(a, b) -> bool:
    la, lb = _leaves(a), _leaves(b)
    return len(la) == len(lb) and all(
        (x is None and y is None) or (x is not None and y is not None and np.array_equal(x, y))
        for x, y in zip(la, lb))


def _entries(shape: Tuple[int, ...], entries: Optional[int], rng) -> List[Tuple[int, ...]]:
    size = int(np.prod(shape))
    flat = np.arange(size) if entries is None or size <= entries else np.sort(rng.choice(size, entries, replace=False))
    return [tuple(int(i) for i in np.unravel_index(f, shape)) for f in flat]


def _check_float64(name: str, a) -> None:
    if not isinstance(a, np.ndarray) or a.dtype != np.float64:
        got = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
        raise TypeError(f"{name}: expected float64 (build the model with dtype=np.float64: float32 central "
                        f"differences are too coarse to check a gradient), got {got}")


def _check_positive_int(name: str, v) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name}: expected an int >= 1, got {v!r}")
