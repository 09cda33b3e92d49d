"""Kernels called from 4 Python threads at once give bitwise the results of the
same calls made one after another (the oracle): forward and backward of every
cell over padded batches both ways, the matrix product, and whole training
steps of independent models.

(test_native_cells.py checks plain forwards from four threads and that the
kernels release the GIL; here every thread starts at the same barrier and
runs several rounds, so the calls really overlap.)
"""

import threading

import numpy as np
import pytest

from cellcases import CELLS, backward, forward, make_inputs, make_output_weights

from seqcore import nn, ops
from seqcore.train import Adam

THREADS, ROUNDS = 4, 3


def run_at_once(jobs):
    """Runs each job in its own thread, all released by one barrier, ROUNDS
    times in a row; returns each job's results of every round."""
    barrier = threading.Barrier(len(jobs))
    results = [[] for _ in jobs]
    errors = []

    def work(i):
        try:
            for _ in range(ROUNDS):
                barrier.wait(timeout=60)
                results[i].append(jobs[i]())
        except BaseException as e:  # reported in the main thread
            errors.append(e)
            barrier.abort()

    workers = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=300)
    assert not any(w.is_alive() for w in workers), "a thread hangs"
    assert not errors, errors
    return results


def assert_bitwise(expected, got, what):
    assert len(expected) == len(got), f"{what}: {len(got)} results, expected {len(expected)}"
    for a, b in zip(expected, got):
        if isinstance(a, dict):
            for k in a:
                np.testing.assert_array_equal(a[k], b[k], err_msg=f"{what}: {k}")
        else:
            np.testing.assert_array_equal(a, b, err_msg=what)


def cell_job(cell, seed):
    """Forward and backward of one padded problem, reversed for odd seeds."""
    T, B, D, H = 17, 5, 6, 20
    inputs = make_inputs(cell, T, B, D, H, dtype=np.float32, seed=seed)
    dout = make_output_weights(cell, T, B, H, dtype=np.float32, seed=seed + 10)
    lengths = np.random.default_rng(seed).integers(0, T + 1, B)

    def job():
        outs, cache = forward(cell, inputs, lengths=lengths, reverse=seed % 2 == 1)
        return {**outs, **{f"d{k}": g for k, g in backward(cell, dout, cache).items()}}
    return job


@pytest.mark.parametrize("cell", CELLS)
def test_forward_and_backward_from_four_threads_equal_the_calls_in_turn(cell):
    jobs = [cell_job(cell, seed) for seed in range(THREADS)]
    expected = [job() for job in jobs]
    for i, rounds in enumerate(run_at_once(jobs)):
        for got in rounds:
            assert_bitwise([expected[i]], [got], f"{cell} job {i}")


def test_matrix_products_from_four_threads_equal_the_calls_in_turn():
    rng = np.random.default_rng(0)
    problems = [(rng.standard_normal((70 + i, 90)), rng.standard_normal((90, 50 + i))) for i in range(THREADS)]
    jobs = [lambda a=a, b=b: ops.matmul(a, b) for a, b in problems]
    expected = [job() for job in jobs]
    for i, rounds in enumerate(run_at_once(jobs)):
        assert_bitwise([expected[i]] * ROUNDS, rounds, f"product {i}")


def training_job(seed):
    """Two Adam steps of a fresh 2-layer GRU language model;
    returns its weights."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 11, (12, 3))

    def job():
        model = nn.LanguageModel(11, embed_size=5, hidden_size=8, num_layers=2, cell="gru", seed=seed)
        optimizer = Adam(model, lr=1e-2)
        for _ in range(2):
            logits, _ = model.forward(ids[:-1])
            _, dlogits = nn.softmax_cross_entropy(logits, ids[1:])
            model.zero_grad()
            model.backward(dlogits)
            optimizer.step()
        return {k: v.copy() for k, v in model.params.items()}
    return job


def test_training_steps_from_four_threads_equal_the_steps_in_turn():
    jobs = [training_job(seed) for seed in range(THREADS)]
    expected = [job() for job in jobs]
    for i, rounds in enumerate(run_at_once(jobs)):
        assert_bitwise([expected[i]] * ROUNDS, rounds, f"model {i}")


def test_threads_with_their_own_thread_counts_do_not_disturb_each_other():
    cell = "lstm"
    inputs = [make_inputs(cell, 30, 4, 8, 32, dtype=np.float64, seed=s) for s in range(THREADS)]

    def job(i):
        return lambda: forward(cell, inputs[i], num_threads=1 + i % 2)[0]
    jobs = [job(i) for i in range(THREADS)]
    expected = [forward(cell, p, num_threads=1)[0] for p in inputs]  # bitwise the same at any count
    for i, rounds in enumerate(run_at_once(jobs)):
        assert_bitwise([expected[i]] * ROUNDS, rounds, f"lstm job {i}")
