"""The base of every layer: parameters, their gradients, and (de)serialising them.

A layer holds ``params`` and ``grads``: dicts from a name to an ndarray, the
same names and shapes in both. ``backward`` *accumulates* (+=) into grads,
as PyTorch's autograd does, until ``zero_grad()``. Parameters are updated in
place by optimisers, so the arrays keep their identity for a layer's life.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, Mapping, Tuple

import numpy as np


# Counts the in-place writes of parameters that seqcore makes (an optimiser's
# step, load_state_dict, a distributed broadcast), so that what copies weights
# (a Stepper) can tell that they may have changed. Writes a user makes into
# the arrays directly are not counted: such a copy then needs its refresh().
_params_version = 0


def params_written() -> None:
    """Notes that some layer's parameters were written in place."""
    global _params_version
    _params_version += 1


def params_version() -> int:
    """The number of in-place writes of parameters noted so far (see params_written)."""
    return _params_version


class Layer:
    """Base class. Subclasses register parameters with ``add_param`` and
    implement ``forward`` and ``backward``; containers override ``children``."""

    def __init__(self) -> None:
        self._params: Dict[str, np.ndarray] = {}
        self._grads: Dict[str, np.ndarray] = {}

    # -- parameters ---------------------------------------------------------

    def add_param(self, name: str, value: np.ndarray) -> np.ndarray:
        """Registers a parameter (C-contiguous) and its zeroed gradient."""
        value = np.ascontiguousarray(value)
        self._params[name] = value
        self._grads[name] = np.zeros_like(value)
        return value

    def children(self) -> Iterator[Tuple[str, "Layer"]]:
        """(name, layer) of the layers inside this one; none by default."""
        return iter(())

    def _with_children(self, own: Dict[str, np.ndarray], attr: str) -> Dict[str, np.ndarray]:
        """own, plus each child's ``attr`` dict under "<child>.<name>"."""
        out = dict(own)
        for prefix, child in self.children():
            out.update({f"{prefix}.{k}": v for k, v in getattr(child, attr).items()})
        return out

    @property
    def params(self) -> Dict[str, np.ndarray]:
        """name -> parameter, children's under "<child>.<name>" (PyTorch's naming)."""
        return self._with_children(self._params, "params")

    @property
    def grads(self) -> Dict[str, np.ndarray]:
        """name -> accumulated gradient, the names of ``params``."""
        return self._with_children(self._grads, "grads")

    def zero_grad(self) -> None:
        """Sets every gradient in ``grads`` to 0, in place (backward adds into them)."""
        for g in self.grads.values():
            g[...] = 0

    def num_params(self) -> int:
        """The number of parameter entries, this layer's and its children's."""
        return sum(p.size for p in self.params.values())

    def state_dict(self) -> Dict[str, np.ndarray]:
        """A copy of every parameter, by name."""
        return {k: v.copy() for k, v in self.params.items()}

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        """Copies parameters in by name: every name must be there, with the same
        shape; values are converted to the parameter's dtype. Nothing is changed
        unless everything fits."""
        params = self.params
        missing = sorted(set(params) - set(state))
        unexpected = sorted(set(state) - set(params))
        if missing or unexpected:
            raise KeyError(f"state: missing {missing}, unexpected {unexpected}")
        arrays = {}
        for name, p in params.items():
            a = np.asarray(state[name])
            if a.shape != p.shape:
                raise ValueError(f"state[{name!r}]: expected shape {p.shape}, got {a.shape}")
            if not np.issubdtype(a.dtype, np.number):
                raise TypeError(f"state[{name!r}]: expected numbers, got dtype {a.dtype}")
            a = a.astype(p.dtype)
            if not np.isfinite(a).all():
                raise ValueError(f"state[{name!r}]: contains NaN or inf")
            arrays[name] = a
        for name, a in arrays.items():
            params[name][...] = a
        params_written()

    # -- computation ----------------------------------------------------------

    def forward(self, x, train: bool = True):
        """The layer's output for ``x``; with ``train`` it keeps what ``backward``
        needs. Subclasses implement it (NotImplementedError here)."""
        raise NotImplementedError

    def backward(self, dy):
        """From the gradient of the output ``dy`` (the output's shape): adds the
        parameters' gradients into ``grads`` and returns the input's gradient.
        Subclasses implement it (NotImplementedError here)."""
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)


def random_generators(layer: Layer) -> Dict[str, np.random.Generator]:
    """Every numpy Generator inside ``layer``, by attribute path: attributes of
    the layer and of the layers it holds (directly or in a list, tuple or dict),
    e.g. "dropout.rng", "rnn._rng", "layers.0.rng". Each generator once. What
    a checkpoint saves as the model's random state, and what each rank of a
    data-parallel run reseeds (``seqcore.distributed``)."""
    found: Dict[str, np.random.Generator] = {}
    seen = set()

    def visit(value: Any, path: str) -> None:
        if id(value) in seen:
            return
        if isinstance(value, np.random.Generator):
            seen.add(id(value))
            found[path] = value
        elif isinstance(value, Layer):
            seen.add(id(value))
            for k, v in vars(value).items():
                visit(v, f"{path}.{k}" if path else k)
        elif isinstance(value, (list, tuple)):
            seen.add(id(value))
            for i, v in enumerate(value):
                visit(v, f"{path}.{i}")
        elif isinstance(value, dict):
            seen.add(id(value))
            for k, v in value.items():
                if isinstance(k, str):
                    visit(v, f"{path}.{k}")

    visit(layer, "")
    return dict(sorted(found.items()))
