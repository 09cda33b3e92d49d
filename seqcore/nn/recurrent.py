"""Recurrent layers: RNN, LSTM and GRU, stacked and bidirectional, over padded
batches, with PyTorch's parameter names, shapes and initialisation.

One layer and direction is one call of the kernels in seqcore.ops over the
whole sequence. Shapes (time-major unless batch_first): x (T, B, D); y (T, B,
dirs·H) with merge="concat" or (T, B, H) with merge="sum"; the state h (and c
for LSTM) is (num_layers·dirs, B, H), indexed layer·dirs + direction as in
PyTorch.

``precision="bf16"`` (float32 layers): every matrix product with bfloat16
operands and float32 sums (see seqcore.ops); ``layer.precision`` may be
changed between calls, and a backward follows its forward's precision.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np

from .. import memory, ops
from . import init
from .layers import precision_property
from .module import Layer, params_version

_REVERSE: Optional[concurrent.futures.ThreadPoolExecutor] = None
_REVERSE_LOCK = threading.Lock()


def _reverse_direction_thread() -> concurrent.futures.ThreadPoolExecutor:
    """The one thread that runs reverse directions, started once: OpenMP
    keeps a pool of threads per thread that opens parallel regions, so a
    new thread per call would start (and end) a new pool each time."""
    global _REVERSE
    with _REVERSE_LOCK:
        if _REVERSE is None:
            _REVERSE = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="seqcore-reverse")
        return _REVERSE


def _forget_reverse_thread() -> None:
    global _REVERSE, _REVERSE_LOCK
    _REVERSE, _REVERSE_LOCK = None, threading.Lock()  # fork copied neither the thread nor a held lock's owner


os.register_at_fork(after_in_child=_forget_reverse_thread)

GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def parameter_count(cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
                    bidirectional: bool = False, merge: str = "concat") -> int:
    """The parameters of a recurrent layer of these (checked) sizes: each layer
    and direction has W_ih (G·H, D), W_hh (G·H, H) and two biases (G·H,),
    D = input_size at layer 0 and the layer below's output size after."""
    G, H, directions = GATES[cell], hidden_size, 2 if bidirectional else 1
    output_size = H * directions if merge == "concat" else H
    return directions * G * H * ((input_size + H + 2) + (num_layers - 1) * (output_size + H + 2))


