"""Drop-in ``torch.nn.LSTM``, ``GRU`` and ``RNN`` that run seqcore's kernels.

    import seqcore.torch
    seqcore.torch.convert(model)     # every torch.nn.LSTM/GRU/RNN inside model, in place
    ...                              # the training script as it was
    seqcore.torch.revert(model)      # torch's own modules again

or build them directly: ``seqcore.torch.LSTM(64, 256, num_layers=2)``.

They are torch's classes with another ``forward``: the same constructor, the
same parameters (names, shapes, initialisation, state dicts), ``forward(input,
hx=None)`` returning ``output, h_n`` (``output, (h_n, c_n)`` for LSTM), a
``PackedSequence`` in giving one out, unbatched (2-D) input, ``batch_first``.
``convert`` changes each module's class in place, so its parameters stay the
same objects (an optimizer built before it still holds them) and no random
number is drawn; ``revert`` changes it back.

What runs: the whole stack (every layer and direction) is one PyTorch
operator, ``torch.ops.seqcore.recurrent_forward``, registered with
``torch.library`` with a fake implementation (shapes only, for tracing) and
its autograd formula, ``torch.ops.seqcore.recurrent_backward`` (seqcore's
BPTT kernels). Inside, each layer and direction is one call of seqcore.ops
over the whole sequence (nn.recurrent.stack_forward, as seqcore's own
layers), a packed batch runs as a padded one with its lengths. Under
``torch.no_grad()`` / ``inference_mode()``, or when nothing needs a gradient,
the inference kernels run and nothing is kept. What a backward needs stays
in seqcore's own arrays, named to autograd by a one-element int64 "handle"
tensor that the forward returns and the backward reads; the arrays are
freed with the handle (when autograd frees the graph).

torch.compile: Dynamo refuses every module derived from torch's RNN classes
("Attempted to wrap RNN, GRU, or LSTM") unless ``torch._dynamo.config.
allow_rnn`` is set, a switch for the whole process that would also send
torch's own RNN modules down a path that fails in inductor on the CPU.
Importing this module turns the switch on for seqcore's modules alone (at
the one place Dynamo checks it, see _let_dynamo_trace_converted_modules),
so a converted model compiles with ``fullgraph=True``, the operator one node
of its graph, while torch's own modules graph-break as before. torch.export
holds the operator the same way (in an inference export the handle is not
used).

Precision and dtypes, as torch's modules:

- float32 and float64 parameters compute in their dtype (precision "fp32").
- ``torch.autocast("cpu", dtype=torch.bfloat16)`` with float32 (master)
  parameters: seqcore's bfloat16 products (``precision="bf16"``: operands
  rounded to bfloat16, float32 sums, float32 gates and cell state); the
  weights' gradients stay float32. Outputs have torch's dtypes there: LSTM
  and RNN bfloat16, GRU the dtype of its hx (or of its input, when no hx is
  given), since torch's GRU is not on autocast's list.
- ``torch.autocast("cpu", dtype=torch.float16)``: seqcore has no float16
  products; the stack computes in float32 and returns torch's dtypes (LSTM,
  RNN float16; GRU as above). (torch's own LSTM fails there, in oneDNN.)
- ``convert(model, precision="int8")`` (or a module's ``seqcore_precision
  = "int8"``): inference in seqcore's int8 products (weights quantized per
  output row once, until they change; activations per row each step; see
  seqcore.ops), for float32 modules; a call that needs gradients is
  refused. ``precision="bf16"``: the bf16 products without autocast.
  ``convert`` also takes the modules ``quantize_dynamic`` makes (see
  convert).
- bfloat16 parameters (``model.to(torch.bfloat16)``): the bf16 products on
  float32 copies of the weights; input, states, outputs and every gradient
  bfloat16. float16 parameters: float32 arithmetic, float16 in and out.
  float64 parameters ignore autocast, as torch's do.

Saving: ``torch.save(model)`` writes a converted module as torch's own class
(``torch.nn.LSTM``, …: the pickle names no seqcore class), so the file loads
with ``torch.load``'s defaults wherever torch's own module would (the same
``safe_globals``), seqcore installed or not, and comes back as torch's
module; ``seqcore.torch.convert(model)`` after loading makes it fast again.
``copy.deepcopy`` keeps the converted class.

Copies: the kernels read the tensors' memory (``Tensor.numpy()``, no copy)
and their results become tensors without one (``torch.from_numpy``). Copied
are: an input that is not contiguous (``batch_first``'s transpose, a
gradient such as ``.sum()``'s that arrives expanded), a non-contiguous
parameter, a packed batch (unpacked to a padded one and packed again with
torch's pad/pack functions), and the casts above. For RNN and LSTM the
kernels take one bias, ``bias_ih + bias_hh`` (a sum made each call); both
biases get its gradient.

Dropout between layers (``dropout`` > 0 in training mode) draws its masks
from torch's generator, as torch's modules do: one ``bernoulli_`` over each
layer's output (over the packed data for a packed batch), in the same order,
so a ``torch.manual_seed`` gives torch's own masks.

Threads: each call runs seqcore's kernels on ``torch.get_num_threads()``
threads (read when the operator runs), so ``torch.set_num_threads(n)`` sets
them for both libraries here (seqcore.set_num_threads still sets those of
seqcore's own layers).

Everything torch's modules take: ``nonlinearity="relu"`` and ``proj_size``
(an LSTM with a projection) included. Refused with an error: devices other
than the CPU, NaN or inf in the input, state or weights (torch would
carry them on), a second backward through the gradient (``create_graph=
True``: seqcore's BPTT has no derivative of its own; revert to torch's
modules for that). Not supported: TorchScript.

torch is imported here only; ``import seqcore`` never loads this module.
"""

