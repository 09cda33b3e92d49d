"""Non-recurrent layers: Linear, Embedding, Dropout, activations, and Sequential.

Every layer applies to arrays with any leading dimensions, so a stack of them
runs at every step of a (T, B, H) sequence as one call (one matrix product
over T·B rows for Linear), with no Python loop over time or batch.

``forward(x, train=True)`` keeps what ``backward`` needs only when ``train``
is true; ``forward(..., train=False)`` keeps nothing (and forgets what an
earlier training forward kept), so ``backward`` then raises. ``backward``
differentiates the most recent training forward: it accumulates (+=) into
``grads`` and returns the gradient at the input.
"""

from __future__ import annotations

from typing import Iterator, Optional, Tuple

import numpy as np

from .. import memory, ops
from . import init
from .module import Layer

FLOATS = (np.float32, np.float64)


# ---------------------------------------------------------------------------
# argument checks


def check_size(name: str, v) -> int:
    """``v`` as an int >= 1 (a layer's or model's size); ValueError naming ``name``."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name}: expected an int >= 1, got {v!r}")
    return int(v)


def check_dtype(dtype) -> np.dtype:
    try:
        np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype: expected float32 or float64, got {dtype!r}") from None
    if np.dtype(dtype) not in FLOATS:
        raise TypeError(f"dtype: expected float32 or float64, got {np.dtype(dtype)}")
    return np.dtype(dtype)


def _float_array(name: str, a, dtype: Optional[np.dtype] = None) -> np.ndarray:
    """A float32/float64 ndarray; of dtype ``dtype`` (the layer's) when given."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(a).__name__}")
    if dtype is None and a.dtype not in FLOATS:
        raise TypeError(f"{name}: expected dtype float32 or float64, got {a.dtype}")
    if dtype is not None and a.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype} (the layer's), got {a.dtype}")
    return a


def _grad_in(dy, shape: Tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """The gradient at a layer's output: the output's shape and dtype."""
    dy = _float_array("dy", dy, dtype)
    if dy.shape != shape:
        raise ValueError(f"dy: expected the shape of the forward's output {shape}, got {dy.shape}")
    return dy


def _saved(layer: Layer, saved):
    if saved is None:
        raise RuntimeError(f"{type(layer).__name__}.backward: no forward(..., train=True) to "
                           "differentiate (train=False keeps nothing)")
    return saved


def precision_property(doc: str) -> property:
    """The ``precision`` attribute of a layer with matrix products: "fp32",
    "bf16" or "int8" (inference only; see seqcore.ops), checked against the
    layer's dtype when set; it may change between calls (a backward follows
    its forward's). Setting it drops the layer's int8 weights, if any."""

    def get(self) -> str:
        return self._precision

    def set_(self, value) -> None:
        self._precision = ops.check_precision(value, self.dtype)
        if "_int8" in vars(self):
            self._int8 = (-1, {})

    return property(get, set_, doc=doc)


# ---------------------------------------------------------------------------
# Linear


class Linear(Layer):
    """y = x · weightᵀ + bias over the last dimension: x (..., in) -> y (..., out).

    Params: ``weight`` (out, in) and ``bias`` (out,), both uniform in
    ±1/√in_features as PyTorch initialises them. ``precision="bf16"``
    (float32): the products with bfloat16 operands, float32 sums.
    ``precision="int8"`` (inference only): the product in float32 (int8
    covers the recurrent layers, whose weights are read at every step; a
    head's product is one per call).
    """

    precision = precision_property("The product's precision: 'fp32', 'bf16' or 'int8' (float32 only; 'int8' "
                                   "for inference, in float32).")

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype=np.float32,
                 seed: Optional[int] = None, precision: str = "fp32") -> None:
        super().__init__()
        self.in_features = check_size("in_features", in_features)
        self.out_features = check_size("out_features", out_features)
        self.dtype = check_dtype(dtype)
        self.precision = precision
        memory.require((self.in_features + bool(bias)) * self.out_features * self.dtype.itemsize,
                       f"Linear({self.in_features}, {self.out_features})'s parameters",
                       "make in_features or out_features smaller")
        rng = np.random.default_rng(seed)
        k = 1 / np.sqrt(self.in_features)
        # float64 draws rounded, so one seed gives the same model in both dtypes
        self.weight = self.add_param("weight", init.uniform(rng, k, (self.out_features, self.in_features),
                                                            self.dtype))
        self.bias = None
        if bias:
            self.bias = self.add_param("bias", init.uniform(rng, k, (self.out_features,), self.dtype))
        self._x2: Optional[np.ndarray] = None  # (N, in), N = product of the leading dims
        self._lead: Tuple[int, ...] = ()

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        """x (..., in_features) -> y (..., out_features)."""
        x = _float_array("x", x, self.dtype)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"x: expected shape (..., in_features) = (..., {self.in_features}), got {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("x: contains NaN or inf")
        lead = x.shape[:-1]
        ops.check_inference(self.precision, train)
        x2 = np.ascontiguousarray(x.reshape(-1, self.in_features))  # all steps and rows as one product
        y2 = ops.matmul(x2, self.weight, trans_b=True, precision="fp32" if self.precision == "int8" else self.precision)
        if self.bias is not None:
            y2 += self.bias
        self._x2, self._lead = (x2, lead) if train else (None, ())
        self._saved_precision = self.precision  # backward's, whatever precision is set in between
        return y2.reshape(lead + (self.out_features,))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy (..., out_features) -> dx (..., in_features); accumulates dweight, dbias."""
        x2 = _saved(self, self._x2)
        dy2 = _grad_in(dy, self._lead + (self.out_features,), self.dtype).reshape(-1, self.out_features)
        dy2 = np.ascontiguousarray(dy2)
        precision = self._saved_precision
        ops.matmul(dy2, x2, trans_a=True, out=self._grads["weight"], accumulate=True,  # (out, N) · (N, in)
                   precision=precision)
        if self.bias is not None:
            self._grads["bias"] += dy2.sum(axis=0)
        return ops.matmul(dy2, self.weight, precision=precision).reshape(self._lead + (self.in_features,))


# ---------------------------------------------------------------------------
# Embedding


class Embedding(Layer):
    """A lookup table: ids (...) of integers in [0, num_embeddings) -> (..., embedding_dim).

    Param ``weight`` (num_embeddings, embedding_dim), N(0, 1) as PyTorch. The
    row ``padding_idx`` (if given; negative counts from the end) starts at
    zero and never gets a gradient.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: Optional[int] = None,
                 dtype=np.float32, seed: Optional[int] = None) -> None:
        super().__init__()
        self.num_embeddings = check_size("num_embeddings", num_embeddings)
        self.embedding_dim = check_size("embedding_dim", embedding_dim)
        self.dtype = check_dtype(dtype)
        if padding_idx is not None:
            n = self.num_embeddings
            if isinstance(padding_idx, bool) or not isinstance(padding_idx, (int, np.integer)) \
                    or not -n <= padding_idx < n:
                raise ValueError(f"padding_idx: expected None or an int in [-{n}, {n}), got {padding_idx!r}")
            padding_idx = int(padding_idx) % n
        self.padding_idx = padding_idx
        memory.require(self.num_embeddings * self.embedding_dim * self.dtype.itemsize,
                       f"Embedding({self.num_embeddings}, {self.embedding_dim})'s parameters",
                       "make num_embeddings or embedding_dim smaller")
        rng = np.random.default_rng(seed)
        weight = init.normal(rng, (self.num_embeddings, self.embedding_dim), self.dtype)
        if padding_idx is not None:
            weight[padding_idx] = 0
        self.weight = self.add_param("weight", weight)
        # from the training forward: the ids flat (N,) and their shape
        self._ids: Optional[Tuple[np.ndarray, Tuple[int, ...]]] = None

    def forward(self, ids, train: bool = True) -> np.ndarray:
        """ids (...) integers -> (..., embedding_dim), rows of ``weight`` (copied)."""
        ids = np.asarray(ids)
        if ids.dtype.kind not in "iu":
            raise TypeError(f"ids: expected integers, got dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_embeddings):
            raise ValueError(f"ids: expected values in [0, num_embeddings) = [0, {self.num_embeddings}), "
                             f"got [{ids.min()}, {ids.max()}]")
        self._ids = (ids.reshape(-1), ids.shape) if train else None
        return self.weight[ids]

    def backward(self, dy: np.ndarray) -> None:
        """dy (..., embedding_dim): scatter-adds into dweight (repeated ids add up).
        Returns None: integer ids have no gradient."""
        ids, shape = _saved(self, self._ids)
        dy2 = _grad_in(dy, shape + (self.embedding_dim,), self.dtype).reshape(-1, self.embedding_dim)
        if self.padding_idx is not None:
            keep = ids != self.padding_idx
            ids, dy2 = ids[keep], dy2[keep]
        if ids.size:
            # the rows of each id summed together (sorted by id, then
            # np.add.reduceat over each id's run): ~6x faster than np.add.at
            order = np.argsort(ids, kind="stable")
            sorted_ids = ids[order]
            starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
            self._grads["weight"][sorted_ids[starts]] += np.add.reduceat(dy2[order], starts, axis=0)
        return None


# ---------------------------------------------------------------------------
# Dropout


class Dropout(Layer):
    """Inverted dropout: in training each entry is zeroed with probability p and
    the rest scaled by 1/(1-p), so inference (train=False) is the identity.

    ``rng`` is the layer's own numpy Generator (from ``seed``): a run is
    reproducible, and its state (``rng.bit_generator.state``) can be saved.
    """

    def __init__(self, p: float = 0.5, seed: Optional[int] = None) -> None:
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float, np.floating)) or not 0 <= p < 1:
            raise ValueError(f"p: expected a probability in [0, 1), got {p!r}")
        self.p = float(p)
        self.rng = np.random.default_rng(seed)
        self._mask: Optional[np.ndarray] = None  # x's shape: 0 or 1/(1-p); () when nothing is dropped

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        x = _float_array("x", x)
        if not train:
            self._mask = None
            return x
        if self.p == 0:
            self._mask = np.ones((), x.dtype)  # the identity; broadcasts in backward
            return x
        keep = self.rng.random(x.shape, dtype=x.dtype) >= self.p
        self._mask = keep * x.dtype.type(1 / (1 - self.p))
        return x * self._mask

    def backward(self, dy: np.ndarray) -> np.ndarray:
        mask = _saved(self, self._mask)
        dy = _float_array("dy", dy, mask.dtype)
        if mask.ndim and dy.shape != mask.shape:
            raise ValueError(f"dy: expected the shape of the forward's output {mask.shape}, got {dy.shape}")
        return dy if not mask.ndim else dy * mask  # p = 0: the identity, no copy