class Recurrent(Layer):
    """The common body of RNN, LSTM and GRU (``cell`` names which)."""

    cell = ""
    precision = precision_property("The products' precision: 'fp32', 'bf16' or 'int8' (float32 only; "
                                   "'int8' for inference).")

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bidirectional: bool = False,
                 merge: str = "concat", dropout: float = 0.0, batch_first: bool = False, dtype=np.float32,
                 seed: Optional[int] = None, precision: str = "fp32") -> None:
        super().__init__()
        for name, v, low in (("input_size", input_size, 1), ("hidden_size", hidden_size, 1),
                             ("num_layers", num_layers, 1)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise ValueError(f"{name}: expected an int >= {low}, got {v!r}")
        if merge not in ("concat", "sum"):
            raise ValueError(f"merge: expected 'concat' or 'sum', got {merge!r}")
        if not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
            raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout!r}")
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise TypeError(f"dtype: expected float32 or float64, got {np.dtype(dtype)}")
        self.input_size, self.hidden_size, self.num_layers = int(input_size), int(hidden_size), int(num_layers)
        self.bidirectional, self.merge, self.dropout = bool(bidirectional), merge, float(dropout)
        self.batch_first, self.dtype = bool(batch_first), np.dtype(dtype)
        self.precision = precision
        self.directions = 2 if self.bidirectional else 1
        G, H = GATES[self.cell], self.hidden_size
        count = parameter_count(self.cell, self.input_size, H, self.num_layers, self.bidirectional, self.merge)
        bidirectional = ", bidirectional=True" if self.bidirectional else ""
        # (not their gradients: zeros whose pages are not touched until a backward writes them)
        memory.require(count * self.dtype.itemsize,
                       f"{type(self).__name__}(input_size={self.input_size}, hidden_size={H}, "
                       f"num_layers={self.num_layers}{bidirectional})'s parameters",
                       "make hidden_size, num_layers or input_size smaller")
        self._rng = np.random.default_rng(seed)
        k = 1 / np.sqrt(H)  # PyTorch: every weight and bias uniform in ±1/√H
        for layer in range(self.num_layers):
            D = self.input_size if layer == 0 else self.output_size
            for suffix in param_suffixes(layer, self.directions):
                for name, shape in (("weight_ih", (G * H, D)), ("weight_hh", (G * H, H)),
                                    ("bias_ih", (G * H,)), ("bias_hh", (G * H,))):
                    self.add_param(f"{name}{suffix}", init.uniform(self._rng, k, shape, self.dtype))
        self._saved: Optional[dict] = None
        # precision "int8": the weights quantized once, and the params_version
        # they were quantized at (see int8_weights)
        self._int8: Tuple[int, Dict[str, ops.Int8Weights]] = (-1, {})
        # After backward: the gradient at the state given to forward (same
        # structure), e.g. to carry a decoder's gradient into its encoder.
        self.state_grad = None

    @property
    def output_size(self) -> int:
        """Features of y at each step."""
        return self.hidden_size * (self.directions if self.merge == "concat" else 1)

    # -- PyTorch interoperability ---------------------------------------------

    def torch_state_dict(self) -> Dict[str, np.ndarray]:
        """The parameters under torch's names (weight_ih_l0, bias_hh_l1_reverse, …):
        ``{k: torch.from_numpy(v) for k, v in layer.torch_state_dict().items()}``
        loads into the torch layer of the same configuration."""
        return self.state_dict()

    def load_torch_state_dict(self, mapping: Mapping[str, object]) -> None:
        """Loads a torch layer's state_dict() (tensors or any array-likes, by
        torch's names), converted to this layer's dtype. Nothing changes unless
        every name and shape fits."""
        self.load_state_dict({k: np.asarray(v.detach().cpu() if hasattr(v, "detach") else v)
                              for k, v in mapping.items()})

    # -- forward and backward ---------------------------------------------------

    def _check_input(self, x) -> np.ndarray:
        if not isinstance(x, np.ndarray):
            raise TypeError(f"x: expected a numpy.ndarray, got {type(x).__name__}")
        if x.dtype != self.dtype:
            raise TypeError(f"x: expected dtype {self.dtype} (the layer's), got {x.dtype}")
        if x.ndim != 3 or x.shape[2] != self.input_size:
            dims = "(B, T, D)" if self.batch_first else "(T, B, D)"
            raise ValueError(f"x: expected shape {dims} with D = {self.input_size}, got {x.shape}")
        return np.ascontiguousarray(x.transpose(1, 0, 2)) if self.batch_first else x

    def _check_states(self, state, B: int) -> List[Optional[np.ndarray]]:
        """The given state as a list of arrays (h, and c for LSTM), or Nones."""
        names = ("h0", "c0") if self.cell == "lstm" else ("h0",)
        if state is None:
            return [None] * len(names)
        parts = state if self.cell == "lstm" else (state,)
        if self.cell == "lstm" and not (isinstance(state, tuple) and len(state) == 2):
            raise TypeError("state: expected a tuple (h0, c0) for LSTM")
        shape = (self.num_layers * self.directions, B, self.hidden_size)
        out = []
        for name, s in zip(names, parts):
            if not isinstance(s, np.ndarray) or s.shape != shape or s.dtype != self.dtype:
                got = f"{s.dtype} {s.shape}" if isinstance(s, np.ndarray) else type(s).__name__
                raise ValueError(f"state: expected {name} as a {self.dtype} array of shape "
                                 f"(num_layers·directions, B, H) = {shape}, got {got}")
            out.append(s)
        return out

    def _dropout_mask(self, shape):
        """The mask multiplying a layer's output (all but the last) in training:
        kept with probability 1 - dropout, scaled by 1 / (1 - dropout)."""
        keep = self._rng.random(shape) >= self.dropout
        return keep.astype(self.dtype) / self.dtype.type(1 - self.dropout)

    def forward(self, x, state=None, train: bool = True, lengths=None):
        """x (T, B, D) (or (B, T, D) with batch_first); state as in the module
        doc, or None for zeros; lengths: B sequence lengths of a padded batch.

        Returns (y, state). With train=True, what backward needs is kept."""
        x = self._check_input(x)
        states = self._check_states(state, x.shape[1])
        ops.check_inference(self.precision, train)
        mask = self._dropout_mask if train and self.dropout > 0 else None
        y, final, self._saved = stack_forward(self.cell, self._params, x, states, num_layers=self.num_layers,
                                              directions=self.directions, merge=self.merge, train=train,
                                              lengths=lengths, dropout_mask=mask, precision=self.precision,
                                              int8_weights=self.int8_weights() if self.precision == "int8" else None)
        y = np.ascontiguousarray(y.transpose(1, 0, 2)) if self.batch_first else y
        return y, (final if self.cell == "lstm" else final[0])

    def int8_weights(self) -> Dict[str, "ops.Int8Weights"]:
        """The layer's weights quantized for precision "int8" (by parameter
        suffix, filled by stack_forward as it first needs each): kept while
        the parameters stay as they are, quantized again after seqcore writes
        them (an optimiser's step, load_state_dict: params_version). A user's
        own write into the arrays is not seen: clear it (``_int8``) by setting
        ``precision`` again."""
        version = params_version()
        if self._int8[0] != version:
            self._int8 = (version, {})
        return self._int8[1]

    def backward(self, dy, dstate=None):
        """dy: gradient at y (its shape); dstate: gradient at the returned state
        (same structure) or None. Accumulates into grads; returns dx, and sets
        ``state_grad``, the gradient at the initial state."""
        if self._saved is None:
            raise RuntimeError("backward: call forward(train=True) first (each forward allows one backward)")
        saved, self._saved = self._saved, None
        T, B = saved["T"], saved["B"]
        expected = (B, T, self.output_size) if self.batch_first else (T, B, self.output_size)
        if not isinstance(dy, np.ndarray) or dy.shape != expected or dy.dtype != self.dtype:
            got = f"{dy.dtype} {dy.shape}" if isinstance(dy, np.ndarray) else type(dy).__name__
            raise ValueError(f"dy: expected a {self.dtype} array of shape {expected}, got {got}")
        dy = np.ascontiguousarray(dy.transpose(1, 0, 2)) if self.batch_first else dy
        n_states = 2 if self.cell == "lstm" else 1
        dstates = self._check_states(dstate, B) if dstate is not None else [None] * n_states
        dx, dinitial = stack_backward(saved, dy, dstates, self._grads)
        self.state_grad = dinitial if self.cell == "lstm" else dinitial[0]
        return np.ascontiguousarray(dx.transpose(1, 0, 2)) if self.batch_first else dx


