"""Optimisers: SGD (momentum, Nesterov), Adam and AdamW, with PyTorch's update
rules, updating parameters in place from gradients of the same names.

An optimiser is built on a Layer (it then reads ``layer.params`` and, by
default, ``layer.grads``) or on a dict name -> ndarray of parameters (then
``step(grads)`` needs the grads). Each parameter's state (moments, step count)
is created at its first step, as PyTorch does; a name missing from ``grads``
is skipped (as PyTorch skips a parameter whose grad is None).

``state_dict()`` is flat, plain data for a checkpoint (``np.savez`` and
``np.load(allow_pickle=False)``): the hyperparameters under their own names
("lr", "betas", ...) and the state of each parameter as "<slot>.<param name>"
("exp_avg.0.weight"). ``load_state_dict`` restores it exactly, so a resumed
run continues bitwise the same trajectory.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import numpy as np

from .. import ops
from ..nn.module import Layer, params_written

Params = Union[Layer, Mapping[str, np.ndarray]]


# ---------------------------------------------------------------------------
# argument checks


def _number(name: str, v) -> float:
    """A finite real number (not a bool), as a float."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a number, got {v!r}")
    if not math.isfinite(v):
        raise ValueError(f"{name}: expected a finite number, got {v!r}")
    return float(v)


def _at_least(name: str, v, low: float) -> float:
    v = _number(name, v)
    if v < low:
        raise ValueError(f"{name}: expected a number >= {low}, got {v!r}")
    return v


def _positive(name: str, v) -> float:
    v = _number(name, v)
    if v <= 0:
        raise ValueError(f"{name}: expected a number > 0, got {v!r}")
    return v


def _betas(betas) -> Tuple[float, float]:
    try:
        b1, b2 = betas
    except (TypeError, ValueError):
        raise TypeError(f"betas: expected two numbers (beta1, beta2), got {betas!r}") from None
    b1, b2 = _number("betas[0]", b1), _number("betas[1]", b2)
    if not (0 <= b1 < 1 and 0 <= b2 < 1):
        raise ValueError(f"betas: expected both in [0, 1), got ({b1!r}, {b2!r})")
    return b1, b2


def _params(params: Params) -> Tuple[Optional[Layer], Dict[str, np.ndarray]]:
    if isinstance(params, Layer):
        layer, params = params, params.params
    elif isinstance(params, Mapping):
        layer = None
    else:
        raise TypeError(f"params: expected a seqcore.nn.Layer or a dict name -> ndarray, "
                        f"got {type(params).__name__}")
    if not params:
        raise ValueError("params: no parameters to optimise")
    for name, p in params.items():
        if not isinstance(name, str):
            raise TypeError(f"params: expected str names, got {name!r}")
        if not isinstance(p, np.ndarray) or p.dtype not in (np.float32, np.float64):
            raise TypeError(f"params[{name!r}]: expected a float32 or float64 numpy.ndarray, "
                            f"got {getattr(p, 'dtype', type(p).__name__)}")
        if not p.flags.writeable:
            raise ValueError(f"params[{name!r}]: the array is read-only; an optimiser updates it in place")
    return layer, dict(params)


def plain_value(v) -> Any:
    """A state-dict hyperparameter as Python data: a 0-d array or numpy scalar
    (as np.load gives them back) becomes its item, a 1-d array a tuple."""
    a = np.asarray(v)
    return a.item() if a.ndim == 0 else tuple(a.tolist())


# ---------------------------------------------------------------------------
# the common body