# ---------------------------------------------------------------------------
# activations (no params), for heads applied at every step


class Tanh(Layer):
    """y = tanh(x), elementwise, any shape."""

    def __init__(self) -> None:
        super().__init__()
        self._y: Optional[np.ndarray] = None

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        y = np.tanh(_float_array("x", x))
        self._y = y if train else None
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        y = _saved(self, self._y)
        return _grad_in(dy, y.shape, y.dtype) * (1 - y * y)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x), exact, in the dtype of x; e^-|x| never overflows. The
    reference has the same formula: nn/ keeps its own, as production code
    shares no code with the oracle it is checked against."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


class Sigmoid(Layer):
    """y = 1 / (1 + e^-x), elementwise, any shape; never overflows."""

    def __init__(self) -> None:
        super().__init__()
        self._y: Optional[np.ndarray] = None

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        y = sigmoid(_float_array("x", x))
        self._y = y if train else None
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        y = _saved(self, self._y)
        return _grad_in(dy, y.shape, y.dtype) * (y * (1 - y))


class ReLU(Layer):
    """y = max(x, 0), elementwise, any shape; the gradient at 0 is 0 (as PyTorch)."""

    def __init__(self) -> None:
        super().__init__()
        self._positive: Optional[np.ndarray] = None  # x's shape and dtype: 1 where x > 0, else 0

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        x = _float_array("x", x)
        self._positive = (x > 0).astype(x.dtype) if train else None
        return np.maximum(x, 0)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        positive = _saved(self, self._positive)
        return _grad_in(dy, positive.shape, positive.dtype) * positive


# ---------------------------------------------------------------------------
# Sequential


class Sequential(Layer):
    """Layers applied one after another; params are named "<index>.<name>"
    ("0.weight", as PyTorch).

    A layer whose forward returns a tuple (a recurrent layer's ``(y, state)``)
    passes on its first element, and its backward gets only that element's
    gradient. A layer whose backward returns None (Embedding: integer input)
    ends the backward pass there.
    """

    def __init__(self, *layers: Layer) -> None:
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layers[{i}]: expected a seqcore.nn.Layer, got {type(layer).__name__}")
        self.layers: Tuple[Layer, ...] = tuple(layers)

    def children(self) -> Iterator[Tuple[str, Layer]]:
        return ((str(i), layer) for i, layer in enumerate(self.layers))

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Layer:
        return self.layers[i]

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def forward(self, x, train: bool = True):
        for layer in self.layers:
            out = layer.forward(x, train=train)
            x = out[0] if isinstance(out, tuple) else out
        return x

    def backward(self, dy):
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
            if dy is None:
                break
        return dy