from __future__ import annotations

import copy
import itertools
import threading
import weakref
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence
from torch.utils.weak import WeakIdKeyDictionary

from .nn.recurrent import GATES, param_suffixes, stack_backward, stack_forward

__all__ = ["LSTM", "GRU", "RNN", "convert", "revert"]

# The dtypes the modules take: float32/float64 compute as they are, the
# 16-bit ones in float32 (see the module's docstring).
DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
# A module's seqcore_precision: None (its dtype's and autocast's), "bf16" (the
# bf16 products whatever autocast says) or "int8" (inference, float32 modules).
PRECISIONS = (None, "bf16", "int8")


# ---------------------------------------------------------------------------
# what a backward needs, named by a handle tensor

_SAVED: Dict[int, dict] = {}  # handle -> stack_forward's `saved`
_SAVED_LOCK = threading.Lock()
_NEXT_HANDLE = itertools.count(1)


def _keep(saved: dict) -> Tensor:
    """A (1,) int64 tensor naming `saved`; it is forgotten when the tensor is freed."""
    key = next(_NEXT_HANDLE)
    with _SAVED_LOCK:
        _SAVED[key] = saved
    handle = torch.tensor([key], dtype=torch.int64)
    weakref.finalize(handle, _forget, key)
    return handle


def _forget(key: int) -> None:
    with _SAVED_LOCK:
        _SAVED.pop(key, None)


def _saved(handle: Tensor) -> dict:
    with _SAVED_LOCK:
        saved = _SAVED.get(int(handle[0])) if handle.numel() == 1 else None
    if saved is None:
        raise RuntimeError("seqcore.torch: this backward's forward kept nothing (it ran without gradients, "
                           "or its graph was freed)")
    return saved


# ---------------------------------------------------------------------------
# the operators


def weight_names(num_layers: int, bidirectional: bool, bias: bool, proj_size: int = 0) -> List[str]:
    """torch's names of a stack's weights, in its order (its _flat_weights_names)."""
    per = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if bias else []) + (["weight_hr"] if proj_size else [])
    return [f"{w}{sfx}" for layer in range(num_layers) for sfx in param_suffixes(layer, 2 if bidirectional else 1)
            for w in per]


def _numpy(t: Optional[Tensor]) -> Optional[np.ndarray]:
    """The tensor's memory as an ndarray (no copy; its strides, whatever they are)."""
    return None if t is None else t.detach().numpy()


