"""Measuring the cells: seqcore native, the NumPy reference and PyTorch, side
by side in one process, at a given number of threads. Used by bench/cells.py
and `seqcore bench`; prints nothing itself.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from . import ops
from .timing import median_seconds, median_seconds_in_turns

try:  # NumPy's BLAS threads (the reference and the matmul peak); the bench extra
    import threadpoolctl
except ImportError:  # pragma: no cover
    threadpoolctl = None

CELLS = ("rnn", "lstm", "gru")
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
TORCH_CLASS = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}


def torch_or_none():
    """torch if it is installed, else None."""
    try:
        import torch
    except ImportError:
        return None
    return torch


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Runs the block with n threads for seqcore, NumPy's BLAS and torch."""
    before = ops.get_num_threads()
    torch = torch_or_none()
    torch_before = torch.get_num_threads() if torch else None
    limiter = threadpoolctl.threadpool_limits(limits=n, user_api="blas") if threadpoolctl else None
    ops.set_num_threads(n)
    if torch:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        ops.set_num_threads(before)
        if torch:
            torch.set_num_threads(torch_before)
        if limiter is not None:
            limiter.restore_original_limits()


def blas_info() -> List[dict]:
    """threadpoolctl's view of the BLAS NumPy uses ('architecture' is its kernel)."""
    if threadpoolctl is None:
        return []
    return [i for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]


