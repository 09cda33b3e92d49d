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
from typing import Dict, List, Mapping, Optional

import numpy as np

from .. import ops
from .layers import precision_property
from .module import Layer

GATES = {"rnn": 1, "lstm": 4, "gru": 3}


class Recurrent(Layer):
    """The common body of RNN, LSTM and GRU (``cell`` names which)."""

    cell = ""
    precision = precision_property("The products' precision: 'fp32' or 'bf16' (float32 only).")

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
        self._rng = np.random.default_rng(seed)
        G, H = GATES[self.cell], self.hidden_size
        k = 1 / np.sqrt(H)  # PyTorch: every weight and bias uniform in ±1/√H
        for layer in range(self.num_layers):
            D = self.input_size if layer == 0 else self.output_size
            for suffix in self._suffixes(layer):
                for name, shape in (("weight_ih", (G * H, D)), ("weight_hh", (G * H, H)),
                                    ("bias_ih", (G * H,)), ("bias_hh", (G * H,))):
                    self.add_param(f"{name}{suffix}", self._rng.uniform(-k, k, shape).astype(self.dtype))
        self._saved: Optional[dict] = None
        # After backward: the gradient at the state given to forward (same
        # structure), e.g. to carry a decoder's gradient into its encoder.
        self.state_grad = None

    @property
    def output_size(self) -> int:
        """Features of y at each step."""
        return self.hidden_size * (self.directions if self.merge == "concat" else 1)

    def _suffixes(self, layer: int) -> List[str]:
        return [f"_l{layer}", f"_l{layer}_reverse"][: self.directions]

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

    def _run_direction(self, layer: int, d: int, x, states, train, lengths, threads):
        """One layer and direction through ops: returns ((y, hT[, cT]), cache)."""
        p, sfx = self._params, self._suffixes(layer)[d]
        idx = layer * self.directions + d
        init = [None if s is None else np.ascontiguousarray(s[idx]) for s in states]
        W_ih, W_hh = p[f"weight_ih{sfx}"], p[f"weight_hh{sfx}"]
        b_ih, b_hh = p[f"bias_ih{sfx}"], p[f"bias_hh{sfx}"]
        options = dict(train=train, lengths=lengths, reverse=d == 1, num_threads=threads, precision=self.precision)
        if self.cell == "gru":
            out = ops.gru_forward(x, *init, W_ih, W_hh, b_ih, b_hh, **options)
        else:
            out = getattr(ops, f"{self.cell}_forward")(x, *init, W_ih, W_hh, b_ih + b_hh, **options)
        return out[:-1], out[-1]

    def _both_directions(self, run):
        """run(d, threads) for each direction; with two or more threads, the two
        directions run at the same time, each with half of them."""
        n = ops.get_num_threads()
        if self.directions == 1 or n < 2:
            return [run(d, None) for d in range(self.directions)]
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            reverse = pool.submit(run, 1, n - n // 2)
            forward = run(0, n // 2)
            return [forward, reverse.result()]

    def forward(self, x, state=None, train: bool = True, lengths=None):
        """x (T, B, D) (or (B, T, D) with batch_first); state as in the module
        doc, or None for zeros; lengths: B sequence lengths of a padded batch.

        Returns (y, state). With train=True, what backward needs is kept."""
        x = self._check_input(x)
        T, B = x.shape[:2]
        states = self._check_states(state, B)
        finals = [[None] * (self.num_layers * self.directions) for _ in states]
        caches, masks = [], []
        inp = x
        for layer in range(self.num_layers):
            results = self._both_directions(
                lambda d, threads: self._run_direction(layer, d, inp, states, train, lengths, threads))
            for d, (outs, _) in enumerate(results):
                for k in range(len(states)):
                    finals[k][layer * self.directions + d] = outs[1 + k]
            caches.append([cache for _, cache in results])
            ys = [outs[0] for outs, _ in results]
            y = ys[0] if self.directions == 1 else (np.concatenate(ys, axis=2) if self.merge == "concat" else ys[0] + ys[1])
            mask = None
            if train and self.dropout > 0 and layer < self.num_layers - 1:
                mask = (self._rng.random(y.shape) >= self.dropout).astype(self.dtype) / self.dtype.type(1 - self.dropout)
                y = y * mask
            masks.append(mask)
            inp = y
        self._saved = dict(caches=caches, masks=masks, T=T, B=B) if train else None
        final = tuple(np.stack(f) for f in finals)
        y = np.ascontiguousarray(inp.transpose(1, 0, 2)) if self.batch_first else inp
        return y, (final if self.cell == "lstm" else final[0])

    def backward(self, dy, dstate=None):
        """dy: gradient at y (its shape); dstate: gradient at the returned state
        (same structure) or None. Accumulates into grads; returns dx, and sets
        ``state_grad``, the gradient at the initial state."""
        if self._saved is None:
            raise RuntimeError("backward: call forward(train=True) first (each forward allows one backward)")
        saved, self._saved = self._saved, None
        T, B, H = saved["T"], saved["B"], self.hidden_size
        expected = (B, T, self.output_size) if self.batch_first else (T, B, self.output_size)
        if not isinstance(dy, np.ndarray) or dy.shape != expected or dy.dtype != self.dtype:
            got = f"{dy.dtype} {dy.shape}" if isinstance(dy, np.ndarray) else type(dy).__name__
            raise ValueError(f"dy: expected a {self.dtype} array of shape {expected}, got {got}")
        dy = np.ascontiguousarray(dy.transpose(1, 0, 2)) if self.batch_first else dy
        n_states = 2 if self.cell == "lstm" else 1
        dstates = self._check_states(dstate, B) if dstate is not None else [None] * n_states
        dinitial = [np.empty((self.num_layers * self.directions, B, H), self.dtype) for _ in range(n_states)]
        for layer in reversed(range(self.num_layers)):
            if saved["masks"][layer] is not None:
                dy = dy * saved["masks"][layer]
            if self.directions == 1:
                dys = [dy]
            elif self.merge == "concat":
                dys = [np.ascontiguousarray(dy[:, :, :H]), np.ascontiguousarray(dy[:, :, H:])]
            else:
                dys = [dy, dy]

            def run(d, _threads):
                idx = layer * self.directions + d
                dfinal = [None if s is None else np.ascontiguousarray(s[idx]) for s in dstates]
                return getattr(ops, f"{self.cell}_backward")(dys[d], *dfinal, saved["caches"][layer][d])

            grads = self._both_directions(run)
            dx = None
            for d, g in enumerate(grads):
                self._accumulate(layer, d, g)
                for k in range(n_states):
                    dinitial[k][layer * self.directions + d] = g[1 + k]
                dx = g[0] if dx is None else np.add(dx, g[0], out=dx)  # dx: the kernel's own array
            dy = dx
        self.state_grad = tuple(dinitial) if self.cell == "lstm" else dinitial[0]
        return np.ascontiguousarray(dy.transpose(1, 0, 2)) if self.batch_first else dy

    def _accumulate(self, layer: int, d: int, g) -> None:
        """Adds one direction's (dx, dh0, [dc0,] dW_ih, dW_hh, db...) to grads."""
        sfx, gr = self._suffixes(layer)[d], self._grads
        n_states = 2 if self.cell == "lstm" else 1
        dW_ih, dW_hh, *db = g[1 + n_states:]
        gr[f"weight_ih{sfx}"] += dW_ih
        gr[f"weight_hh{sfx}"] += dW_hh
        if self.cell == "gru":
            gr[f"bias_ih{sfx}"] += db[0]
            gr[f"bias_hh{sfx}"] += db[1]
        else:  # the kernels' one bias is bias_ih + bias_hh
            gr[f"bias_ih{sfx}"] += db[0]
            gr[f"bias_hh{sfx}"] += db[0]


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