@torch.library.custom_op("seqcore::recurrent_forward", mutates_args=())
def recurrent_forward(x: Tensor, h0: Optional[Tensor], c0: Optional[Tensor], weights: List[Tensor],
                      masks: List[Tensor], lengths: Optional[Tensor], cell: str, num_layers: int,
                      bidirectional: bool, bias: bool, nonlinearity: str, proj_size: int, precision: str,
                      train: bool) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """A stacked (bidirectional) RNN/LSTM/GRU over x (T, B, D), float32 or
    float64, with torch's weights in torch's order (weight_names) and
    states h0 (layers·dirs, B, P), c0 (layers·dirs, B, H) or None (zeros),
    P = proj_size or H; masks: the dropout masks (T, B, dirs·P) of every
    layer but the last, or none; lengths (B,) int64 of a padded batch or
    None. nonlinearity: an RNN's, "tanh" or "relu"; precision "fp32",
    "bf16" or (not ``train``) "int8".

    Returns (y (T, B, dirs·P), h_n (layers·dirs, B, P), c_n (layers·dirs, B,
    H; empty but for LSTM), handle: (1,) int64 naming what backward needs
    when ``train``, else empty)."""
    names = weight_names(num_layers, bidirectional, bias, proj_size)
    pending = iter(masks)
    y, finals, saved = stack_forward(
        cell, {n: _numpy(w) for n, w in zip(names, weights)}, np.ascontiguousarray(_numpy(x)),
        [_numpy(h0), _numpy(c0)] if cell == "lstm" else [_numpy(h0)], num_layers=num_layers,
        directions=2 if bidirectional else 1, train=train, lengths=None if lengths is None else _numpy(lengths),
        dropout_mask=(lambda shape: _numpy(next(pending))) if masks else None,
        threads=torch.get_num_threads(), precision=precision, nonlinearity=nonlinearity, proj_size=proj_size,
        int8_weights=_int8_weights(weights) if precision == "int8" else None)
    c_n = torch.from_numpy(finals[1]) if cell == "lstm" else x.new_empty(0)
    handle = _keep(saved) if train else torch.empty(0, dtype=torch.int64)
    return torch.from_numpy(y), torch.from_numpy(finals[0]), c_n, handle


@recurrent_forward.register_fake
def _recurrent_forward_fake(x, h0, c0, weights, masks, lengths, cell, num_layers, bidirectional, bias, nonlinearity,
                            proj_size, precision, train):
    T, B, dirs = x.shape[0], x.shape[1], 2 if bidirectional else 1
    H = weights[0].shape[0] // GATES[cell]
    P = proj_size or H
    c_n = x.new_empty(num_layers * dirs, B, H) if cell == "lstm" else x.new_empty(0)
    return (x.new_empty(T, B, dirs * P), x.new_empty(num_layers * dirs, B, P), c_n,
            torch.empty(1 if train else 0, dtype=torch.int64))


@torch.library.custom_op("seqcore::recurrent_backward", mutates_args=())
def recurrent_backward(handle: Tensor, dy: Optional[Tensor], dh_n: Optional[Tensor], dc_n: Optional[Tensor],
                       x: Tensor, h0: Optional[Tensor], c0: Optional[Tensor], weights: List[Tensor]
                       ) -> Tuple[Tensor, Tensor, Tensor, List[Tensor]]:
    """BPTT of recurrent_forward(train=True): the gradients at its outputs (each
    or None) -> (dx, dh0, dc0 (empty where h0, c0 were None), the weights'
    gradients in their order). x, h0, c0, weights: the forward's, for their
    shapes."""
    saved = _saved(handle)
    grads: Dict[str, np.ndarray] = {}
    dstates = [_numpy(dh_n), _numpy(dc_n)] if saved["cell"] == "lstm" else [_numpy(dh_n)]
    dx, dinitial = stack_backward(saved, _numpy(dy), dstates, grads)
    names = weight_names(saved["num_layers"], saved["directions"] == 2, saved["biases"], saved["proj_size"])
    dinitial = list(dinitial) + [None] * (2 - len(dinitial))
    dh0, dc0 = (torch.from_numpy(d) if s is not None else x.new_empty(0) for d, s in zip(dinitial, (h0, c0)))
    return torch.from_numpy(dx), dh0, dc0, [torch.from_numpy(grads[n]) for n in names]