def numpy_matmul_gflops(n: int = 2048, dtype=np.float32, repeat: int = 5) -> float:
    """GFLOP/s of NumPy's n×n×n matmul at the current BLAS threads: the peak
    that the cells' figures are compared with."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, n, n)).astype(dtype)
    c = np.empty((n, n), dtype)
    return 2 * n**3 / median_seconds(lambda: np.matmul(a, b, out=c), repeat=repeat) / 1e9


def read_bandwidth(nbytes: int, rounds: int = 5, min_time: float = 0.05) -> float:
    """Bytes a second that seqcore's kernels read from a buffer of `nbytes`
    float32 bytes, at the current threads (each reads its share, over and
    over: a share that fits a core's L2 is read from there, and so on). The
    median of `rounds` timings of at least `min_time` seconds each, after
    one pass that brings the buffer in (the probe, probe/read_stream.h)."""
    if nbytes < 64:
        raise ValueError(f"nbytes: expected at least 64, got {nbytes}")
    x = np.ones(nbytes // 4, np.float32)
    seconds, _ = ops.read_stream(x)
    repeats = max(1, int(min_time / max(seconds, 1e-7)))
    rates = [x.nbytes * repeats / ops.read_stream(x, repeats)[0] for _ in range(rounds)]
    return float(np.median(rates))


def recurrent_weight_bytes(cell: str, H: int, dtype=np.float32) -> int:
    """Bytes of W_hh (G·H, H): what a time step reads whole."""
    return GATES[cell] * H * H * np.dtype(dtype).itemsize


def cell_flops(cell: str, T: int, B: int, D: int, H: int, train: bool) -> float:
    """Floating-point operations of the matrix products of one call: forward
    2·T·B·G·H·(D + H); a training step adds dx, dW_ih, dW_hh and dh, three
    times the forward in all (elementwise work not counted)."""
    forward = 2.0 * T * B * GATES[cell] * H * (D + H)
    return 3 * forward if train else forward


def cell_arguments(cell: str, T: int, B: int, D: int, H: int, dtype=np.float32, seed: int = 0) -> Tuple:
    """Random arguments of ops.<cell>_forward, in order; weights uniform in
    ±1/√H as PyTorch initialises them, states None (zeros)."""
    rng = np.random.default_rng(seed)
    G, k = GATES[cell], 1 / np.sqrt(H)

    def uniform(*shape):
        return rng.uniform(-k, k, shape).astype(dtype)

    x = rng.standard_normal((T, B, D)).astype(dtype)
    states = (None, None) if cell == "lstm" else (None,)
    biases = (uniform(G * H), uniform(G * H)) if cell == "gru" else (uniform(G * H),)
    return (x,) + states + (uniform(G * H, D), uniform(G * H, H)) + biases


def seqcore_step(cell: str, args: Tuple, backend: str, train: bool,
                 precision: str = "fp32") -> Callable[[], None]:
    """A training step (forward and backward with every gradient, from dy at
    each step's output) or an inference call, of ops with `backend`, in
    `precision`. In "int8" (inference only: None for a training step) the
    native backend's weights are quantized once, as a model's are."""
    forward = getattr(ops, f"{cell}_forward")
    backward = getattr(ops, f"{cell}_backward")
    x = args[0]
    dy = np.ones(x.shape[:2] + (args[-2 if cell != "gru" else -3].shape[1],), x.dtype)
    no_state_grads = [None] * (2 if cell == "lstm" else 1)
    options: Dict[str, Any] = {}
    if precision == "int8":
        if train:
            return None
        if backend == "native":
            W_ih, W_hh = (args[3], args[4]) if cell == "lstm" else (args[2], args[3])
            options["int8_weights"] = ops.Int8Weights(cell, W_ih, W_hh)

    def infer():
        forward(*args, train=False, backend=backend, precision=precision, **options)

    def train_step():
        out = forward(*args, train=True, backend=backend, precision=precision)
        backward(dy, *no_state_grads, out[-1])

    return train_step if train else infer


def torch_step(cell: str, args: Tuple, train: bool, precision: str = "fp32") -> Optional[Callable[[], None]]:
    """The same step with torch.nn.RNN/LSTM/GRU and the same weights, or None
    without torch. precision "bf16": module, input and gradient in
    torch.bfloat16 (faster than float32 weights under torch.autocast:
    bench/torch_bf16_modes.py). "int8": inference only, the module as
    torch.ao.quantization.quantize_dynamic makes it (qint8 weights; torch
    has dynamically quantized LSTM and GRU, not RNN: None for "rnn")."""
    torch = torch_or_none()
    if torch is None or (precision == "int8" and (train or cell == "rnn")):
        return None
    x = args[0]
    W_ih, W_hh = (args[3], args[4]) if cell == "lstm" else (args[2], args[3])
    D, H = x.shape[2], W_hh.shape[1]
    dtype = torch.float64 if x.dtype == np.float64 else torch.float32
    layer = getattr(torch.nn, TORCH_CLASS[cell])(D, H).to(dtype)
    with torch.no_grad():
        layer.weight_ih_l0.copy_(torch.from_numpy(W_ih))
        layer.weight_hh_l0.copy_(torch.from_numpy(W_hh))
    xt = torch.from_numpy(x)
    if precision == "bf16":
        dtype = torch.bfloat16
        layer = layer.to(dtype)
        xt = xt.to(dtype)
    if precision == "int8":
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch 2.13: its quantized tensors are deprecated
            # (quantize_dynamic swaps a container's children, not the module given itself)
            layer = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(layer), {type(layer)},
                                                           dtype=torch.qint8)[0]
    xt = xt.requires_grad_(train)
    dy = torch.ones(x.shape[0], x.shape[1], H, dtype=dtype)

    def infer():
        with torch.inference_mode():
            layer(xt)

    def train_step():
        layer.zero_grad(set_to_none=True)
        xt.grad = None
        y, _ = layer(xt)
        y.backward(dy)

    return train_step if train else infer


def measure_cell(cell: str, config: Sequence[int], backends: Sequence[str], repeat: int = 5,
                 min_time: float = 0.2, dtype=np.float32, precision: str = "fp32",
                 others: Optional[Dict[str, Callable[..., Optional[Callable[[], None]]]]] = None
                 ) -> Dict[str, Dict[str, float]]:
    """Tokens per second (T·B per call) of each backend ("native",
    "reference", "torch", or a name of `others`, whose function makes that
    contestant's call from (cell, args, train, precision), or None where it
    has none), for "train" and "infer", at the current threads,
    in `precision` ("fp32", "bf16": torch's module and input in bfloat16;
    "int8": inference only, torch's quantize_dynamic module).
    The backends take turns (timing.median_seconds_in_turns: `repeat`
    rounds, about `min_time` seconds of each backend in all), so that a
    shared machine's drift slows them alike and their ratios hold."""
    T, B, D, H = config
    args = cell_arguments(cell, T, B, D, H, dtype)
    others = others or {}
    result: Dict[str, Dict[str, float]] = {backend: {} for backend in backends}
    for mode in ("train", "infer"):
        train = mode == "train"
        fns = {}
        for backend in backends:
            if backend in others:
                fn = others[backend](cell, args, train, precision)
            elif backend == "torch":
                fn = torch_step(cell, args, train, precision)
            else:
                fn = seqcore_step(cell, args, backend, train, precision)
            if fn is not None:
                fns[backend] = fn
        if not fns:  # "int8" trains in no backend
            continue
        seconds = median_seconds_in_turns(fns, rounds=repeat, warmup=1, min_time=min_time)
        for backend, s in seconds.items():
            result[backend][mode] = T * B / s
    return result


# ---------------------------------------------------------------------------
# a language model's training step, and where its time goes


def language_model_step(model, optimizer, x: np.ndarray, y: np.ndarray, clip_norm: float) -> Callable[[], float]:
    """One training step of a LanguageModel as the Trainer takes it: forward,
    softmax cross-entropy, backward, global-norm clipping, the optimizer's
    step (the state not carried: every step starts from zeros). x, y: ids
    (T, B). Returns a function that takes a step and returns the loss."""
    from . import nn, train

    def step() -> float:
        logits, _ = model.forward(x, None, train=True)
        loss, dlogits = nn.softmax_cross_entropy(logits, y)
        model.zero_grad()
        model.backward(dlogits)
        train.clip_by_global_norm(model.grads, clip_norm)
        optimizer.step()
        return loss

    return step


class StepProfile:
    """Seconds spent in each part of a step, summed over the steps run inside
    ``with profile.timing(...)``: the model's children's forward and backward
    (embedding, rnn, head), the loss, zero_grad, clipping and the optimizer's
    step are wrapped with timers on their instances and module functions,
    and restored after. "other" is the rest of each step's wall time."""

    def __init__(self) -> None:
        self.seconds: Dict[str, float] = {}
        self.steps = 0
        self.total = 0.0

    @contextlib.contextmanager
    def timing(self, model, optimizer) -> Iterator[Callable[[Callable[[], object]], None]]:
        import time

        from . import nn as nn_module
        from . import train as train_module

        def timed(name: str, fn: Callable) -> Callable:
            def wrapper(*args, **kwargs):
                start = time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
            return wrapper

        patched: List[Tuple[object, str, bool, object]] = []

        def patch(obj, attr: str, name: str) -> None:
            patched.append((obj, attr, attr in vars(obj), vars(obj).get(attr)))
            setattr(obj, attr, timed(name, getattr(obj, attr)))

        for child in ("embedding", "rnn", "head"):
            layer = getattr(model, child, None)
            if layer is not None:
                patch(layer, "forward", f"{child} forward")
                patch(layer, "backward", f"{child} backward")
        patch(model, "zero_grad", "zero_grad")
        patch(optimizer, "step", "optimizer")
        patch(nn_module, "softmax_cross_entropy", "loss")
        patch(train_module, "clip_by_global_norm", "clip")

        def run(step: Callable[[], object]) -> None:
            start = time.perf_counter()
            step()
            self.total += time.perf_counter() - start
            self.steps += 1

        try:
            yield run
        finally:
            for obj, attr, had, before in reversed(patched):
                if had:
                    setattr(obj, attr, before)
                else:
                    delattr(obj, attr)  # an instance's wrapper: its class's method shows again

    def rows(self) -> List[List[object]]:
        """[part, ms per step, share of the step] for each part, then "other"
        and the whole step."""
        per = 1e3 / max(self.steps, 1)
        rows = [[k, v * per, v / self.total] for k, v in self.seconds.items()]
        other = self.total - sum(self.seconds.values())
        return rows + [["other", other * per, other / self.total], ["step", self.total * per, 1.0]]
