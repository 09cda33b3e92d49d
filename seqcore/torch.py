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

What runs: each layer and direction is one call of seqcore.ops over the whole
sequence (nn.recurrent.stack_forward, as seqcore's own layers), a packed batch
as a padded one with its lengths (seqcore's variable-length kernels).
Gradients come from a ``torch.autograd.Function`` that calls the backward
kernels; under ``torch.no_grad()`` / ``inference_mode()``, or when nothing
needs a gradient, the inference kernels run and nothing is kept.

Copies: the kernels read the tensors' memory (``Tensor.numpy()``, no copy)
and their results become tensors without one (``torch.from_numpy``). Copied
are: an input that is not contiguous (``batch_first``'s transpose, a
gradient such as ``.sum()``'s that arrives expanded), a non-contiguous
parameter, and a packed batch, unpacked to a padded one and packed again
(torch's pad/pack functions). For RNN and LSTM the kernels take one bias,
``bias_ih + bias_hh`` (a sum made each call); both biases get its gradient.

Dropout between layers (``dropout`` > 0 in training mode) draws its masks
from torch's generator, as torch's modules do: one ``bernoulli_`` over each
layer's output (over the packed data for a packed batch), in the same order,
so a ``torch.manual_seed`` gives torch's own masks.

Threads: each call runs seqcore's kernels on ``torch.get_num_threads()``
threads, so ``torch.set_num_threads(n)`` sets them for both libraries here
(seqcore.set_num_threads still sets those of seqcore's own layers).

Supported: float32 and float64 tensors on the CPU (the parameters' dtype),
``bias=False``. Refused with an error: ``proj_size`` > 0, ``nonlinearity=
"relu"``, other dtypes and devices (revert to torch's module for those), NaN
or inf in the input, state or weights (torch would carry them on). Not
supported: TorchScript, double backward (``create_graph=True``).

torch is imported here only; ``import seqcore`` never loads this module.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.autograd.function import once_differentiable
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from .nn.recurrent import stack_backward, stack_forward

__all__ = ["LSTM", "GRU", "RNN", "convert", "revert"]

DTYPES = (torch.float32, torch.float64)


# ---------------------------------------------------------------------------
# the stack as an autograd function


def _numpy(t: Optional[torch.Tensor]) -> Optional[np.ndarray]:
    """The tensor's memory as an ndarray (no copy; its strides, whatever they are)."""
    return None if t is None else t.detach().numpy()


class _Call:
    """What one forward call runs: the module's configuration and this call's
    options (everything but tensors, which go through autograd)."""

    def __init__(self, cell: str, names: Sequence[str], num_layers: int, directions: int,
                 lengths: Optional[np.ndarray], dropout_mask: Optional[Callable], threads: int) -> None:
        self.cell, self.names, self.num_layers, self.directions = cell, list(names), num_layers, directions
        self.lengths, self.dropout_mask, self.threads = lengths, dropout_mask, threads

    def run(self, x: torch.Tensor, states: List[Optional[torch.Tensor]], weights: Sequence[torch.Tensor],
            train: bool):
        """x (T, B, D), states [h0(, c0)] (layers·dirs, B, H) or None -> (y, finals
        as tensors, saved)."""
        params = {name: _numpy(w) for name, w in zip(self.names, weights)}
        x = np.ascontiguousarray(_numpy(x))  # a copy only if x is not contiguous (batch_first), once for all calls
        y, finals, saved = stack_forward(self.cell, params, x, [_numpy(s) for s in states],
                                         num_layers=self.num_layers, directions=self.directions, train=train,
                                         lengths=self.lengths, dropout_mask=self.dropout_mask,
                                         threads=self.threads)
        return torch.from_numpy(y), [torch.from_numpy(f) for f in finals], saved


class _Stack(torch.autograd.Function):
    """(call, x, h0, c0, *weights) -> (y, h_n[, c_n]); c0 is None but for LSTM.
    Backward: seqcore's BPTT kernels, the gradient of every input."""

    @staticmethod
    def forward(ctx, call: _Call, x, h0, c0, *weights):
        ctx.set_materialize_grads(False)  # an unused output's gradient stays None, not zeros
        states = [h0, c0] if call.cell == "lstm" else [h0]
        y, finals, ctx.saved = call.run(x, states, weights, train=True)
        ctx.call, ctx.given = call, (h0 is not None, c0 is not None)
        # the kernels kept views of these: torch's version counters tell if one changes before backward
        ctx.save_for_backward(x, *weights)
        return (y, *finals)

    @staticmethod
    @once_differentiable
    def backward(ctx, dy, *dfinals):
        ctx.saved_tensors  # raises if an input the kernels kept was changed in place since forward
        grads = {}
        dx, dinitial = stack_backward(ctx.saved, _numpy(dy), [_numpy(d) for d in dfinals], grads)
        dstates = [torch.from_numpy(d) if given else None
                   for d, given in zip(list(dinitial) + [None] * (2 - len(dinitial)), ctx.given)]
        return (None, torch.from_numpy(dx), *dstates, *[torch.from_numpy(grads[n]) for n in ctx.call.names])


def _torch_dropout_mask(p: float, dtype: torch.dtype, packed: Optional[PackedSequence]) -> Callable:
    """mask(shape) -> the ndarray that multiplies a layer's output (T, B, F),
    drawn as torch's modules draw it (aten's dropout: bernoulli_(1 - p) / (1 - p)),
    over the packed data (N, F) for a packed batch, then laid out padded."""

    def mask(shape: Tuple[int, ...]) -> np.ndarray:
        T, B, F = shape
        noise = torch.empty((packed.data.shape[0], F) if packed is not None else shape, dtype=dtype)
        if p == 1:
            noise.zero_()
        else:
            noise.bernoulli_(1 - p).div_(1 - p)
        if packed is not None:
            noise = pad_packed_sequence(PackedSequence(noise, packed.batch_sizes, packed.sorted_indices,
                                                       packed.unsorted_indices), total_length=T)[0]
        return noise.numpy()

    return mask


# ---------------------------------------------------------------------------
# the modules


def _unsupported(module: torch.nn.Module) -> Optional[str]:
    """Why seqcore cannot run this torch recurrent module, or None."""
    if getattr(module, "proj_size", 0):
        return f"proj_size: seqcore's LSTM has no projection (proj_size=0), got {module.proj_size}"
    if getattr(module, "mode", "") == "RNN_RELU":
        return "nonlinearity: seqcore's RNN is tanh only, got 'relu'"
    return None


class _Recurrent:
    """The forward shared by LSTM, GRU and RNN (mixed into torch's classes)."""

    _cell = ""

    def _get_name(self) -> str:  # the name repr() shows
        return f"seqcore.torch.{type(self).__name__}"

    def forward(self, input, hx=None):
        """As torch's module: input (T, B, D), (B, T, D) with batch_first, (T, D)
        unbatched, or a PackedSequence; hx the initial state (an (h0, c0) pair
        for LSTM) or None. Returns (output, h_n), (output, (h_n, c_n)) for LSTM."""
        reason = _unsupported(self)
        if reason is not None:
            raise ValueError(reason)
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
        self._check_tensor("input", x, weights[0].dtype)
        if x.shape[2] != self.input_size:
            raise ValueError(f"input: expected {self.input_size} features (input_size), got {x.shape[2]}")
        for name, w in zip(self._flat_weights_names, weights):
            self._check_tensor(name, w, weights[0].dtype)
        states = self._states(hx, x.shape[1], unbatched, weights[0].dtype)

        dirs = 2 if self.bidirectional else 1
        mask = None
        if self.training and self.dropout > 0 and self.num_layers > 1:
            mask = _torch_dropout_mask(float(self.dropout), x.dtype, packed)
        call = _Call(self._cell, self._flat_weights_names, self.num_layers, dirs,
                     None if lengths is None else lengths.numpy(), mask, torch.get_num_threads())
        tensors = [x, *[s for s in states if s is not None], *weights]
        if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
            y, *finals = _Stack.apply(call, x, *(states + [None] * (2 - len(states))), *weights)
        else:  # inference: nothing kept
            y, finals, _ = call.run(x, states, weights, train=False)

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

    def _check_tensor(self, name: str, t: torch.Tensor, dtype: torch.dtype) -> None:
        if t.device.type != "cpu" or t.dtype not in DTYPES:
            raise TypeError(f"{name}: {self._get_name()} runs float32 and float64 tensors on the CPU, got {t.dtype} "
                            f"on {t.device} (seqcore.torch.revert(model) gives torch's own module back)")
        if t.dtype != dtype:
            raise TypeError(f"{name}: expected dtype {dtype} (the module's parameters), got {t.dtype}")

    def _states(self, hx, B: int, unbatched: bool, dtype: torch.dtype) -> List[Optional[torch.Tensor]]:
        """hx -> [h0(, c0)], each (layers·dirs, B, H) or None."""
        names = ("h_0", "c_0") if self._cell == "lstm" else ("h_0",)
        if hx is None:
            return [None] * len(names)
        if self._cell == "lstm" and not (isinstance(hx, (tuple, list)) and len(hx) == 2):
            raise TypeError(f"hx: expected a tuple (h_0, c_0) for LSTM, got {type(hx).__name__}")
        parts = list(hx) if self._cell == "lstm" else [hx]
        shape = (self.num_layers * (2 if self.bidirectional else 1),) + (() if unbatched else (B,)) + \
            (self.hidden_size,)
        out = []
        for name, s in zip(names, parts):
            if not isinstance(s, torch.Tensor):
                raise TypeError(f"hx: expected {name} as a torch.Tensor, got {type(s).__name__}")
            self._check_tensor(f"hx ({name})", s, dtype)
            if tuple(s.shape) != shape:
                raise ValueError(f"hx: expected {name} of shape (num_layers·directions, "
                                 f"{'' if unbatched else 'batch, '}hidden_size) = {shape}, got {tuple(s.shape)}")
            out.append(s.unsqueeze(1) if unbatched else s)
        return out


class LSTM(_Recurrent, torch.nn.LSTM):
    """torch.nn.LSTM (same constructor, parameters and forward) on seqcore's kernels; proj_size=0 only."""

    _cell = "lstm"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _refuse(self)


class GRU(_Recurrent, torch.nn.GRU):
    """torch.nn.GRU (same constructor, parameters and forward) on seqcore's kernels."""

    _cell = "gru"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _refuse(self)


class RNN(_Recurrent, torch.nn.RNN):
    """torch.nn.RNN (same constructor, parameters and forward) on seqcore's kernels; nonlinearity="tanh" only."""

    _cell = "rnn"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _refuse(self)


def _refuse(module: torch.nn.Module, where: str = "") -> None:
    reason = _unsupported(module)
    if reason is not None:
        raise ValueError(f"{where}{reason}")


# ---------------------------------------------------------------------------
# converting a model

TWINS = {torch.nn.LSTM: LSTM, torch.nn.GRU: GRU, torch.nn.RNN: RNN}
ORIGINALS = {twin: original for original, twin in TWINS.items()}


def convert(model: torch.nn.Module) -> torch.nn.Module:
    """Makes every torch.nn.LSTM, GRU and RNN in ``model`` (``model`` itself
    included) run on seqcore's kernels, in place; returns ``model``.

    Each module keeps its parameters (the same objects: an optimizer built
    before still updates them), buffers, hooks and mode: only its class
    changes. Only these exact classes are converted (not subclasses of them,
    whose forward may differ). A module seqcore cannot run (proj_size > 0,
    nonlinearity="relu") is refused with a ValueError naming it, and then
    nothing is converted."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    found = [(name, m) for name, m in model.named_modules() if type(m) in TWINS]
    for name, m in found:
        _refuse(m, f"model{'.' + name if name else ''} ({type(m).__name__}): ")
    for _, m in found:
        m.__class__ = TWINS[type(m)]
    return model


def revert(model: torch.nn.Module) -> torch.nn.Module:
    """The inverse of convert: every seqcore.torch module in ``model`` becomes
    torch's own class again, in place (the same parameters); returns ``model``."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    for m in model.modules():
        if type(m) in ORIGINALS:
            m.__class__ = ORIGINALS[type(m)]
    return model
