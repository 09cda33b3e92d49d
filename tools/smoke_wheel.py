"""Smoke test of an installed seqcore (a wheel in a fresh environment).

Run it with that environment's Python, from anywhere (a script puts its own
folder, tools/, first on sys.path, never the source tree):

    VENV/bin/python tools/smoke_wheel.py [--torch-first]

It checks that seqcore imports from the environment (not the source tree),
that every module of the package imports on this Python, that the version of
the package, of the extension and of the installed metadata agree, and then,
in one child process per instruction set this CPU has (SEQCORE_ISA set, as a
user would), runs every cell's forward and backward on 2 OpenMP threads
(float32 and float64, a plain and a padded, reversed batch) against the NumPy
reference that ships in the package. With --torch-first one more child
imports torch and runs a threaded torch op first, so that torch's OpenMP
runtime is loaded before seqcore's vendored one, and runs the same checks.
`--child` alone runs the checks of one child in this process (the kernels
seqcore picks for this CPU), e.g. under an emulator of an older CPU.

Prints one line per check; exits non-zero on the first failure.
"""

import argparse
import importlib
import importlib.util
import importlib.metadata
import os
import pkgutil
import subprocess
import sys

CELLS = {"rnn": 1, "lstm": 4, "gru": 3}
# Native vs reference: float32 sums in another order; float64 agrees closely;
# precision "bf16" against the reference's bf16, relative to the largest value
# (a state on a bfloat16 rounding boundary may round the other way: one ulp).
TOLERANCE = {"float32": 2e-4, "float64": 1e-10}
BF16_TOLERANCE = 5e-3


# ---------------------------------------------------------------------------
# in the child: the cells against the reference


def cell_args(cell, T, B, D, H, dtype, rng):
    """Positional inputs of ops.<cell>_forward: x, states, W_ih, W_hh, biases."""
    G = CELLS[cell]
    x = rng.standard_normal((T, B, D))
    states = [rng.standard_normal((B, H)) for _ in range(2 if cell == "lstm" else 1)]
    weights = [rng.standard_normal((G * H, D)), rng.standard_normal((G * H, H))]
    biases = [rng.standard_normal(G * H) for _ in range(2 if cell == "gru" else 1)]
    return [(0.5 * a).astype(dtype) for a in [x, *states, *weights, *biases]]


def run_cell(cell, args, backend, options):
    """Forward then backward of one cell with dL/d(every output) = 1 -> all arrays."""
    import numpy as np
    from seqcore import ops

    out = getattr(ops, f"{cell}_forward")(*args, backend=backend, **options)
    *outputs, cache = out
    assert cache.backend == backend, f"{cell}: asked for {backend}, ran {cache.backend}"
    grads = getattr(ops, f"{cell}_backward")(*(np.ones_like(o) for o in outputs), cache)
    return list(outputs) + list(grads)


def check_cells(num_threads):
    import numpy as np

    rng = np.random.default_rng(0)
    T, B, D, H = 7, 3, 5, 6
    padded = {"lengths": np.array([4, 7, 2]), "reverse": True}
    for cell in CELLS:
        for dtype in ("float32", "float64"):
            args = cell_args(cell, T, B, D, H, dtype, rng)
            for name, options in (("plain", {}), ("padded, reversed", padded)):
                native = run_cell(cell, args, "native", dict(options, num_threads=num_threads))
                reference = run_cell(cell, args, "reference", options)
                err = max(float(np.max(np.abs(a - b))) for a, b in zip(native, reference))
                assert all(a.dtype == dtype for a in native), f"{cell}: dtype changed"
                assert err <= TOLERANCE[dtype], f"{cell} {dtype} {name}: max error {err:.3g}"
            if dtype == "float32":  # bfloat16 products: this CPU's kernel (or the rounding fallback)
                native = run_cell(cell, args, "native", dict(padded, num_threads=num_threads, precision="bf16"))
                reference = run_cell(cell, args, "reference", dict(padded, precision="bf16"))
                err = max(float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))
                          for a, b in zip(native, reference))
                assert err <= BF16_TOLERANCE, f"{cell} bf16: max relative error {err:.3g}"
    print(f"  cells {', '.join(CELLS)}: forward and backward match the reference "
          f"(float32, float64, bf16; plain and padded+reversed; {num_threads} threads)")