@recurrent_backward.register_fake
def _recurrent_backward_fake(handle, dy, dh_n, dc_n, x, h0, c0, weights):
    dh0, dc0 = (x.new_empty(s.shape) if s is not None else x.new_empty(0) for s in (h0, c0))
    return x.new_empty(x.shape), dh0, dc0, [w.new_empty(w.shape) for w in weights]


def _setup_context(ctx, inputs, output) -> None:
    x, h0, c0, weights = inputs[:4]
    # the kernels kept views of x and the weights: torch's version counters tell if one changes before backward
    ctx.save_for_backward(output[3], x, h0, c0, *weights)
    ctx.masks = len(inputs[4])


def _backward(ctx, dy, dh_n, dc_n, _dhandle):
    if torch.is_grad_enabled():
        raise RuntimeError("seqcore.torch: a second backward through the gradient (create_graph=True) is not "
                           "supported: seqcore's BPTT kernels have no derivative of their own. Use torch's own "
                           "modules for higher-order gradients (seqcore.torch.revert(model)).")
    handle, x, h0, c0, *weights = ctx.saved_tensors
    dx, dh0, dc0, dweights = recurrent_backward(handle, dy, dh_n, dc_n, x, h0, c0, weights)
    return (dx, dh0 if h0 is not None else None, dc0 if c0 is not None else None, list(dweights),
            [None] * ctx.masks, None, None, None, None, None, None, None, None, None)


recurrent_forward.register_autograd(_backward, setup_context=_setup_context)


_INT8 = WeakIdKeyDictionary()  # a stack's first weight -> (its weights' ids and versions, their Int8Weights)


def _int8_weights(weights: List[Tensor]) -> dict:
    """The dict in which stack_forward keeps a stack's quantized weights
    (ops.Int8Weights by parameter suffix), kept while the weights are the
    same tensors at the same versions: an in-place change (an optimizer's
    step, load_state_dict, ``with torch.no_grad(): w.mul_(2)``) bumps a
    version, and the next call quantizes them again."""
    key = tuple((id(w), w._version) for w in weights)
    kept = _INT8.get(weights[0])
    if kept is None or kept[0] != key:
        kept = _INT8[weights[0]] = (key, {})
    return kept[1]


def _torch_dropout_masks(p: float, count: int, shape: Tuple[int, int, int], dtype: torch.dtype,
                         packed: Optional[PackedSequence]) -> List[Tensor]:
    """`count` masks (T, B, F) that multiply the layers' outputs, drawn as
    torch's modules draw them (aten's dropout: bernoulli_(1 - p) / (1 - p)),
    over the packed data (N, F) for a packed batch, then laid out padded."""
    T, B, F = shape
    masks = []
    for _ in range(count):
        noise = torch.empty((packed.data.shape[0], F) if packed is not None else shape, dtype=dtype)
        if p == 1:
            noise.zero_()
        else:
            noise.bernoulli_(1 - p).div_(1 - p)
        if packed is not None:
            noise = pad_packed_sequence(PackedSequence(noise, packed.batch_sizes, packed.sorted_indices,
                                                       packed.unsorted_indices), total_length=T)[0]
        masks.append(noise)
    return masks


# ---------------------------------------------------------------------------
# the modules