# ---------------------------------------------------------------------------
# the stack over explicit parameters (the layers above and seqcore.torch)


def param_suffixes(layer: int, directions: int) -> List[str]:
    """The suffixes of layer ``layer``'s parameter names, one a direction ("_l1", "_l1_reverse")."""
    return [f"_l{layer}", f"_l{layer}_reverse"][:directions]


def _both_directions(directions: int, run, threads: Optional[int]):
    """run(d, threads) for each direction; with two or more threads (``threads``,
    None: seqcore.get_num_threads()), the two directions run at the same time,
    each with half of them."""
    n = ops.get_num_threads() if threads is None else threads
    if directions == 1 or n < 2:
        return [run(d, threads) for d in range(directions)]
    reverse = _reverse_direction_thread().submit(run, 1, n - n // 2)
    forward = run(0, n // 2)
    return [forward, reverse.result()]


def stack_forward(cell: str, params: Mapping[str, np.ndarray], x: np.ndarray, states: List[Optional[np.ndarray]],
                  *, num_layers: int, directions: int, merge: str = "concat", train: bool = True, lengths=None,
                  dropout_mask: Optional[Callable[[Tuple[int, ...]], np.ndarray]] = None,
                  threads: Optional[int] = None, precision: str = "fp32",
                  int8_weights: Optional[Dict[str, "ops.Int8Weights"]] = None):
    """A stacked (bidirectional) RNN/LSTM/GRU over time-major x (T, B, D) with
    the parameters ``params`` (PyTorch's names; the biases may be absent:
    zeros). states: [h0] or [h0, c0] (LSTM), each (num_layers·directions, B, H)
    or None (zeros). dropout_mask(shape), when given, returns the array that
    multiplies each layer's output (T, B, F) but the last one's. precision:
    the products' ("fp32", "bf16" or, with train=False, "int8": see
    seqcore.ops). int8_weights: for "int8", a dict the caller keeps (and
    empties when the parameters change) in which each layer's and
    direction's quantized weights (ops.Int8Weights) are kept by parameter
    suffix ("_l0", "_l1_reverse"), made on first use; None: quantized in
    the call.

    Returns (y (T, B, F), final: a tuple of (num_layers·directions, B, H)
    arrays (h[, c]), saved: what stack_backward needs, None unless train)."""
    T, B = x.shape[:2]
    finals = [[None] * (num_layers * directions) for _ in states]
    caches, masks = [], []

    def run(layer, d, inp, threads):
        sfx = param_suffixes(layer, directions)[d]
        idx = layer * directions + d
        init = [None if s is None else np.ascontiguousarray(s[idx]) for s in states]
        W_ih, W_hh = params[f"weight_ih{sfx}"], params[f"weight_hh{sfx}"]
        b_ih, b_hh = params.get(f"bias_ih{sfx}"), params.get(f"bias_hh{sfx}")
        if b_ih is None:  # a layer without biases (torch's bias=False)
            b_ih = b_hh = np.zeros(W_hh.shape[0], W_hh.dtype)
        options = dict(train=train, lengths=lengths, reverse=d == 1, num_threads=threads, precision=precision)
        if precision == "int8" and int8_weights is not None:
            w = int8_weights.get(sfx)
            if w is None or not w.matches(W_ih, W_hh):
                w = int8_weights[sfx] = ops.Int8Weights(cell, W_ih, W_hh)
            options["int8_weights"] = w
        if cell == "gru":
            out = ops.gru_forward(inp, *init, W_ih, W_hh, b_ih, b_hh, **options)
        else:
            out = getattr(ops, f"{cell}_forward")(inp, *init, W_ih, W_hh, b_ih + b_hh, **options)
        return out[:-1], out[-1]

    inp = x
    for layer in range(num_layers):
        results = _both_directions(directions, lambda d, n: run(layer, d, inp, n), threads)
        for d, (outs, _) in enumerate(results):
            for k in range(len(states)):
                finals[k][layer * directions + d] = outs[1 + k]
        caches.append([cache for _, cache in results])
        ys = [outs[0] for outs, _ in results]
        y = ys[0] if directions == 1 else (np.concatenate(ys, axis=2) if merge == "concat" else ys[0] + ys[1])
        mask = None
        if dropout_mask is not None and layer < num_layers - 1:
            mask = dropout_mask(y.shape)
            y = y * mask
        masks.append(mask)
        inp = y
    saved = None
    if train:
        saved = dict(cell=cell, caches=caches, masks=masks, T=T, B=B, num_layers=num_layers, directions=directions,
                     merge=merge, biases=f"bias_ih{param_suffixes(0, directions)[0]}" in params)
    return inp, tuple(np.stack(f) for f in finals), saved


def _add(grads: Dict[str, np.ndarray], name: str, g: np.ndarray, copy: bool = False) -> None:
    """grads[name] += g; a name not there yet takes g itself (a copy of it with ``copy``)."""
    if name in grads:
        grads[name] += g
    else:
        grads[name] = g.copy() if copy else g


def stack_backward(saved: dict, dy: Optional[np.ndarray], dstates: List[Optional[np.ndarray]],
                   grads: Dict[str, np.ndarray]):
    """BPTT of stack_forward(train=True): dy (T, B, F) or None, dstates as its
    states (gradients at its final state, or None). Adds each parameter's
    gradient into ``grads`` (by name; a name not there is set). Returns (dx
    (T, B, D), the gradients at the initial states: a tuple as final)."""
    cell, L, dirs, merge, B = saved["cell"], saved["num_layers"], saved["directions"], saved["merge"], saved["B"]
    H, dtype = saved["caches"][0][0].H, saved["caches"][0][0].dtype
    dinitial = [np.empty((L * dirs, B, H), dtype) for _ in dstates]
    for layer in reversed(range(L)):
        if saved["masks"][layer] is not None:
            dy = dy * saved["masks"][layer]
        if dy is None:  # only the final state has a gradient (the top layer; dx below)
            dys = [None] * dirs
        elif dirs == 1:
            dys = [dy]
        elif merge == "concat":
            dys = [np.ascontiguousarray(dy[:, :, :H]), np.ascontiguousarray(dy[:, :, H:])]
        else:
            dys = [dy, dy]

        def run(d, _threads):
            idx = layer * dirs + d
            dfinal = [None if s is None else np.ascontiguousarray(s[idx]) for s in dstates]
            return getattr(ops, f"{cell}_backward")(dys[d], *dfinal, saved["caches"][layer][d])

        dx = None
        for d, g in enumerate(_both_directions(dirs, run, None)):
            sfx = param_suffixes(layer, dirs)[d]
            dW_ih, dW_hh, *db = g[1 + len(dstates):]
            _add(grads, f"weight_ih{sfx}", dW_ih)
            _add(grads, f"weight_hh{sfx}", dW_hh)
            if saved["biases"] and cell == "gru":
                _add(grads, f"bias_ih{sfx}", db[0])
                _add(grads, f"bias_hh{sfx}", db[1])
            elif saved["biases"]:  # the kernels' one bias is bias_ih + bias_hh: both get its gradient
                _add(grads, f"bias_ih{sfx}", db[0])
                _add(grads, f"bias_hh{sfx}", db[0], copy=True)
            for k in range(len(dstates)):
                dinitial[k][layer * dirs + d] = g[1 + k]
            dx = g[0] if dx is None else np.add(dx, g[0], out=dx)  # dx: the kernel's own array
        dy = dx
    return dy, tuple(dinitial)


class RNN(Recurrent):
    """Vanilla tanh RNN: h_t = tanh(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh)."""

    cell = "rnn"


class LSTM(Recurrent):
    """LSTM with gates i, f, g, o (update, forget, candidate, output) as PyTorch.
    forget_bias, when given, sets the forget gate's bias (bias_ih + bias_hh) at
    initialisation, as Keras' unit_forget_bias does with 1."""

    cell = "lstm"

    def __init__(self, *args, forget_bias: Optional[float] = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if forget_bias is not None:
            H = self.hidden_size
            for name, p in self._params.items():
                if name.startswith("bias_ih"):
                    p[H:2 * H] = forget_bias
                elif name.startswith("bias_hh"):
                    p[H:2 * H] = 0


class GRU(Recurrent):
    """GRU with gates r, z, n as PyTorch (the reset applied after the recurrent product)."""

    cell = "gru"