def openmp_runtimes():
    """The OpenMP runtimes (GNU libgomp, LLVM/Intel libomp/libiomp) mapped into this process."""
    with open("/proc/self/maps") as f:
        paths = {line.split()[-1] for line in f if "/" in line}
    return sorted(p for p in paths if any(k in os.path.basename(p) for k in ("gomp", "libomp", "iomp")))


def child(torch_first):
    if torch_first:
        import torch

        torch.set_num_threads(2)
        a = torch.randn(256, 256)
        float((a @ a).sum())  # a threaded op: torch's OpenMP runtime is up
    import seqcore
    from seqcore import _core

    want = os.environ.get("SEQCORE_ISA")
    assert want is None or _core.isa() == want, f"SEQCORE_ISA={want} but the kernels are {_core.isa()}"
    print(f"  isa {_core.isa()}: {seqcore.info()}")
    check_cells(2)
    if torch_first:
        runtimes = openmp_runtimes()
        print(f"  OpenMP runtimes loaded: {runtimes}")
        assert len(runtimes) >= 2, "expected torch's and seqcore's OpenMP runtimes side by side"


# ---------------------------------------------------------------------------
# in the parent


# modules of the package that need an optional dependency (an extra), and which
OPTIONAL = {"seqcore.torch": "torch", "seqcore.onnx": "onnx"}


def check_install():
    import seqcore
    from seqcore import _core

    source_tree = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    where = os.path.dirname(os.path.abspath(seqcore.__file__))
    assert not where.startswith(source_tree + os.sep), f"seqcore imported from the source tree: {where}"
    installed = importlib.metadata.version("seqcore")
    assert seqcore.__version__ == _core.__version__ == installed, (
        f"versions disagree: package {seqcore.__version__}, extension {_core.__version__}, "
        f"metadata {installed}")
    modules = [m.name for m in pkgutil.walk_packages(seqcore.__path__, "seqcore.")]
    # the faces to other ecosystems import their library: checked where it is installed
    lacking = [name for name, needs in OPTIONAL.items() if importlib.util.find_spec(needs) is None]
    for name in modules:
        if name not in lacking:
            importlib.import_module(name)
    print(f"seqcore {installed} from {where} on Python {sys.version.split()[0]}; "
          f"{len(modules) - len(lacking)} modules import"
          + (f" ({', '.join(lacking)} not tried: their extra is not installed)" if lacking else "")
          + f"; extension {os.path.basename(_core.__file__)}")
    return list(_core.isas())


def run_child(label, env_extra, args=()):
    env = dict(os.environ, **env_extra)
    print(f"{label}:", flush=True)
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", *args], env=env)
    if done.returncode != 0:
        sys.exit(f"FAILED: {label} (exit {done.returncode})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch-first", action="store_true",
                        help="also run the checks with torch (and its OpenMP runtime) imported first")
    parser.add_argument("--child", action="store_true",
                        help="run the cell checks in this process, on the ISA seqcore picks")
    args = parser.parse_args()
    if args.child:
        child(args.torch_first)
        return
    isas = check_install()
    assert "scalar" in isas, f"the CPU's ISAs {isas} lack scalar"
    for isa in isas:
        run_child(f"SEQCORE_ISA={isa}", {"SEQCORE_ISA": isa})
    if args.torch_first:
        run_child("torch imported first", {}, ["--torch-first"])
    print(f"smoke test passed: ISAs {', '.join(isas)}" + (", torch first" if args.torch_first else ""))


if __name__ == "__main__":
    main()