class _Recurrent:
    """The forward shared by LSTM, GRU and RNN (mixed into torch's classes)."""

    _cell = ""

    def _get_name(self) -> str:  # the name repr() shows
        return f"seqcore.torch.{type(self).__name__}"

    # -- saving: as torch's own class ------------------------------------------

    def __reduce_ex__(self, protocol):
        """Pickled as torch's own module (see the module's docstring): a call
        of torch's class on the meta device (no memory, no random number
        drawn), then this module's state (parameters, hooks, mode, …) in place
        of that one's, as pickle restores any module. (pickle writes an
        object's own class only: hence the call.)"""
        state = super().__reduce_ex__(protocol)[2:]  # (state, …) as pickle takes them from any object
        nonlinearity = (self.nonlinearity,) if self._cell == "rnn" else ()
        args = (self.input_size, self.hidden_size, self.num_layers, *nonlinearity, self.bias, self.batch_first,
                float(self.dropout), self.bidirectional, self.proj_size, "meta")
        return (ORIGINALS[type(self)], args, *state)

    def __deepcopy__(self, memo):
        """A deep copy of the same (converted) class."""
        twin = type(self).__new__(type(self))
        memo[id(self)] = twin
        twin.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return twin

    # -- forward ---------------------------------------------------------------

    def forward(self, input, hx=None):
        """As torch's module: input (T, B, D), (B, T, D) with batch_first, (T, D)
        unbatched, or a PackedSequence; hx the initial state (an (h0, c0) pair
        for LSTM) or None. Returns (output, h_n), (output, (h_n, c_n)) for LSTM."""
        lstm = self._cell == "lstm"
        packed = input if isinstance(input, PackedSequence) else None
        lengths = None
        if packed is not None:
            x, lengths = pad_packed_sequence(packed)  # (T, B, D), the batch in its given order
            unbatched = False
        elif not isinstance(input, torch.Tensor):
            raise TypeError(f"input: expected a torch.Tensor or a PackedSequence, got {type(input).__name__}")
        elif input.dim() not in (2, 3):
            raise ValueError(f"input: expected a 2-D (unbatched) or 3-D tensor, got shape {tuple(input.shape)}")
        else:
            unbatched = input.dim() == 2
            x = input.unsqueeze(1) if unbatched else (input.transpose(0, 1) if self.batch_first else input)
        weights = [getattr(self, name) for name in self._flat_weights_names]
        param_dtype = weights[0].dtype
        autocast = _autocast_dtype(param_dtype)
        for name, w in zip(self._flat_weights_names, weights):
            self._check_tensor(name, w, param_dtype, None)
        self._check_tensor("input", x, param_dtype, autocast)
        if x.shape[2] != self.input_size:
            raise ValueError(f"input: expected {self.input_size} features (input_size), got {x.shape[2]}")
        states = self._states(hx, x.shape[1], unbatched, param_dtype, autocast)

        compute = torch.float64 if param_dtype == torch.float64 else torch.float32
        precision = "bf16" if torch.bfloat16 in (param_dtype, autocast) else "fp32"
        chosen = getattr(self, "seqcore_precision", None)
        if chosen not in PRECISIONS:
            raise ValueError(f"seqcore_precision: expected None, 'bf16' or 'int8', got {chosen!r}")
        if chosen is not None and param_dtype != torch.float32:
            raise TypeError(f"seqcore_precision: {chosen!r} runs float32 modules, got {param_dtype} parameters")
        precision = chosen or precision
        if autocast is None:
            out_dtype = param_dtype
        elif self._cell == "gru":  # not on autocast's list: torch's GRU keeps its state's dtype
            out_dtype = (states[0] if states[0] is not None else x).dtype
        else:
            out_dtype = autocast
        x = x.to(compute)
        states = [None if s is None else s.to(compute) for s in states]
        weights = [w.to(compute) for w in weights]

        dirs = 2 if self.bidirectional else 1
        masks = []
        if self.training and self.dropout > 0 and self.num_layers > 1:
            masks = _torch_dropout_masks(float(self.dropout), self.num_layers - 1,
                                         (x.shape[0], x.shape[1], dirs * (self.proj_size or self.hidden_size)),
                                         compute, packed)
        train = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in [x, *states, *weights])
        if precision == "int8" and train:
            raise ValueError("precision: seqcore_precision 'int8' is for inference: call the module under "
                             "torch.no_grad() or torch.inference_mode() (or with nothing that requires a "
                             "gradient); train in float32 or bf16")
        y, h_n, c_n, _ = recurrent_forward(x, *(states + [None] * (2 - len(states))), weights, masks, lengths,
                                           self._cell, self.num_layers, self.bidirectional, self.bias,
                                           getattr(self, "nonlinearity", "tanh"), self.proj_size, precision, train)
        y, finals = y.to(out_dtype), [f.to(out_dtype) for f in ((h_n, c_n) if lstm else (h_n,))]

        if packed is not None:
            order = packed.sorted_indices
            y_sorted = y if order is None else y.index_select(1, order)
            data = pack_padded_sequence(y_sorted, lengths if order is None else lengths[order]).data
            output = PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
        elif unbatched:
            output = y.squeeze(1)
            finals = [f.squeeze(1) for f in finals]
        else:
            output = y.transpose(0, 1) if self.batch_first else y
        return (output, tuple(finals)) if lstm else (output, finals[0])

    def _check_tensor(self, name: str, t: torch.Tensor, dtype: torch.dtype, autocast: Optional[torch.dtype]) -> None:
        """t on the CPU with the parameters' dtype, or, under autocast, any but float64."""
        if t.device.type != "cpu" or t.dtype not in DTYPES:
            raise TypeError(f"{name}: {self._get_name()} runs float32, float64, bfloat16 and float16 tensors on "
                            f"the CPU, got {t.dtype} on {t.device} (seqcore.torch.revert(model) gives torch's own "
                            "module back)")
        if autocast is None and t.dtype != dtype:
            raise TypeError(f"{name}: expected dtype {dtype} (the module's parameters), got {t.dtype}")
        if autocast is not None and t.dtype == torch.float64:
            raise TypeError(f"{name}: expected float32 or a 16-bit float under autocast ({dtype} parameters), "
                            f"got {t.dtype}")

    def _states(self, hx, B: int, unbatched: bool, dtype: torch.dtype,
                autocast: Optional[torch.dtype]) -> List[Optional[torch.Tensor]]:
        """hx -> [h0(, c0)], each (layers·dirs, B, H) or None."""
        names = ("h_0", "c_0") if self._cell == "lstm" else ("h_0",)
        if hx is None:
            return [None] * len(names)
        if self._cell == "lstm" and not (isinstance(hx, (tuple, list)) and len(hx) == 2):
            raise TypeError(f"hx: expected a tuple (h_0, c_0) for LSTM, got {type(hx).__name__}")
        parts = list(hx) if self._cell == "lstm" else [hx]
        out = []
        for name, s in zip(names, parts):
            features = self.proj_size or self.hidden_size if name == "h_0" else self.hidden_size
            shape = (self.num_layers * (2 if self.bidirectional else 1),) + (() if unbatched else (B,)) + (features,)
            if not isinstance(s, torch.Tensor):
                raise TypeError(f"hx: expected {name} as a torch.Tensor, got {type(s).__name__}")
            self._check_tensor(f"hx ({name})", s, dtype, autocast)
            if tuple(s.shape) != shape:
                size = "proj_size or hidden_size" if name == "h_0" and self._cell == "lstm" else "hidden_size"
                raise ValueError(f"hx: expected {name} of shape (num_layers·directions, "
                                 f"{'' if unbatched else 'batch, '}{size}) = {shape}, got {tuple(s.shape)}")
            out.append(s.unsqueeze(1) if unbatched else s)
        return out


