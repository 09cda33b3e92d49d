"""Two builds of the extension seqcore._core against each other, in one
process: each cell's training step (forward + backward through _core) at a
few shapes, the calls of the two builds alternated round by round, so that
the machine's drift (±15% over minutes on a shared machine) slows both alike.
For measuring a kernel change, which separate runs cannot resolve:

    core() { python -c 'import seqcore._core as c; print(c.__file__)'; }
    cp "$(core)" /tmp/before.so                   # the build before the change
    # … change csrc/, rebuild …
    python bench/ab_builds.py /tmp/before.so "$(core)" --threads 2

Prints the median milliseconds of each build's forward and backward and the
ratio after / before (below 1: the change made it faster). The two are
loaded under two package names; they share the process's OpenMP runtime.
They must be two files: the loader maps one file once, whatever the name.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import time
from pathlib import Path
from types import ModuleType
from typing import Dict, List, Tuple

import numpy as np

from seqcore.timing import format_table

GATES = {"rnn": 1, "lstm": 4, "gru": 3}
# (T, B, D, H): the Shakespeare example's two LSTM layers, and a wide one
SHAPES = [(100, 32, 64, 256), (100, 32, 256, 256), (50, 16, 512, 1024)]


def load_build(path: str, package: str) -> ModuleType:
    """The extension at ``path`` as ``<package>._core``: a module of its own,
    even where another build is loaded already."""
    if not Path(path).is_file():
        raise SystemExit(f"ab_builds: {path}: no such file")
    name = f"{package}._core"
    loader = importlib.machinery.ExtensionFileLoader(name, path)
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def make_case(cell: str, shape: Tuple[int, int, int, int], rng: np.random.Generator) -> Dict[str, object]:
    """Arguments of _core.cell_forward / cell_backward, weights of std 1/√H."""
    T, B, D, H = shape
    G = GATES[cell]
    f32 = np.float32
    return dict(x=rng.standard_normal((T, B, D), dtype=f32), h0=np.zeros((B, H), f32),
                W_ih=(rng.standard_normal((G * H, D)) / np.sqrt(H)).astype(f32),
                W_hh=(rng.standard_normal((G * H, H)) / np.sqrt(H)).astype(f32),
                b=np.zeros(G * H, f32), dy=rng.standard_normal((T, B, H), dtype=f32))


def step(core: ModuleType, cell: str, a: Dict[str, object], infer: bool = False,
         bf16: bool = False, clock=time.perf_counter) -> Tuple[float, ...]:
    """Seconds of one forward (training) and one backward; with ``infer``,
    of one inference call too; with ``bf16``, in precision "bf16"; timed by
    ``clock``."""
    c0 = a["h0"] if cell == "lstm" else None
    b_hh = a["b"] if cell == "gru" else None
    t_infer: Tuple[float, ...] = ()
    if infer:
        t0 = clock()
        core.cell_forward(cell, a["x"], a["h0"], c0, a["W_ih"], a["W_hh"], a["b"], b_hh, False, bf16=bf16)
        t_infer = (clock() - t0,)
    t0 = clock()
    y, hT, cT, ws_h, ws_gates, ws_c, ws_hn = core.cell_forward(cell, a["x"], a["h0"], c0, a["W_ih"], a["W_hh"],
                                                               a["b"], b_hh, True, bf16=bf16)[:7]
    t1 = clock()
    core.cell_backward(cell, a["x"], a["W_ih"], a["W_hh"], ws_h, ws_gates, ws_c, ws_hn, a["dy"], None, None,
                       bf16=bf16)
    return (t1 - t0, clock() - t1) + t_infer


def outputs(core: ModuleType, cell: str, a: Dict[str, object], bf16: bool = False) -> List[np.ndarray]:
    """What a case's inference, training forward and backward return."""
    c0 = a["h0"] if cell == "lstm" else None
    b_hh = a["b"] if cell == "gru" else None
    forward = [core.cell_forward(cell, a["x"], a["h0"], c0, a["W_ih"], a["W_hh"], a["b"], b_hh, train, bf16=bf16)
               for train in (False, True)]
    y, hT, cT, ws_h, ws_gates, ws_c, ws_hn = forward[1][:7]
    grads = core.cell_backward(cell, a["x"], a["W_ih"], a["W_hh"], ws_h, ws_gates, ws_c, ws_hn, a["dy"], None, None,
                               bf16=bf16)
    return [v for v in list(forward[0][:3]) + [y, hT, cT] + list(grads) if isinstance(v, np.ndarray)]


