"""Data-parallel training on several processes and hosts with MPI (mpi4py).

Every rank holds the whole model. A step's global batch of B rows (streams,
sequences) is cut by rows: rank r of R trains on rows ``row_range(B, r, R)``
(for a stream, the contiguous shard of the corpus those streams read; every
rank loads the whole corpus and reads only its rows of each batch). After
backward, each rank's gradient (a mean over its n_r counted tokens) is
multiplied by n_r, all of them are summed with one in-place allreduce of one
contiguous buffer, and divided by the global count N = sum n_r: the gradient
of the mean loss over the global batch, so that R ranks with B/R rows each
take the step one process takes with B rows (with equal counts, this is the
sum divided by the world size). Clipping and the update come after the
reduction, identical on every rank, so the weights stay identical.

    mpiexec -n 4 seqcore train corpus.txt --distributed
    mpiexec -n 4 python train.py     # Trainer(..., distributed=Communicator())

Blocking MPI collectives have no timeout: a rank that dies or hangs would
leave the others waiting forever. Every collective here is nonblocking and
polled until a deadline (``timeout`` seconds, default
``SEQCORE_MPI_TIMEOUT`` or 300); past it the rank prints which collective
timed out and aborts the whole job (``MPI_Abort``).

The extra ``pip install "seqcore[mpi]"`` brings mpi4py and the ``mpich``
wheel (``mpiexec`` and ``libmpi``); no compiler nor system MPI is needed.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .nn.module import params_written, random_generators

DEFAULT_TIMEOUT = 300.0
DEFAULT_BUCKET_BYTES = 64 << 20  # one allreduce per 64 MiB of gradients

# the scalars riding in the gradient buffer after the gradients
_COUNT, _LOSS, _BAD_OUTPUT, _BAD_LOSS, _INTERRUPT, _OUT_OF_TIME = range(6)
_SCALARS = 6


def row_range(rows: int, rank: int, size: int) -> Tuple[int, int]:
    """[lo, hi): the rows of a batch of ``rows`` that ``rank`` of ``size``
    trains on; contiguous, in rank order, sizes differing by at most one
    (empty for some ranks when rows < size)."""
    return rows * rank // size, rows * (rank + 1) // size


def batch_rows(batch, lo: int, hi: int):
    """Rows [lo, hi) of a trainer batch (inputs (T, B[, D]), targets (T, B) or
    (B,), lengths (B,) or None, mask (T, B) or None), trimmed to the longest
    of those rows when there are lengths; None when lo == hi."""
    if hi <= lo:
        return None
    inputs, targets, lengths, mask = batch
    T = inputs.shape[0]
    if lengths is not None:
        lengths = np.ascontiguousarray(lengths[lo:hi])
        T = min(T, max(1, int(lengths.max())))
    inputs = np.ascontiguousarray(inputs[:T, lo:hi])
    targets = np.ascontiguousarray(targets[lo:hi] if targets.ndim == 1 else targets[:T, lo:hi])
    mask = None if mask is None else np.ascontiguousarray(mask[:T, lo:hi])
    return inputs, targets, lengths, mask


def _import_mpi():
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError("seqcore.distributed needs mpi4py and an MPI library: pip install \"seqcore[mpi]\" "
                          f"(mpi4py and the mpich wheel) ({e})") from None
    return MPI


def _timeout_from_env() -> float:
    text = os.environ.get("SEQCORE_MPI_TIMEOUT")
    if text is None:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"SEQCORE_MPI_TIMEOUT: expected a number of seconds > 0, got {text!r}")
    return value


class StepTotals:
    """What the ranks agreed on after one step's reduction: ``count`` (N,
    the global counted tokens), ``loss`` (the mean over them), ``problem``
    (what was non-finite on some rank, "" if nothing), ``interrupt`` and
    ``out_of_time`` (true on some rank)."""

    def __init__(self, count: float, loss: float, problem: str, interrupt: bool, out_of_time: bool) -> None:
        self.count, self.loss, self.problem = count, loss, problem
        self.interrupt, self.out_of_time = interrupt, out_of_time


class Communicator:
    """The ranks of an MPI job (``comm``, default ``MPI.COMM_WORLD``) training
    one model together.

    ``rank``, ``size``: this rank and the world size; ``local_rank``,
    ``local_size``: the same among the ranks on this node (a shared-memory
    split). ``threads``: the native threads per rank, "auto" for the cores of
    the node ÷ the ranks on it (unless OMP_NUM_THREADS is set), an int, or
    None to leave them. ``timeout``: seconds any collective may wait for the
    other ranks before the job is aborted (None: ``SEQCORE_MPI_TIMEOUT`` or
    300). ``bucket_bytes``: the gradient buffer is reduced in pieces of at
    most this many bytes.
    """

    def __init__(self, comm=None, *, timeout: Optional[float] = None, threads="auto",
                 bucket_bytes: int = DEFAULT_BUCKET_BYTES) -> None:
        MPI = _import_mpi()
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        if timeout is None:
            timeout = _timeout_from_env()
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ValueError(f"timeout: expected a number of seconds > 0 or None, got {timeout!r}")
        if isinstance(bucket_bytes, bool) or not isinstance(bucket_bytes, int) or bucket_bytes < 1024:
            raise ValueError(f"bucket_bytes: expected an int >= 1024, got {bucket_bytes!r}")
        self.timeout, self.bucket_bytes = float(timeout), bucket_bytes
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        node = self.comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
        node.Free()
        self._buffer: Optional[np.ndarray] = None  # the flat gradient buffer, kept between steps
        self.allreduce_seconds = 0.0               # time spent in the gradient reduction, all steps
        self.allreduce_calls = 0
        if threads == "auto":
            if "OMP_NUM_THREADS" not in os.environ:
                from . import ops
                ops.set_num_threads(self.default_threads())
        elif threads is not None:
            from . import ops
            ops.set_num_threads(threads)

    def default_threads(self) -> int:
        """The cores of this node ÷ the ranks on it (at least 1)."""
        return max(1, (os.cpu_count() or 1) // self.local_size)

    def __repr__(self) -> str:
        return (f"Communicator(rank={self.rank}, size={self.size}, local_rank={self.local_rank}, "
                f"local_size={self.local_size}, timeout={self.timeout:g})")

    # -- waiting with a deadline -------------------------------------------------

    def _wait(self, requests: List, what: str) -> None:
        """Completes nonblocking ``requests``, or past the deadline reports and
        aborts the job. Polls at full speed for 10 ms (MPI progresses only
        inside its calls), then every 0.1 ms to leave the core to others."""
        MPI = self.MPI
        start = time.perf_counter()
        deadline = start + self.timeout
        while not MPI.Request.Testall(requests):
            now = time.perf_counter()
            if now > deadline:
                self.abort(f"no answer from the other ranks in {self.timeout:g} s during {what} "
                           f"(a rank died, hangs, or is far slower; SEQCORE_MPI_TIMEOUT sets the limit)")
            if now - start > 0.01:
                time.sleep(1e-4)

    def abort(self, message: str, code: int = 1) -> None:
        """Prints ``message`` on stderr and aborts every rank of the job."""
        sys.stderr.write(f"\nseqcore.distributed: rank {self.rank} of {self.size}: {message}; aborting the job\n")
        sys.stderr.flush()
        time.sleep(0.5)  # mpiexec forwards the message before Abort's kill; else it may be lost (1 run in 6)
        self.comm.Abort(code)

    def barrier(self, what: str = "a barrier") -> None:
        """Waits (with the timeout) until every rank has arrived."""
        self._wait([self.comm.Ibarrier()], what)

    # -- parameters ----------------------------------------------------------------

    def broadcast_params(self, params: Dict[str, np.ndarray]) -> None:
        """Every array of ``params`` (name -> ndarray, e.g. ``model.params``)
        becomes rank 0's, in place, with one broadcast of one flat buffer.
        The ranks must hold the same names, shapes and dtypes."""
        arrays = list(params.values())
        dtypes = {a.dtype for a in arrays}
        if len(dtypes) != 1:
            raise TypeError(f"params: expected one dtype, got {sorted(d.name for d in dtypes)}")
        self.check_same(sorted((k, tuple(a.shape), a.dtype.name) for k, a in params.items()), "the parameters")
        flat = np.concatenate([a.reshape(-1) for a in arrays]) if self.rank == 0 else \
            np.empty(sum(a.size for a in arrays), dtype=arrays[0].dtype)
        self._wait([self.comm.Ibcast(flat, root=0)], "the broadcast of the parameters")
        if self.rank != 0:
            offset = 0
            for a in arrays:
                a[...] = flat[offset:offset + a.size].reshape(a.shape)
                offset += a.size
            params_written()

    def check_same(self, value, what: str) -> None:
        """Raises ValueError on every rank unless ``value`` (picklable) is the
        same on all of them (e.g. the model's shapes, the batch size)."""
        values = self.allgather(value, what)
        if any(v != values[0] for v in values):
            differ = next(r for r, v in enumerate(values) if v != values[0])
            raise ValueError(f"distributed: {what} differ between rank 0 and rank {differ}; every rank must build "
                             f"the same model and trainer")

    def allgather(self, value, what: str) -> list:
        """[value of rank 0, value of rank 1, ...] on every rank (picklable
        values; arrival checked with the timeout first)."""
        self.barrier(what)
        return self.comm.allgather(value)

    def broadcast_object(self, value, what: str):
        """Rank 0's ``value`` (picklable) on every rank."""
        self.barrier(what)
        return self.comm.bcast(value, root=0)

    # -- one step's reduction ------------------------------------------------------

    def reduce_step(self, grads: Dict[str, np.ndarray], count: int, loss: float, bad_output: bool = False,
                    bad_loss: bool = False, interrupt: bool = False, out_of_time: bool = False) -> StepTotals:
        """After backward: ``grads`` (name -> ndarray, this rank's gradient of
        its mean loss over ``count`` counted tokens; zeros for a rank with
        none) become, in place on every rank, the gradient of the mean loss
        over the global batch: sum over ranks of count_r * grad_r, divided by
        the global count. The flags ride in the same buffer (one allreduce per
        step) so that every rank takes the same decisions: a non-finite
        output or loss on any rank, Ctrl-C or the time budget on any rank.
        A non-finite reduced gradient is reported as a problem too."""
        arrays = list(grads.values())
        dtype = arrays[0].dtype
        n = sum(a.size for a in arrays)
        if self._buffer is None or self._buffer.size != n + _SCALARS or self._buffer.dtype != dtype:
            self._buffer = np.empty(n + _SCALARS, dtype=dtype)
        buf = self._buffer
        weight = float(count)
        offset = 0
        for a in arrays:
            np.multiply(a.reshape(-1), weight, out=buf[offset:offset + a.size])
            offset += a.size
        # in the gradients' dtype: float32 counts are exact up to 2**24 tokens a step
        buf[n:] = (count, loss * count if count else 0.0, bad_output, bad_loss, interrupt, out_of_time)

        t0 = time.perf_counter()
        self.allreduce_(buf, "the gradient allreduce")
        self.allreduce_seconds += time.perf_counter() - t0
        self.allreduce_calls += 1

        total = float(buf[n + _COUNT])
        problem = ""
        if buf[n + _BAD_OUTPUT] > 0:
            problem = "the model's output (logits) holds NaN or inf (on some rank)"
        elif buf[n + _BAD_LOSS] > 0 or not np.isfinite(buf[n + _LOSS]):
            problem = "the loss is not finite (on some rank)"
        elif not np.isfinite(buf[:n]).all():
            problem = "a gradient holds NaN or inf"
        if not problem and total > 0:
            offset = 0
            for a in arrays:
                np.divide(buf[offset:offset + a.size].reshape(a.shape), total, out=a)
                offset += a.size
        elif not problem:  # nothing scored on any rank: a zero gradient everywhere, alike
            for a in arrays:
                a.fill(0)
        return StepTotals(total, float(buf[n + _LOSS]) / total if total else 0.0, problem,
                          bool(buf[n + _INTERRUPT] > 0), bool(buf[n + _OUT_OF_TIME] > 0))

    def allreduce_(self, buf: np.ndarray, what: str = "an allreduce") -> None:
        """Sums a contiguous 1-D ``buf`` over the ranks, in place, as pieces of
        at most ``bucket_bytes`` all in flight together."""
        if buf.ndim != 1 or not buf.flags.c_contiguous:
            raise ValueError(f"buf: expected a contiguous 1-D array, got shape {buf.shape}")
        step = max(1, self.bucket_bytes // buf.itemsize)
        requests = [self.comm.Iallreduce(self.MPI.IN_PLACE, buf[i:i + step], op=self.MPI.SUM)
                    for i in range(0, buf.size, step)]
        self._wait(requests, what)

    def sum(self, values: Sequence[float], what: str = "an allreduce of scalars") -> np.ndarray:
        """``values`` (float64) summed over the ranks."""
        buf = np.array(values, dtype=np.float64).reshape(-1)
        self.allreduce_(buf, what)
        return buf

    # -- the carried state of streams ----------------------------------------------

    def gather_rows(self, state, axis: int = 1):
        """The carried state of every rank's rows, concatenated along ``axis``
        in rank order, on rank 0 (None on the others; None if ``state`` is
        None). ``state``: an array or a tuple of arrays (LSTM's (h, c))."""
        self.barrier("the gather of the carried state")
        parts = self.comm.gather(state, root=0)
        if self.rank != 0 or all(p is None for p in parts):
            return None
        if any(p is None for p in parts):
            raise ValueError("distributed: some ranks carry a state and others not")
        if isinstance(state, tuple):
            return tuple(np.concatenate([p[k] for p in parts], axis=axis) for k in range(len(state)))
        return np.concatenate(parts, axis=axis)

    # -- random state --------------------------------------------------------------

    def own_random_state(self, model) -> None:
        """Rank r > 0 reseeds every numpy Generator in ``model`` (dropout) from
        its current state and r, so that ranks draw different masks; rank 0
        keeps its own (a 1-rank job draws what one process draws)."""
        if self.rank == 0:
            return
        for g in random_generators(model).values():  # the generators a checkpoint saves
            fresh = np.random.default_rng([int(g.integers(2 ** 63)), self.rank])
            g.bit_generator.state = fresh.bit_generator.state


__all__ = ["Communicator", "StepTotals", "row_range", "batch_rows",
           "DEFAULT_TIMEOUT", "DEFAULT_BUCKET_BYTES"]