def _autocast_dtype(param_dtype: torch.dtype) -> Optional[torch.dtype]:
    """The dtype CPU autocast asks for (bfloat16 or float16), or None when it
    is off or the parameters are float64 (which autocast leaves alone)."""
    if param_dtype == torch.float64 or not torch.is_autocast_enabled("cpu"):
        return None
    return torch.get_autocast_dtype("cpu")


class LSTM(_Recurrent, torch.nn.LSTM):
    """torch.nn.LSTM (same constructor, parameters and forward; proj_size too) on seqcore's kernels."""

    _cell = "lstm"


class GRU(_Recurrent, torch.nn.GRU):
    """torch.nn.GRU (same constructor, parameters and forward) on seqcore's kernels."""

    _cell = "gru"


class RNN(_Recurrent, torch.nn.RNN):
    """torch.nn.RNN (same constructor, parameters and forward; nonlinearity "tanh" or "relu") on seqcore's kernels."""

    _cell = "rnn"


# ---------------------------------------------------------------------------
# torch.compile


def _let_dynamo_trace_converted_modules() -> bool:
    """Dynamo refuses every module derived from torch's RNN classes ("Attempted
    to wrap RNN, GRU, or LSTM") unless torch._dynamo.config.allow_rnn is set;
    setting it for the whole process would also send torch's own RNN modules
    to its experimental path (which fails in inductor on the CPU). So the one
    function that makes that check (VariableBuilder.wrap_module) sees the
    switch on for seqcore's modules only, which Dynamo then traces like any
    module: their forward calls the operator. False (compile graph-breaks at
    the converted module, as at torch's own) where this torch has no such
    function."""
    try:
        from torch._dynamo.variables.builder import VariableBuilder
    except ImportError:  # pragma: no cover (another torch)
        return False
    original = getattr(VariableBuilder, "wrap_module", None)
    if original is None or getattr(original, "_seqcore", False):
        return original is not None

    def wrap_module(self, value):
        if type(value) in ORIGINALS:
            with torch._dynamo.config.patch(allow_rnn=True):
                return original(self, value)
        return original(self, value)

    wrap_module._seqcore = True
    VariableBuilder.wrap_module = wrap_module
    return True


