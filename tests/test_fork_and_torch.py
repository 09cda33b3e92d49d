"""seqcore in processes that fork, and beside torch imported first or after.

GNU OpenMP cannot run a parallel region in a child forked after its parent
ran one (the child would wait forever for the parent's pool threads): in a
forked child seqcore's kernels run on one thread, with the same results.
Worker processes that want several threads each use the "spawn" start method.

Every scenario runs in a child interpreter with a timeout, so that a hang
fails the test instead of hanging the run. The oracle is the result of the
same kernels computed in this process.
"""

import importlib.util
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from children import CHILD_CWD, child_env

from seqcore import ops

TIMEOUT = 120
HAS_TORCH = importlib.util.find_spec("torch") is not None

# The problem every child solves: an LSTM forward on 2 threads and a matrix
# product; it prints the sums of the results, bitwise (float.hex).
PROBLEM = """
import numpy as np
def problem():
    from seqcore import ops
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 8, 16)).astype(np.float32)
    W_ih = (0.1 * rng.standard_normal((256, 16))).astype(np.float32)
    W_hh = (0.1 * rng.standard_normal((256, 64))).astype(np.float32)
    y = ops.lstm_forward(x, None, None, W_ih, W_hh, np.zeros(256, np.float32), num_threads=2)[0]
    p = ops.matmul(W_hh, W_hh, trans_a=True)
    return float(y.astype(np.float64).sum()).hex() + " " + float(p.astype(np.float64).sum()).hex()
"""


def expected():
    scope = {}
    exec(PROBLEM, scope)
    return scope["problem"]()


def run_child(tmp_path, body, prelude=""):
    """Runs prelude + PROBLEM + body as a script in a fresh interpreter (2
    kernel threads); fails on a timeout (a hang) or a crash. Returns its
    stdout lines."""
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(prelude) + PROBLEM + textwrap.dedent(body))
    try:
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=TIMEOUT,
                              env=child_env(OMP_NUM_THREADS="2"), cwd=CHILD_CWD)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the child hangs (no exit in {TIMEOUT} s); its output: {e.stdout!r} {e.stderr!r}")
    assert done.returncode == 0, done.stderr
    return done.stdout.split("\n")


FORK_AND_WAIT = """
import os
def in_fork(job):
    # runs job() in a forked child (killed after 60 s); returns its stdout line
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        code = 1
        try:
            os.write(w, (job() + "\\n").encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    import signal, time
    for _ in range(600):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise SystemExit("the forked child hangs")
    assert os.waitstatus_to_exitcode(status) == 0, status
    return os.read(r, 1000).decode().strip()
"""


def test_a_child_forked_after_the_kernels_ran_on_two_threads_gets_the_same_results(tmp_path):
    out = run_child(tmp_path, """
        print(problem())                     # the parent's OpenMP pool now exists
        print(in_fork(problem))              # the child of a parent that ran kernels
        print(in_fork(lambda: in_fork(problem)))  # and its own child
    """, prelude=FORK_AND_WAIT)
    assert out[:3] == [expected()] * 3


def test_a_forked_child_runs_on_one_thread_and_says_so_when_asked_for_more(tmp_path):
    out = run_child(tmp_path, """
        import warnings, seqcore
        problem()
        def child():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                seqcore.set_num_threads(2)
            return f"{seqcore.get_num_threads()} {caught[0].category.__name__} {'spawn' in str(caught[0].message)}"
        print(in_fork(child))
        print(seqcore.get_num_threads())     # the parent keeps its threads
    """, prelude=FORK_AND_WAIT)
    assert out[:2] == ["1 RuntimeWarning True", "2"]


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_multiprocessing_pool_of_workers_gets_the_same_results(method, tmp_path):
    out = run_child(tmp_path, f"""
        import multiprocessing, seqcore
        def work(_):
            return problem(), seqcore.get_num_threads()
        if __name__ == "__main__":
            print(problem())
            with multiprocessing.get_context("{method}").Pool(2) as pool:
                for result, threads in pool.map(work, range(4)):
                    print(result, threads)
    """)
    results = out[1:5]
    # a forked worker runs on one thread; a spawned one has its own threads
    threads = "1" if method == "fork" else "2"
    assert out[0] == expected() and results == [f"{expected()} {threads}"] * 4


TORCH_WORK = """
import torch
def torch_work():
    # a product big enough for torch's own threads, checked against numpy
    torch.set_num_threads(2)
    a = torch.arange(300 * 300, dtype=torch.float64).reshape(300, 300) / 9e4
    got = (a @ a).numpy()
    want = a.numpy() @ a.numpy()
    assert np.allclose(got, want, rtol=1e-10), "torch's product is wrong"
    return "torch ok"
"""


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
@pytest.mark.parametrize("order", ["torch first", "seqcore first"])
def test_kernels_and_torch_in_one_process_in_either_import_order(order, tmp_path):
    imports = "import torch\nimport seqcore\n" if order == "torch first" else "import seqcore\nimport torch\n"
    out = run_child(tmp_path, """
        print(torch_work())
        print(problem())
        print(torch_work())
        print(problem())
    """, prelude=imports + TORCH_WORK)
    assert out[:4] == ["torch ok", expected(), "torch ok", expected()]


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
def test_a_child_forked_after_torch_and_the_kernels_ran_gets_the_same_results(tmp_path):
    out = run_child(tmp_path, """
        torch_work()
        print(problem())
        print(in_fork(problem))
    """, prelude="import torch\n" + TORCH_WORK + FORK_AND_WAIT)
    assert out[:2] == [expected()] * 2


def test_this_process_is_not_marked_as_forked():
    # the at-fork handler runs in children only
    assert not ops._FORKED
