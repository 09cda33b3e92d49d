"""Data-parallel training with MPI (seqcore.distributed): R ranks with B/R
rows each take the steps one process takes with B rows.

The MPI tests start ``mpiexec`` on tests/mpi_worker.py over loopback and
compare with the same run in this process (the oracle: single-process
training on the global batch). They are skipped when the "mpi" extra
(mpi4py and an mpiexec) is not installed; the sharding helpers are tested
without it.
"""

import ast
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from children import CHILD_CWD, child_env
import mpi_worker
from seqcore.distributed import batch_rows, row_range
from seqcore.nn import LanguageModel
from seqcore.train import Trainer

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mpi_worker.py")
TOLERANCE = {"float32": 1e-5, "float64": 1e-12}


def _mpiexec():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None
    return shutil.which("mpiexec", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))


MPIEXEC = _mpiexec()
needs_mpi = pytest.mark.skipif(MPIEXEC is None, reason="the mpi extra (mpi4py, mpiexec) is not installed")


def launch(ranks: int, argv, timeout: float = 120, **env) -> subprocess.CompletedProcess:
    """``mpiexec -n ranks python argv...``, one kernel thread per rank."""
    env = child_env(**{"OMP_NUM_THREADS": "1", **env})
    return subprocess.run([MPIEXEC, "-n", str(ranks), sys.executable] + list(argv), env=env, cwd=CHILD_CWD,
                          capture_output=True, text=True, timeout=timeout)


def train_mpi(ranks: int, weights: str, *options: str, **kwargs):
    done = launch(ranks, [WORKER, "--distributed", "--weights", weights, *options], **kwargs)
    assert done.returncode == 0, done.stdout + done.stderr
    return np.load(weights)


def train_alone(weights: str, *options: str):
    mpi_worker.run(mpi_worker.parse(["--weights", weights, *options]))
    return np.load(weights)


def relative_difference(a, b) -> float:
    """The largest of max|a - b| / max|b| over the parameters."""
    return max(float(np.abs(a[k] - b[k]).max() / np.abs(b[k]).max()) for k in b.files if not k.startswith("_"))


# ---------------------------------------------------------------------------
# sharding, without MPI


def test_row_range_covers_the_rows_in_rank_order():
    for rows in range(0, 9):
        for size in range(1, 5):
            ranges = [row_range(rows, r, size) for r in range(size)]
            assert ranges[0][0] == 0 and ranges[-1][1] == rows
            assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
            assert max(hi - lo for lo, hi in ranges) - min(hi - lo for lo, hi in ranges) <= 1


def test_batch_rows_cuts_and_trims_to_the_longest_row():
    inputs = np.arange(24).reshape(6, 4)
    lengths = np.array([6, 2, 3, 1])
    mask = np.arange(6)[:, None] < lengths
    x, y, n, m = batch_rows((inputs, inputs + 1, lengths, mask), 1, 3)
    np.testing.assert_array_equal(x, inputs[:3, 1:3])
    np.testing.assert_array_equal(y, inputs[:3, 1:3] + 1)
    np.testing.assert_array_equal(n, [2, 3])
    np.testing.assert_array_equal(m, mask[:3, 1:3])
    assert batch_rows((inputs, inputs, lengths, mask), 2, 2) is None
    # a classifier's targets are (B,)
    assert batch_rows((inputs, np.arange(4), None, None), 0, 2)[1].tolist() == [0, 1]


def test_trainer_refuses_a_distributed_that_is_not_a_communicator():
    model = LanguageModel(5, 4, 4, 1)
    with pytest.raises(TypeError, match="distributed"):
        Trainer(model, np.arange(100) % 5, distributed="mpi")


def test_communicator_without_mpi4py_says_how_to_install_it(monkeypatch):
    from seqcore.distributed import Communicator
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(ImportError, match=r'pip install "seqcore\[mpi\]"'):
        Communicator()


# ---------------------------------------------------------------------------
# R ranks equal one process on the global batch


@needs_mpi
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_two_ranks_of_half_the_batch_equal_one_process(tmp_path, dtype):
    # stream, 6 streams = 3 per rank, Adam with clipping after the reduction, validation
    options = ["--dtype", dtype, "--optimizer", "adam", "--clip-norm", "0.5", "--batch", "6", "--steps", "6",
               "--eval-every", "3"]
    alone = train_alone(str(tmp_path / "alone.npz"), *options)
    ranks = train_mpi(2, str(tmp_path / "two.npz"), *options)
    assert relative_difference(ranks, alone) < TOLERANCE[dtype]
    assert ranks["_val_loss"] == pytest.approx(float(alone["_val_loss"]), rel=TOLERANCE[dtype])
    assert ranks["_tokens"] == alone["_tokens"] and ranks["_size"] == 2


@needs_mpi
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_three_ranks_with_unequal_rows_equal_one_process(tmp_path, dtype):
    # 5 streams: 1, 2 and 2 rows; SGD with momentum, GRU
    options = ["--dtype", dtype, "--cell", "gru", "--batch", "5", "--steps", "6"]
    alone = train_alone(str(tmp_path / "alone.npz"), *options)
    ranks = train_mpi(3, str(tmp_path / "three.npz"), *options)
    assert relative_difference(ranks, alone) < TOLERANCE[dtype]


