"""Stacked layers as a wavefront against today's sequential stack, at the
same threads: does running layer l + 1 on chunk c while layer l runs chunk
c + 1 (each layer on threads / layers threads) beat running the layers one
after the other, each on all the threads?

    python bench/wavefront.py                       # 2 threads, the configs below
    python bench/wavefront.py --threads 2 --chunks 5 10 25 --rounds 15 --json wave.json

The wavefront (wavefront_forward, below): time in chunks of K steps; a
thread per layer runs its chunks in order, chunk c from the state where
chunk c − 1 ended, once the layer below has written chunk c of its output;
the chunk calls are the ordinary ops calls. Its outputs, final states and
(training) the whole-sequence caches built from the chunks' are checked
bit for bit against seqcore.nn.recurrent.stack_forward, and a training step
then runs today's backward on those caches (same gradients, bit for bit).

"wave fwd+bwd" also runs the backward as a wavefront (the upper layer's dx
for a chunk is the lower layer's dy there, top layer's chunks from the
last). It does NOT give today's bits: the kernels sum the weight and bias
gradients over the steps of one call (the bias gradient step by step from
the last, dW as one product over all the rows), so sums by chunks round
differently; and GRU's dh0 adds its direct path z ⊙ dh after the product,
where the loop adds it inside the step, so even dx differs there. It is
timed to show what kernels that carry those sums from call to call would
buy; its largest relative difference from today's gradients is printed.

Bidirectional stacks (bench/layers.py's) have no wavefront: layer l + 1 at
any step needs layer l's reverse direction, which starts at the last step;
their two directions already run side by side (recurrent.py).

Figures: median and fastest of --rounds rounds, the modes in turns in one
process, after a warm-up; "×seq" is the sequential median over the mode's.
The machine's load (os.getloadavg) is printed before and after.

"model ×seq fwd" is what the thread plan's cost model (csrc/plan.h, constants
from ops.thread_plan_costs) predicts for the wavefront's forward, with
t(n, s) the time of a step on the n workers planned for a loop of s steps
offered m threads (W / r alone; W / (n·r) + S(n) + R(m) / s for n ≥ 2):

    sequential = L · T · t(plan(T, N), T)
    wavefront  = (T + (L − 1)·K) · t(plan(K, N / L), K) + (⌈T / K⌉ + L − 1) · C
    C          = CHUNK_CALL_NS + G·H·H · PACK_NS    (a chunk call: the Python
                 call and its checks, then packing W_hh, measured here)

(L − 1)·K steps fill the pipeline; each chunk is a call. The wavefront
pays where a layer's planned workers leave threads idle (plan(T, N) ≤ N / L)
or the steps' synchronisation is a large part of a step.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

import seqcore
from seqcore import ops
from seqcore.nn import GRU, LSTM
from seqcore.nn.recurrent import stack_backward, stack_forward
from seqcore.timing import format_table

# name: (cell, T, B, D, H, layers)
CONFIGS = {
    "shakespeare": ("lstm", 100, 32, 64, 256, 2),   # the Shakespeare model's recurrent layers
    "lstm64": ("lstm", 200, 8, 64, 64, 2),
    "gru128": ("gru", 100, 32, 128, 128, 2),
}


# A chunk call's own cost (measured on the 2-core machine, 1 thread: a call
# of T = 1..32 steps less T steps; LSTM H = 64 and 256, GRU H = 128)
CHUNK_CALL_NS = 25e3
PACK_NS = 1.2  # per element of W_hh packed


def model_ratio(cell: str, T: int, B: int, H: int, L: int, N: int, K: int, train: bool) -> float:
    """The cost model's sequential time over the wavefront's (see the module doc)."""
    c = ops.thread_plan_costs()
    G = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    alone = B * G * H * (H + c["epilogue"]) / c["rate"]

    def step(n: int, steps: int, offered: int) -> float:
        if n == 1:
            return alone
        return alone / n + c["sync_base"] + c["sync_per_thread"] * n + \
            (c["region_base"] + c["region_per_thread"] * offered) / steps

    m = max(1, N // L)
    sequential = L * T * step(ops.plan_threads(cell, T, B, H, train, N), T, N)
    wave = (T + (L - 1) * K) * step(ops.plan_threads(cell, K, B, H, train, m), K, m) + \
        (-(-T // K) + L - 1) * (CHUNK_CALL_NS + G * H * H * PACK_NS)
    return sequential / wave


def _layer_params(cell: str, params, layer: int):
    W_ih, W_hh = params[f"weight_ih_l{layer}"], params[f"weight_hh_l{layer}"]
    b_ih, b_hh = params[f"bias_ih_l{layer}"], params[f"bias_hh_l{layer}"]
    return (W_ih, W_hh, b_ih, b_hh) if cell == "gru" else (W_ih, W_hh, b_ih + b_hh)


def _chunk_forward(cell: str, weights, inp, init, train: bool, threads: int):
    return getattr(ops, f"{cell}_forward")(inp, *init, *weights, train=train, num_threads=threads)


def _joined_cache(cell: str, chunks: List[ops.Cache], x: np.ndarray, num_threads: int) -> ops.Cache:
    """The cache of one whole-sequence call from its chunks' caches (no
    lengths, forward direction: block s of a workspace is time step s)."""
    first = chunks[0].data
    data = dict(first, x=x, num_threads=num_threads)
    for key in ("ws_h", "ws_c"):  # T + 1 blocks: the first chunk's h0, then each chunk's steps
        if first[key] is not None:
            data[key] = np.concatenate([first[key]] + [c.data[key][1:] for c in chunks[1:]])
    for key in ("ws_gates", "ws_hn"):  # T blocks
        if first[key] is not None:
            data[key] = np.concatenate([c.data[key] for c in chunks])
    return ops.Cache(cell, "native", x, chunks[0].H, data, chunks[0].precision)


class _Progress:
    """How many chunks each layer has written; a failed layer wakes the others."""

    def __init__(self, layers: int) -> None:
        self.done = [0] * layers
        self.failed: Optional[BaseException] = None
        self.cv = threading.Condition()

    def wait(self, layer: int, chunks: int) -> None:
        with self.cv:
            self.cv.wait_for(lambda: self.done[layer] >= chunks or self.failed is not None)
            if self.failed is not None:
                raise RuntimeError("another layer of the wavefront failed") from self.failed

    def advance(self, layer: int) -> None:
        with self.cv:
            self.done[layer] += 1
            self.cv.notify_all()

    def fail(self, e: BaseException) -> None:
        with self.cv:
            self.failed = e
            self.cv.notify_all()


def _run_layers(layers: int, run_layer: Callable[[int, _Progress], None], order: Sequence[int]) -> None:
    """run_layer(l, progress) for each layer, each on its own thread (the
    first of ``order`` on the calling thread)."""
    progress = _Progress(layers)

    def guarded(l: int) -> None:
        try:
            run_layer(l, progress)
        except BaseException as e:  # noqa: BLE001  (re-raised by the caller below)
            progress.fail(e)

    threads = [threading.Thread(target=guarded, args=(l,)) for l in order[1:]]
    for t in threads:
        t.start()
    guarded(order[0])
    for t in threads:
        t.join()
    if progress.failed is not None:
        raise progress.failed


def wavefront_forward(cell: str, params, x: np.ndarray, *, num_layers: int, chunk: int, train: bool,
                      threads: int):
    """stack_forward (one direction, no state given, no dropout, no lengths)
    as a wavefront: returns (y, final states, [per layer: chunk caches], [per
    layer: the whole-sequence cache] (train) , layer inputs)."""
    T, B = x.shape[:2]
    H = params["weight_hh_l0"].shape[1]
    per_layer = [threads // num_layers + (1 if l < threads % num_layers else 0) for l in range(num_layers)]
    per_layer = [max(1, n) for n in per_layer]
    bounds = [(t0, min(T, t0 + chunk)) for t0 in range(0, T, chunk)]
    ys = [np.empty((T, B, H), x.dtype) for _ in range(num_layers)]
    finals: List[Tuple] = [()] * num_layers
    caches: List[List[ops.Cache]] = [[] for _ in range(num_layers)]

    def run_layer(l: int, progress: _Progress) -> None:
        weights = _layer_params(cell, params, l)
        init = [None, None] if cell == "lstm" else [None]
        inp = x if l == 0 else ys[l - 1]
        for c, (t0, t1) in enumerate(bounds):
            if l > 0:
                progress.wait(l - 1, c + 1)
            out = _chunk_forward(cell, weights, inp[t0:t1], init, train, per_layer[l])
            ys[l][t0:t1] = out[0]
            init = list(out[1:3]) if cell == "lstm" else [out[1]]
            if train:
                caches[l].append(out[-1])
            progress.advance(l)
        finals[l] = tuple(init)

    _run_layers(num_layers, run_layer, list(range(num_layers)))
    # (backward on the joined caches runs as today's, on all the threads)
    joined = [_joined_cache(cell, caches[l], x if l == 0 else ys[l - 1], threads) for l in range(num_layers)] \
        if train else None
    return ys[-1], finals, caches, joined


def wavefront_backward(cell: str, caches: List[List[ops.Cache]], dy: np.ndarray, *, chunk: int, threads: int):
    """The backward as a wavefront over the chunk caches of wavefront_forward:
    returns (dx, {name: gradient}). NOT bitwise today's (see the module doc)."""
    L = len(caches)
    T = dy.shape[0]
    bounds = [(t0, min(T, t0 + chunk)) for t0 in range(0, T, chunk)]
    n = len(bounds)
    per_layer = [max(1, threads // L + (1 if l < threads % L else 0)) for l in range(L)]
    D = caches[0][0].data["x"].shape[2]
    dxs = [np.empty((T, dy.shape[1], D if l == 0 else caches[l - 1][0].H), dy.dtype) for l in range(L)]
    grads: List[Dict[str, np.ndarray]] = [{} for _ in range(L)]

    def run_layer(l: int, progress: _Progress) -> None:
        above = None if l == L - 1 else dxs[l + 1]
        dstate = [None, None] if cell == "lstm" else [None]
        sums: List[Optional[np.ndarray]] = []
        for k, c in enumerate(reversed(range(n))):
            t0, t1 = bounds[c]
            if above is not None:
                progress.wait(l + 1, k + 1)
            d = dy[t0:t1] if above is None else above[t0:t1]
            g = getattr(ops, f"{cell}_backward")(d, *dstate, caches[l][c])
            dxs[l][t0:t1] = g[0]
            dstate = list(g[1:1 + len(dstate)])
            parts = g[1 + len(dstate):]
            sums = list(parts) if not sums else [s + p for s, p in zip(sums, parts)]
            progress.advance(l)
        names = ["weight_ih", "weight_hh", "bias_ih", "bias_hh"] if cell == "gru" else \
            ["weight_ih", "weight_hh", "bias"]
        grads[l] = {f"{name}_l{l}": s for name, s in zip(names, sums)}

    _run_layers(L, run_layer, list(reversed(range(L))))
    merged: Dict[str, np.ndarray] = {}
    for g in grads:
        merged.update(g)
    return dxs[0], merged


def _check_bits(cell: str, layer, x: np.ndarray, chunk: int, threads: int) -> Tuple[bool, float]:
    """Whether the wavefront's forward (both modes) and the training step on
    its joined caches give today's bits; and the wave backward's largest
    relative difference in dx and the weight gradients."""
    params, L = layer._params, layer.num_layers
    ok, worst = True, 0.0
    for train in (False, True):
        y0, f0, saved = stack_forward(cell, params, x, [None] * (2 if cell == "lstm" else 1), num_layers=L,
                                      directions=1, train=train, threads=threads)
        y1, f1, chunk_caches, joined = wavefront_forward(cell, params, x, num_layers=L, chunk=chunk,
                                                         train=train, threads=threads)
        ok &= np.array_equal(y0, y1) and all(np.array_equal(f0[k][l], f1[l][k])
                                             for k in range(len(f0)) for l in range(L))
        if train:
            dy = np.random.default_rng(1).standard_normal(y0.shape).astype(x.dtype)
            g0: Dict[str, np.ndarray] = {}
            dx0, _ = stack_backward(saved, dy, [None] * len(f0), g0)
            saved1 = dict(saved, caches=[[c] for c in joined])
            g1: Dict[str, np.ndarray] = {}
            dx1, _ = stack_backward(saved1, dy, [None] * len(f0), g1)
            ok &= np.array_equal(dx0, dx1) and all(np.array_equal(g0[k], g1[k]) for k in g0)
            dx2, g2 = wavefront_backward(cell, chunk_caches, dy, chunk=chunk, threads=threads)
            g2["dx"], g0["dx"] = dx2, dx0  # (GRU's dx too: dh0 adds its direct path in another order)
            for k, v in g2.items():
                ref = g0[k] if k in g0 else g0[k.replace("bias_", "bias_ih_")]
                worst = max(worst, float(np.abs(v - ref).max() / max(np.abs(ref).max(), 1e-30)))
    return ok, worst


def measure(name: str, cell: str, T: int, B: int, D: int, H: int, L: int, threads: int,
            chunks: Sequence[int], rounds: int, model: Dict[Tuple[bool, int], float]) -> List[dict]:
    """Records of each mode, training and inference; model[(train, K)]: model_ratio's."""
    layer = (LSTM if cell == "lstm" else GRU)(D, H, num_layers=L, seed=0)
    params = layer._params
    x = np.random.default_rng(0).standard_normal((T, B, D)).astype(np.float32)
    dy = np.ones((T, B, H), np.float32)
    states = [None] * (2 if cell == "lstm" else 1)
    records = []
    for train in (False, True):
        modes: Dict[str, Callable[[], None]] = {}

        def sequential() -> None:
            _, _, saved = stack_forward(cell, params, x, states, num_layers=L, directions=1, train=train,
                                        threads=threads)
            if train:
                stack_backward(saved, dy, states, {})

        modes["sequential"] = sequential
        for K in chunks:
            def wave(K=K) -> None:
                _, _, _, joined = wavefront_forward(cell, params, x, num_layers=L, chunk=K, train=train,
                                                    threads=threads)
                if train:
                    saved = dict(cell=cell, caches=[[c] for c in joined], masks=[None] * L, T=T, B=B,
                                 num_layers=L, directions=1, merge="concat", biases=True)
                    stack_backward(saved, dy, states, {})

            modes[f"wave K={K}"] = wave
            if train:
                def wave_both(K=K) -> None:
                    _, _, caches, _ = wavefront_forward(cell, params, x, num_layers=L, chunk=K, train=True,
                                                        threads=threads)
                    wavefront_backward(cell, caches, dy, chunk=K, threads=threads)

                modes[f"wave fwd+bwd K={K}"] = wave_both
        times: Dict[str, List[float]] = {k: [] for k in modes}
        for fn in modes.values():
            fn()
        for _ in range(rounds):
            for k, fn in modes.items():
                start = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - start)
        base = float(np.median(times["sequential"]))
        for k, v in times.items():
            K = int(k.split("=")[1]) if "=" in k else None
            bits, worst = _check_bits(cell, layer, x, K, threads) if K and k.startswith("wave K") else (None, None)
            records.append(dict(config=name, cell=cell, T=T, B=B, D=D, H=H, layers=L, threads=threads,
                                step="train" if train else "infer", mode=k, chunk=K,
                                median_ms=float(np.median(v)) * 1e3, min_ms=float(np.min(v)) * 1e3,
                                speedup=base / float(np.median(v)), bitwise=bits, wave_bwd_max_rel_diff=worst,
                                model_speedup=model[train, K] if K and k.startswith("wave K") else None))
    return records


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--chunks", type=int, nargs="+", default=[5, 10, 25])
    p.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=list(CONFIGS))
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    if args.threads < 2 or any(k < 1 for k in args.chunks) or args.rounds < 1:
        p.error("--threads: at least 2; --chunks, --rounds: at least 1")
    print(f"seqcore {seqcore.__version__}, isa {seqcore.info()['isa']}, {os.cpu_count()} cpus, "
          f"{args.threads} threads; load before {os.getloadavg()[0]:.2f}")
    # The model first: the plan adds to the steps' synchronisation what the
    # loops measure beyond the model (plan.h), which a busy machine makes large.
    models = {name: {(train, K): model_ratio(cell, T, B, H, L, args.threads, K, train)
                     for train in (False, True) for K in args.chunks}
              for name, (cell, T, B, D, H, L) in ((n, CONFIGS[n]) for n in args.configs)}
    records = []
    for name in args.configs:
        cell, T, B, D, H, L = CONFIGS[name]
        records += measure(name, cell, T, B, D, H, L, args.threads, args.chunks, args.rounds, models[name])
    rows = [[r["config"], r["step"], r["mode"], r["median_ms"], r["min_ms"], f"{r['speedup']:.2f}",
             "" if r["model_speedup"] is None else f"{r['model_speedup']:.2f}",
             "" if r["bitwise"] is None else ("yes" if r["bitwise"] else "NO"),
             "" if r["wave_bwd_max_rel_diff"] is None else f"{r['wave_bwd_max_rel_diff']:.1e}"]
            for r in records]
    print(format_table(["config", "step", "mode", "median ms", "min ms", "×seq", "model ×seq fwd", "bitwise",
                        "wave bwd rel diff"], rows))
    print(f"load after {os.getloadavg()[0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(threads=args.threads, load=os.getloadavg()[0], records=records), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