def main(argv: List[str] = None) -> List[List[object]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("before", help="the extension module built before the change (a .so file)")
    p.add_argument("after", help="the one built after it")
    p.add_argument("--cells", nargs="+", choices=sorted(GATES), default=["lstm", "gru"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=20, help="calls of each build per case (the first 2 left out)")
    p.add_argument("--shapes", nargs="+", metavar="TxBxDxH", default=None,
                   help="shapes to time (default: " + " ".join("x".join(map(str, s)) for s in SHAPES) + ")")
    p.add_argument("--infer", action="store_true", help="time an inference call too")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="cpu: this thread's CPU time (with --threads 1 only; steadier on a shared machine)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="bf16: the calls in precision \"bf16\" (bfloat16 products, float32 sums)")
    p.add_argument("--check-bits", action="store_true",
                   help="first check that the two builds give the same bits (every output of each case)")
    args = p.parse_args(argv)
    if args.threads < 1 or args.rounds < 3:
        p.error("--threads: expected >= 1; --rounds: expected >= 3")
    if args.clock == "cpu" and args.threads != 1:
        p.error("--clock cpu: expected --threads 1 (other threads' time is not counted)")
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    if Path(args.before).resolve() == Path(args.after).resolve():
        p.error("before, after: expected two files (one file is loaded once, so it would be compared with itself)")
    builds = {"before": load_build(args.before, "ab_before"), "after": load_build(args.after, "ab_after")}
    for core in builds.values():
        core.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    try:
        shapes = SHAPES if args.shapes is None else [tuple(int(v) for v in s.split("x")) for s in args.shapes]
    except ValueError:
        p.error("--shapes: expected shapes like 100x32x64x256")
    if any(len(s) != 4 or min(s) < 1 for s in shapes):
        p.error("--shapes: expected four sizes of at least 1, TxBxDxH")
    cases = [(cell, shape, make_case(cell, shape, rng)) for cell in args.cells for shape in shapes]
    if args.check_bits:
        bf16 = args.precision == "bf16"
        differ = [f"{cell} {'x'.join(map(str, shape))}" for cell, shape, a in cases
                  if not all(np.array_equal(u, v) for u, v in zip(outputs(builds["before"], cell, a, bf16),
                                                                  outputs(builds["after"], cell, a, bf16)))]
        print("bits: " + (f"differ in {', '.join(differ)}" if differ else "the same in every case"))
    times: Dict[Tuple[str, str, Tuple[int, ...]], List[Tuple[float, float]]] = {}
    for r in range(args.rounds):
        order = ["before", "after"] if r % 2 == 0 else ["after", "before"]
        for which in order:
            for cell, shape, a in cases:
                times.setdefault((which, cell, shape), []).append(step(builds[which], cell, a, args.infer,
                                                                           args.precision == "bf16", clock))
    rows = []
    for cell, shape, _ in cases:
        med = {w: np.median(np.array(times[(w, cell, shape)][2:]), axis=0) * 1e3 for w in builds}
        for k, part in enumerate(("forward", "backward", "infer")[:len(med["before"])]):
            rows.append([cell, "×".join(map(str, shape)), part, f"{med['before'][k]:.2f}", f"{med['after'][k]:.2f}",
                         f"{med['after'][k] / med['before'][k]:.3f}"])
    print(f"{args.precision}, {args.threads} threads, {args.rounds} rounds, the builds alternated; "
          f"median ms of a call ({args.clock} clock)")
    print(format_table(["cell", "T×B×D×H", "step", "before ms", "after ms", "after / before"], rows))
    return rows


if __name__ == "__main__":
    main()