@needs_mpi
def test_padded_sequences_with_unequal_token_counts_equal_one_process(tmp_path):
    # sequences of 1 to 11 tokens: the ranks count different tokens, and the
    # last batch of 17 sequences in 5s has 2 rows for 3 ranks (one rank idle)
    options = ["--mode", "sequences", "--batch", "5", "--steps", "8", "--optimizer", "adam", "--eval-every", "4"]
    alone = train_alone(str(tmp_path / "alone.npz"), *options)
    ranks = train_mpi(3, str(tmp_path / "three.npz"), *options)
    assert relative_difference(ranks, alone) < TOLERANCE["float64"]
    assert ranks["_val_loss"] == pytest.approx(float(alone["_val_loss"]), rel=1e-12)
    assert ranks["_train_loss"] == pytest.approx(float(alone["_train_loss"]), rel=1e-12)


@needs_mpi
def test_classifier_on_two_ranks_equals_one_process(tmp_path):
    options = ["--mode", "labeled", "--batch", "5", "--steps", "5", "--eval-every", "5"]
    alone = train_alone(str(tmp_path / "alone.npz"), *options)
    ranks = train_mpi(2, str(tmp_path / "two.npz"), *options)
    assert relative_difference(ranks, alone) < TOLERANCE["float64"]
    assert ranks["_val_loss"] == pytest.approx(float(alone["_val_loss"]), rel=1e-12)


@needs_mpi
def test_resume_with_another_number_of_ranks(tmp_path):
    # 4 steps on 2 ranks, a checkpoint (the carried state of all 6 streams),
    # then 4 more on 3 ranks: the weights of 8 steps in one process
    run = str(tmp_path / "run")
    common = ["--optimizer", "adam", "--batch", "6", "--out-dir", run]
    train_mpi(2, str(tmp_path / "first.npz"), *common, "--steps", "4")
    assert os.path.isdir(os.path.join(run, "checkpoint"))
    resumed = train_mpi(3, str(tmp_path / "resumed.npz"), *common, "--steps", "8", "--resume")
    alone = train_alone(str(tmp_path / "alone.npz"), "--optimizer", "adam", "--batch", "6", "--steps", "8")
    assert relative_difference(resumed, alone) < TOLERANCE["float64"]


# ---------------------------------------------------------------------------
# a rank that fails


@needs_mpi
def test_a_hung_rank_makes_the_others_abort_with_a_clear_error(tmp_path):
    done = launch(2, [WORKER, "--distributed", "--weights", str(tmp_path / "w.npz"), "--steps", "8",
                      "--timeout", "3", "--hang-rank", "1", "--fault-step", "3"], timeout=90)
    assert done.returncode != 0
    assert "rank 0 of 2: no answer from the other ranks in 3 s during the gradient allreduce" in done.stderr
    assert not (tmp_path / "w.npz").exists()


@needs_mpi
def test_a_killed_rank_ends_the_job(tmp_path):
    done = launch(3, [WORKER, "--distributed", "--weights", str(tmp_path / "w.npz"), "--steps", "8",
                      "--timeout", "30", "--die-rank", "2", "--fault-step", "3"], timeout=90)
    assert done.returncode != 0
    assert not (tmp_path / "w.npz").exists()


# ---------------------------------------------------------------------------
# threads and the command line


@needs_mpi
def test_threads_per_rank_default_to_the_cores_of_the_node_over_its_ranks():
    # rank 0 prints what every rank found: (local ranks, threads, cores)
    code = ("import os; from seqcore import ops; from seqcore.distributed import Communicator; "
            "c = Communicator(); found = c.allgather((c.local_size, ops.get_num_threads(), os.cpu_count()), 'x'); "
            "c.rank == 0 and print(repr(found))")
    env = child_env()
    env.pop("OMP_NUM_THREADS", None)
    done = subprocess.run([MPIEXEC, "-n", "2", sys.executable, "-c", code], env=env, cwd=CHILD_CWD,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    found = ast.literal_eval(done.stdout)
    assert len(found) == 2
    for local_size, threads, cores in found:
        assert local_size == 2 and threads == max(1, cores // 2)


@needs_mpi
def test_cli_train_distributed_and_resume_on_more_ranks(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog\n" * 80)
    out = str(tmp_path / "run")
    cli = ["-m", "seqcore.cli", "train"]
    first = launch(2, cli + [str(corpus), "--distributed", "--steps", "3", "--batch", "6", "--seq-len", "10",
                             "--hidden", "16", "--embed", "8", "--out", out, "--quiet", "--sample-length", "5"])
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.count("corpus:") == 1  # rank 0 alone prints
    assert "on each of 2 MPI ranks" in first.stdout
    assert os.path.isfile(os.path.join(out, "run.json")) and os.path.isdir(os.path.join(out, "checkpoint"))
    again = launch(3, cli + ["--distributed", "--resume", "--steps", "5", "--out", out, "--quiet"])
    assert again.returncode == 0, again.stdout + again.stderr
    assert "from step 3" in again.stdout and "5 steps in" in again.stdout
