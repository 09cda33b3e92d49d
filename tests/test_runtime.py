"""seqcore.info(), threads and the choice of instruction set."""

import os
import subprocess
import sys

import pytest

from children import CHILD_CWD, child_env

import seqcore
from seqcore import ops

ALL_ISAS = ["scalar", "avx2", "avx2_vnni", "avx512", "avx512_vnni", "avx512_bf16", "amx_bf16"]


def run_python(code, env=None, **extra):
    """Runs `code` in a fresh interpreter with extra environment variables."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=child_env(env, **extra), timeout=120, cwd=CHILD_CWD)


def test_info_has_the_documented_keys():
    info = seqcore.info()
    assert set(info) == {"version", "isa", "isas", "openmp", "threads", "backend"}
    assert info["version"] == seqcore.__version__
    assert info["isa"] in info["isas"]
    assert info["isas"][0] == "scalar" and set(info["isas"]) <= set(ALL_ISAS)
    assert info["openmp"] is True
    assert info["backend"] in ("native", "reference")


def test_default_isa_is_the_best_the_cpu_has():
    result = run_python("import seqcore; print(seqcore.info()['isa'], seqcore.info()['isas'][-1])",
                        SEQCORE_ISA="")
    isa, best = result.stdout.split()
    assert isa == best


@pytest.mark.parametrize("isa", ALL_ISAS)
def test_environment_forces_an_isa(isa):
    if isa not in seqcore.info()["isas"]:
        pytest.skip(f"this CPU has no {isa}")
    result = run_python("import seqcore; print(seqcore.info()['isa'])", SEQCORE_ISA=isa)
    assert result.stdout.strip() == isa, result.stderr


def test_unknown_isa_in_environment_fails_the_import_clearly():
    result = run_python("import seqcore", SEQCORE_ISA="avx1024")
    assert result.returncode != 0
    assert "SEQCORE_ISA: unknown instruction set 'avx1024'" in result.stderr


def test_isa_the_cpu_lacks_fails_clearly():
    missing = [isa for isa in ALL_ISAS if isa not in seqcore.info()["isas"]]
    if not missing:
        pytest.skip("this CPU has every ISA")
    result = run_python("import seqcore", SEQCORE_ISA=missing[0])
    assert "does not support" in result.stderr


def test_set_isa_switches_and_validates():
    before = ops.info()["isa"]
    try:
        ops.set_isa("scalar")
        assert ops.info()["isa"] == "scalar"
        with pytest.raises(ValueError, match="^name: expected one of"):
            ops.set_isa("sse9")
    finally:
        ops.set_isa(before)


def test_threads_default_to_omp_num_threads():
    result = run_python("import seqcore; print(seqcore.get_num_threads())", OMP_NUM_THREADS="3")
    assert result.stdout.strip() == "3"


def test_threads_default_to_the_cores_without_omp_num_threads():
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    result = run_python("import seqcore; print(seqcore.get_num_threads())", env=env)
    assert int(result.stdout) == len(os.sched_getaffinity(0))


def test_set_num_threads_round_trips():
    before = seqcore.get_num_threads()
    try:
        seqcore.set_num_threads(1)
        assert seqcore.get_num_threads() == 1
        assert seqcore.info()["threads"] == 1
    finally:
        seqcore.set_num_threads(before)


@pytest.mark.parametrize("bad,error", [(0, ValueError), (-2, ValueError), (1.5, TypeError), ("2", TypeError), (True, TypeError)])
def test_set_num_threads_rejects_bad_counts(bad, error):
    with pytest.raises(error, match="^n: "):
        seqcore.set_num_threads(bad)
