"""Type stubs of seqcore's native kernels (csrc/bindings/).

Arrays are NumPy, C-contiguous, float32 or float64 (every array of a call has
x's dtype); the kernels never convert. Shapes (G = 1 for RNN, 4 for LSTM,
3 for GRU): x (T, B, D), y (T, B, H), h0, c0, hT, cT (B, H), W_ih (G·H, D),
W_hh (G·H, H), b_ih, b_hh (G·H,), lengths int64 (B,). Only seqcore.ops calls
this module; keep these signatures in step with csrc/bindings/
(tests/test_wheel.py compares them).
"""

from typing import List, Optional, Tuple

import numpy as np
import numpy.typing as npt

_Array = npt.NDArray[np.floating]

__version__: str

def isa() -> str:
    """The instruction set whose kernels are in use."""

def isas() -> list[str]:
    """The instruction sets this CPU can run, slowest first."""

def set_isa(name: str) -> None:
    """Use the kernels of another instruction set."""

def openmp() -> bool:
    """Whether the kernels were built with OpenMP."""

def get_num_threads() -> int: ...
def set_num_threads(n: int) -> None: ...
def plan_threads(cell: str, T: int, B: int, H: int, train: bool, num_threads: int = 0) -> int:
    """Workers the time loop of a call is worth (csrc/plan.h), before the cap of one per unit of hidden units; num_threads 0 means get_num_threads()."""

def plan_product_threads(M: int, N: int, K: int, num_threads: int = 0) -> int:
    """Threads for a product (M,K)·(K,N): 1 or num_threads (csrc/plan.h)."""

def plan_stream_threads(bytes: float, num_threads: int = 0) -> int:
    """Threads for a memory-bound pass over bytes bytes: 1 or num_threads (csrc/plan.h)."""

def set_thread_planning(on: bool) -> None:
    """Planning on (default) or off: off, every offered thread works (tests of the schedules)."""

def thread_planning() -> bool:
    """Whether threads are planned."""

def report_step_waits(waited_ns: int, long_waits: int, steps: int, n: int) -> None:
    """Tells the plan what a loop's meetings cost: worker 0's waits over steps of n workers, long_waits of them past the spin (csrc/plan.h)."""

def sync_excess_ns() -> float:
    """ns per step the workers' meetings cost beyond the plan's model (a moving average)."""

def reset_sync_excess() -> None:
    """Forgets the measured excess and lateness."""

def report_region_lateness(late_ns: int, n: int) -> None:
    """Tells the plan how late a pass's region found its last of n threads (csrc/plan.h)."""

def region_lateness_ns() -> float:
    """The passes' measured lateness beyond the model, ns."""

def plan_costs() -> dict[str, float]:
    """The thread plan's cost model constants (csrc/plan.h)."""

def gemm(
    a: _Array,
    b: _Array,
    c: _Array,
    trans_a: bool = False,
    trans_b: bool = False,
    alpha: float = 1.0,
    beta: float = 0.0,
    bf16: bool = False,
) -> None:
    """c = alpha * op(a) @ op(b) + beta * c, in place; float32 or float64, C-contiguous;
    bf16: op(a), op(b) rounded to bfloat16, float32 sums (float32 only)."""

def cell_forward(
    cell: str,
    x: _Array,
    h0: _Array,
    c0: Optional[_Array],
    W_ih: _Array,
    W_hh: _Array,
    b_ih: _Array,
    b_hh: Optional[_Array],
    train: bool,
    lengths: Optional[npt.NDArray[np.int64]] = None,
    reverse: bool = False,
    num_threads: int = 0,
    bf16: bool = False,
    W_hr: Optional[_Array] = None,
    relu: bool = False,
) -> Tuple[
    _Array,
    _Array,
    Optional[_Array],
    Optional[_Array],
    Optional[_Array],
    Optional[_Array],
    Optional[_Array],
    Optional[_Array],
]:
    """One layer, one direction, over a padded batch -> (y, hT, cT, ws_h, ws_gates, ws_c, ws_hn, ws_m);
    bf16: every product with bfloat16 operands (float32 only); W_hr (P, H): an
    LSTM's projection; relu: an RNN's nonlinearity in place of tanh.

    cell is 'rnn', 'lstm' or 'gru'; c0 is used by LSTM only, b_hh by GRU only.
    cT is None but for LSTM; the ws_* arrays (kept for cell_backward) are None
    unless train, ws_gates None for RNN, ws_c None but for LSTM, ws_hn None
    but for GRU, ws_m None but for an LSTM with W_hr. With W_hr, W_hh is
    (4H, P) and h0, hT, y have P features. num_threads 0 means get_num_threads().
    """

def cell_backward(
    cell: str,
    x: _Array,
    W_ih: _Array,
    W_hh: _Array,
    ws_h: _Array,
    ws_gates: Optional[_Array],
    ws_c: Optional[_Array],
    ws_hn: Optional[_Array],
    dy: Optional[_Array],
    dhT: Optional[_Array],
    dcT: Optional[_Array],
    lengths: Optional[npt.NDArray[np.int64]] = None,
    reverse: bool = False,
    num_threads: int = 0,
    bf16: bool = False,
    ws_m: Optional[_Array] = None,
    W_hr: Optional[_Array] = None,
    relu: bool = False,
) -> Tuple[_Array, _Array, Optional[_Array], _Array, _Array, _Array, Optional[_Array], Optional[_Array]]:
    """BPTT of cell_forward -> (dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh, dW_hr); bf16,
    ws_m, W_hr and relu as the forward's.

    dy (T, B, H), dhT and dcT (B, H) may be None (zero) (P features for y and
    h with W_hr). dc0 is None but for LSTM, db_hh None but for GRU, dW_hr
    None without W_hr.
    """