# ---------------------------------------------------------------------------
# converting a model

TWINS = {torch.nn.LSTM: LSTM, torch.nn.GRU: GRU, torch.nn.RNN: RNN}
ORIGINALS = {twin: original for original, twin in TWINS.items()}
COMPILES = _let_dynamo_trace_converted_modules()


def convert(model: torch.nn.Module, *, precision: Optional[str] = None) -> torch.nn.Module:
    """Makes every torch.nn.LSTM, GRU and RNN in ``model`` (``model`` itself
    included) run on seqcore's kernels, in place; returns ``model``.

    Each module keeps its parameters (the same objects: an optimizer built
    before still updates them), buffers, hooks and mode: only its class
    changes. Only these exact classes are converted (not subclasses of them,
    whose forward may differ).

    precision: None (the parameters' dtype and autocast decide), "bf16"
    (seqcore's bf16 products in every call, autocast or not) or "int8"
    (inference in seqcore's int8 products: weights quantized per output row
    once, until they change; a call that needs gradients is refused), set
    as each converted module's ``seqcore_precision`` (change it there
    later). The dynamically quantized LSTM and GRU modules of
    ``torch.ao.quantization.quantize_dynamic`` are replaced in their parent
    by seqcore's, with their weights dequantized and precision "int8" (or the
    one given), not requiring gradients; if ``model`` itself is one, the
    replacement is returned (use what convert returns)."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected None, 'bf16' or 'int8', got {precision!r}")
    for name, m in list(model.named_modules()):
        if _dynamically_quantized(m):
            twin = _from_dynamically_quantized(m, precision or "int8")
            if not name:
                return twin
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, twin)
    for m in model.modules():
        if type(m) in TWINS:
            m.__class__ = TWINS[type(m)]
            if precision is not None:
                m.seqcore_precision = precision
        elif type(m) in ORIGINALS and precision is not None:
            m.seqcore_precision = precision
    return model


def _dynamically_quantized(module: torch.nn.Module) -> bool:
    """A dynamically quantized LSTM/GRU (torch.ao.nn.quantized.dynamic), found
    by name so that torch's deprecated quantization package is not imported."""
    return type(module).__module__.startswith("torch.ao.nn.quantized.dynamic") and \
        type(module).__name__ in ("LSTM", "GRU")


def _from_dynamically_quantized(q: torch.nn.Module, precision: str) -> torch.nn.Module:
    """seqcore's module of q's configuration with q's weights dequantized
    (made on the meta device, then given them: nothing drawn)."""
    if getattr(q, "proj_size", 0):
        raise ValueError("model: a dynamically quantized LSTM with proj_size has no int8 kernel in seqcore")
    twin = TWINS[getattr(torch.nn, type(q).__name__)](q.input_size, q.hidden_size, q.num_layers, q.bias,
                                                        q.batch_first, float(q.dropout), q.bidirectional,
                                                        device="meta")
    state = {name: w.dequantize() for name, w in q.get_weight().items()}
    state.update(q.get_bias())
    twin.load_state_dict(state, assign=True)
    twin.requires_grad_(False).train(q.training)
    twin.seqcore_precision = precision
    return twin


def revert(model: torch.nn.Module) -> torch.nn.Module:
    """The inverse of convert: every seqcore.torch module in ``model`` becomes
    torch's own class again, in place (the same parameters); returns ``model``."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    for m in model.modules():
        if type(m) in ORIGINALS:
            m.__class__ = ORIGINALS[type(m)]
            m.__dict__.pop("seqcore_precision", None)
    return model