class Optimizer:
    """Base of the optimisers. A subclass names its hyperparameters (``HYPER``,
    attributes of the same names) and per-parameter buffers (``SLOTS``), checks
    hyperparameters in ``_checked`` and updates one parameter in ``_update``."""

    HYPER: Tuple[str, ...] = ()
    SLOTS: Tuple[str, ...] = ()

    def __init__(self, params: Params, **hyper: Any) -> None:
        self.layer, self.params = _params(params)
        for k, v in self._checked(hyper).items():
            setattr(self, k, v)
        # name -> {slot: ndarray or int}; a parameter appears after its first step
        self.state: Dict[str, Dict[str, Any]] = {}

    def _checked(self, hyper: Dict[str, Any]) -> Dict[str, Any]:
        raise NotImplementedError

    def _update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        raise NotImplementedError

    def step(self, grads: Optional[Mapping[str, np.ndarray]] = None) -> None:
        """Updates every parameter named in ``grads`` (default: the layer's grads)
        in place. Nothing is updated unless every gradient fits."""
        if grads is None:
            if self.layer is None:
                raise ValueError("grads: required, as this optimiser was given a dict of params, not a Layer")
            grads = self.layer.grads
        if not isinstance(grads, Mapping):
            raise TypeError(f"grads: expected a dict name -> ndarray, got {type(grads).__name__}")
        unknown = sorted(set(grads) - set(self.params))
        if unknown:
            raise ValueError(f"grads: unknown parameter names {unknown}")
        checked = {}
        for name, g in grads.items():
            p = self.params[name]
            if not isinstance(g, np.ndarray) or g.dtype.kind != "f":
                raise TypeError(f"grads[{name!r}]: expected a float numpy.ndarray, "
                                f"got {getattr(g, 'dtype', type(g).__name__)}")
            if g.shape != p.shape:
                raise ValueError(f"grads[{name!r}]: expected the parameter's shape {p.shape}, got {g.shape}")
            checked[name] = g.astype(p.dtype, copy=False)  # computed in the parameter's dtype
        for name, g in checked.items():
            self._update(name, self.params[name], g)
        params_written()

    def zero_grad(self) -> None:
        """Zeroes the layer's grads (only for an optimiser built on a Layer)."""
        if self.layer is None:
            raise RuntimeError("zero_grad: this optimiser was given a dict of params, not a Layer; "
                               "zero the gradients where they live")
        self.layer.zero_grad()

    # -- state ----------------------------------------------------------------

    @classmethod
    def buffers(cls, **hyper: Any) -> int:
        """Arrays the size of a parameter it keeps for each, with these
        hyperparameters (its defaults for those not given): Adam 2."""
        return sum(1 for slot in cls.SLOTS if slot != "step")

    def pending_state_bytes(self) -> int:
        """Bytes of the buffers it has yet to allocate: those of the parameters
        that have not stepped."""
        per = self.buffers(**{k: getattr(self, k) for k in self.HYPER})
        return per * sum(p.nbytes for name, p in self.params.items() if name not in self.state)

    def state_dict(self) -> Dict[str, Any]:
        """Hyperparameters (numbers, bools, betas as a float64 array) and
        "<slot>.<param>" entries (copies of the buffers; step counts as ints)."""
        out: Dict[str, Any] = {}
        for k in self.HYPER:
            v = getattr(self, k)
            out[k] = np.array(v, np.float64) if isinstance(v, tuple) else v
        for name, slots in self.state.items():
            for slot, v in slots.items():
                out[f"{slot}.{name}"] = v.copy() if isinstance(v, np.ndarray) else v
        return out

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restores hyperparameters and per-parameter state from ``state_dict()``
        (also after np.savez / np.load). Every hyperparameter must be there; a
        parameter has all of its slots or none. Nothing changes unless
        everything fits."""
        keys = set(state)
        missing = [k for k in self.HYPER if k not in keys]
        per_param: Dict[str, Dict[str, Any]] = {}
        unexpected = []
        for key in sorted(keys - set(self.HYPER)):
            slot, _, name = key.partition(".")
            if slot in self.SLOTS and name in self.params:
                per_param.setdefault(name, {})[slot] = state[key]
            else:
                unexpected.append(key)
        if missing or unexpected:
            raise KeyError(f"state: missing {missing}, unexpected {unexpected}")
        try:
            hyper = self._checked({k: plain_value(state[k]) for k in self.HYPER})
        except (TypeError, ValueError) as e:
            raise type(e)(f"state: {e}") from None
        new: Dict[str, Dict[str, Any]] = {}
        for name, slots in per_param.items():
            lacking = [s for s in self.SLOTS if s not in slots]
            if lacking:
                raise KeyError(f"state: parameter {name!r} lacks {[f'{s}.{name}' for s in lacking]}")
            new[name] = {s: self._slot_value(f"{s}.{name}", slots[s], self.params[name]) for s in self.SLOTS}
        for k, v in hyper.items():
            setattr(self, k, v)
        self.state = new

    @staticmethod
    def _slot_value(key: str, v, p: np.ndarray):
        a = np.asarray(v)
        if key.startswith("step."):
            # a step count: an integer >= 1
            if a.ndim != 0 or a.dtype.kind not in "iu" or a < 1:
                raise ValueError(f"state[{key!r}]: expected an int >= 1, got {v!r}")
            return int(a)
        if a.shape != p.shape:
            raise ValueError(f"state[{key!r}]: expected the parameter's shape {p.shape}, got {a.shape}")
        if a.dtype.kind not in "iuf":
            raise TypeError(f"state[{key!r}]: expected numbers, got dtype {a.dtype}")
        a = np.array(a, dtype=p.dtype)  # a copy: the optimiser owns its buffers
        if not np.isfinite(a).all():
            raise ValueError(f"state[{key!r}]: contains NaN or inf")
        return a


# ---------------------------------------------------------------------------
# SGD


class SGD(Optimizer):
    """Stochastic gradient descent, as torch.optim.SGD (dampening 0):

        g = grad + weight_decay·p
        b = g at the first step, else momentum·b + g        (if momentum)
        g = g + momentum·b if nesterov else b               (if momentum)
        p = p - lr·g
    """

    HYPER = ("lr", "momentum", "weight_decay", "nesterov")
    SLOTS = ("momentum_buffer",)

    def __init__(self, params: Params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False) -> None:
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)

    @classmethod
    def buffers(cls, momentum: float = 0.0, **hyper: Any) -> int:
        """Arrays the size of a parameter kept for each: 1 with momentum, else 0."""
        return 1 if momentum != 0 else 0  # the momentum buffer

    def _checked(self, h: Dict[str, Any]) -> Dict[str, Any]:
        out = {"lr": _positive("lr", h["lr"]), "momentum": _at_least("momentum", h["momentum"], 0.0),
               "weight_decay": _at_least("weight_decay", h["weight_decay"], 0.0)}
        if not isinstance(h["nesterov"], (bool, np.bool_)):
            raise TypeError(f"nesterov: expected a bool, got {h['nesterov']!r}")
        out["nesterov"] = bool(h["nesterov"])
        if out["nesterov"] and out["momentum"] == 0:
            raise ValueError("nesterov: needs momentum > 0")
        return out

    def _update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        # The operations and their order are torch's, for the same rounding.
        if self.weight_decay != 0:
            g = g + self.weight_decay * p
        if self.momentum != 0:
            slots = self.state.get(name)
            if slots is None:
                buf = g.copy()
                self.state[name] = {"momentum_buffer": buf}
            else:
                buf = slots["momentum_buffer"]
                buf *= self.momentum
                buf += g
            g = g + self.momentum * buf if self.nesterov else buf
        p -= self.lr * g


# ---------------------------------------------------------------------------
# Adam and AdamW


class Adam(Optimizer):
    """Adam, as torch.optim.Adam (amsgrad off), at step t of each parameter:

        g = grad + weight_decay·p
        m = beta1·m + (1 - beta1)·g
        v = beta2·v + (1 - beta2)·g²
        p = p - lr·m̂ / (√v̂ + eps),   m̂ = m / (1 - beta1^t),  v̂ = v / (1 - beta2^t)
    """

    HYPER = ("lr", "betas", "eps", "weight_decay")
    SLOTS = ("step", "exp_avg", "exp_avg_sq")
    decoupled = False  # AdamW: weight decay applied to p, not added to the gradient

    def __init__(self, params: Params, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def _checked(self, h: Dict[str, Any]) -> Dict[str, Any]:
        return {"lr": _positive("lr", h["lr"]), "betas": _betas(h["betas"]),
                "eps": _at_least("eps", h["eps"], 0.0),
                "weight_decay": _at_least("weight_decay", h["weight_decay"], 0.0)}

    def _update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        # The operations and their order are torch's (_single_tensor_adam), for the same rounding.
        beta1, beta2 = self.betas
        slots = self.state.get(name)
        if slots is None:
            slots = {"step": 0, "exp_avg": np.zeros_like(p), "exp_avg_sq": np.zeros_like(p)}
            self.state[name] = slots
        slots["step"] += 1
        t = slots["step"]
        if self.weight_decay != 0:
            if self.decoupled:
                p *= 1 - self.lr * self.weight_decay
            else:
                g = g + self.weight_decay * p
        m, v = slots["exp_avg"], slots["exp_avg_sq"]
        # the native kernel, one pass, where the arrays allow it in place
        native = all(a.flags.c_contiguous and a.flags.writeable for a in (p, m, v))
        ops.adam_update(p, g, m, v, lr=self.lr, beta1=beta1, beta2=beta2, eps=self.eps, step=t,
                        backend=None if native else "reference")


class AdamW(Adam):
    """Adam with decoupled weight decay, as torch.optim.AdamW: before the Adam
    step (which then has no weight decay in the gradient),

        p = p·(1 - lr·weight_decay)
    """

    decoupled = True

    def __init__(self, params: Params, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