# precision "int8" (inference, float32; csrc/cells/forward_int8.h)

class Int8Weights:
    """A cell's W_ih (G·H, D) and W_hh (G·H, H), float32, quantized per output
    row and packed once for the ISA in use (isa)."""

    def __init__(self, cell: str, W_ih: _Array, W_hh: _Array, num_threads: int = 0) -> None: ...
    @property
    def isa(self) -> str: ...
    @property
    def nbytes(self) -> int: ...

def cell_forward_int8(
    cell: str,
    x: _Array,
    h0: _Array,
    c0: Optional[_Array],
    weights: Int8Weights,
    b_ih: _Array,
    b_hh: Optional[_Array],
    lengths: Optional[npt.NDArray[np.int64]] = None,
    reverse: bool = False,
    num_threads: int = 0,
    relu: bool = False,
) -> Tuple[_Array, _Array, Optional[_Array]]:
    """Inference of one layer, one direction, in precision 'int8' (float32) -> (y, hT, cT); relu: an RNN's nonlinearity."""

def int8_sums(
    a: _Array, w: _Array, nv: int = 1, num_threads: int = 0
) -> Tuple[npt.NDArray[np.int32], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """For tests: the exact int32 sums of a and w quantized per row -> (S, scale_a, scale_w)."""

def forward_workspace_bytes(
    cell: str, T: int, B: int, D: int, H: int, train: bool, gather: bool, float64: bool, P: int = 0
) -> int:
    """Bytes a forward allocates beyond its inputs and outputs (P: an LSTM's projection size)."""

def adam(
    p: _Array,
    g: _Array,
    m: _Array,
    v: _Array,
    beta1: float,
    beta2: float,
    eps: float,
    step_size: float,
    bias2: float,
) -> None:
    """One Adam step in place: p, m, v updated from g (step_size = lr / (1 - beta1^t), bias2 = sqrt(1 - beta2^t))."""

def sum_of_squares(x: _Array) -> float:
    """The sum of the squares of x's elements, accumulated in double (C-contiguous); the same bits at any number of threads."""

def read_stream(x: _Array, repeats: int = 1, num_threads: int = 0) -> tuple[float, float]:
    """The bandwidth probe: num_threads workers (0: get_num_threads()) read their shares of x (1-D, C-contiguous) repeats times with the kernels' vector loads -> (seconds from the first start to the last end, the sum of what was read)."""

def softmax_cross_entropy(logits: _Array, targets: _Array, weights: _Array) -> tuple[float, _Array]:
    """Softmax cross-entropy of the rows of logits -> (sum of the weighted rows' nll, dlogits)."""

def sigmoid(x: _Array) -> _Array: ...
def tanh(x: _Array) -> _Array: ...

# generation: a language model prepared for stepping (csrc/generate/stepper.h)

class _Stepper:
    """Up to batch_size rows of a language model, one token a step: weights
    copied (W_hh packed) at construction and by refresh; one call a token.
    b_ih: RNN, LSTM the one bias b_ih + b_hh; b_hh: a list for GRU, else None.
    table: keep layer 0's x W_ihᵀ for every id (V, G·H). bf16: precision
    "bf16" (float32 only): the products' operands rounded to bfloat16.
    int8: precision "int8" (float32 only): the recurrent layers' weights
    quantized once, their products in int8 (the head in float32)."""

    def __init__(
        self,
        cell: str,
        batch_size: int,
        embedding: Optional[_Array],
        W_ih: List[_Array],
        W_hh: List[_Array],
        b_ih: List[_Array],
        b_hh: Optional[List[_Array]],
        head_W: _Array,
        head_b: Optional[_Array],
        table: bool,
        bf16: bool = False,
        int8: bool = False,
    ) -> None: ...
    def refresh(
        self,
        embedding: Optional[_Array],
        W_ih: List[_Array],
        W_hh: List[_Array],
        b_ih: List[_Array],
        b_hh: Optional[List[_Array]],
        head_W: _Array,
        head_b: Optional[_Array],
    ) -> None:
        """Copies and packs the weights again (the same sizes); zeroes the state."""
    def step(self, ids: npt.NDArray[np.int64], num_threads: int = 0) -> None:
        """One token for rows [0, n): ids (n,) -> logits()[:n]; the state moves on.
        At most num_threads threads (0: get_num_threads()), as many as the work pays for."""
    def step_draw(
        self,
        ids: npt.NDArray[np.int64],
        u: npt.NDArray[np.float64],
        out: npt.NDArray[np.int64],
        temperature: float,
        top_k: int,
        top_p: float,
        pad_id: int,
        num_threads: int = 0,
    ) -> bool:
        """step(ids), then out[r] = the token drawn for row r with u[r]; False if logits were not finite."""
    def state(self, which: int) -> _Array:
        """A view of h (which = 0) or c (1, LSTM), (L, B, H): writing into it sets the state."""
    def logits(self) -> _Array:
        """A view of the logits (B, V) of the last step."""
    @property
    def nbytes(self) -> int: ...

class StepperF32(_Stepper): ...
class StepperF64(_Stepper): ...

def draw(
    logits: _Array,
    u: npt.NDArray[np.float64],
    out: npt.NDArray[np.int64],
    temperature: float,
    top_k: int,
    top_p: float,
    pad_id: int,
) -> bool:
    """out[r] = the token drawn from logits[r] with the uniform number u[r]; false if not finite."""
