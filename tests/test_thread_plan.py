"""The thread plan (csrc/plan.h): how many threads a call's work is worth,
and the schedules it gives, bitwise equal to one thread's results at any
count of workers (oracle: the same call on one thread)."""

import os
import statistics
import subprocess
import sys

import numpy as np
import pytest

import seqcore
from cellcases import CELLS, assert_bitwise_equal_results, backward, forward, make_inputs, make_output_weights
from seqcore import _core, ops

OFFERS = [1, 2, 3, 4, 5, 8, 16, 64]


@pytest.fixture(autouse=True)
def no_measured_excess():
    """The plans below are the model's: what earlier calls measured (slow
    meetings on a busy machine) is forgotten before and after each test."""
    _core.reset_sync_excess()
    yield
    _core.reset_sync_excess()


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("train", [True, False], ids=["train", "infer"])
def test_the_plan_is_within_the_offer(cell, train):
    for offered in OFFERS:
        for T, B, H in [(1, 1, 1), (100, 1, 128), (200, 8, 64), (50, 16, 1024), (10**6, 512, 4096)]:
            n = ops.plan_threads(cell, T, B, H, train=train, num_threads=offered)
            assert 1 <= n <= offered, (offered, T, B, H, n)


@pytest.mark.parametrize("cell", CELLS)
def test_one_offered_thread_is_one_planned(cell):
    assert ops.plan_threads(cell, 10**5, 1024, 2048, num_threads=1) == 1


@pytest.mark.parametrize("cell", CELLS)
def test_tiny_problems_run_on_one_thread(cell):
    # a step of a few thousand multiply-adds: less than one synchronisation
    for T, B, H in [(1, 1, 1), (100, 1, 8), (1000, 2, 16)]:
        assert ops.plan_threads(cell, T, B, H, num_threads=64) == 1, (T, B, H)


@pytest.mark.parametrize("cell", CELLS)
def test_large_problems_take_every_offered_thread(cell):
    assert ops.plan_threads(cell, 100, 64, 1024, num_threads=16) == 16


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("train", [True, False], ids=["train", "infer"])
@pytest.mark.parametrize("offered", [2, 4, 16, 64])
def test_the_plan_grows_with_every_size(cell, train, offered):
    def plan(T, B, H):
        return ops.plan_threads(cell, T, B, H, train=train, num_threads=offered)

    sizes = [1, 2, 3, 5, 8, 13, 32, 64, 100, 256, 1000]
    for a in sizes:
        for b in sizes:
            for grow in ("T", "B", "H"):
                plans = [plan(**{"T": a, "B": b, "H": 64, grow: v}) if grow != "H"
                         else plan(T=a, B=b, H=v) for v in sizes]
                assert plans == sorted(plans), (grow, a, b, plans)


def test_the_product_plan_is_one_thread_or_the_offer():
    for offered in OFFERS:
        small = ops.plan_product_threads(4, 4, 4, num_threads=offered)
        large = ops.plan_product_threads(1024, 1024, 1024, num_threads=offered)
        assert small == 1 and large == offered
    plans = [ops.plan_product_threads(n, n, n, num_threads=8) for n in range(1, 200, 7)]
    assert plans == sorted(plans)


def test_the_stream_plan_is_one_thread_or_the_offer_and_monotone_in_the_bytes():
    for offered in OFFERS:
        assert ops.plan_stream_threads(1024, num_threads=offered) == 1  # 1 KiB: less than a team costs
        assert ops.plan_stream_threads(64 << 20, num_threads=offered) == offered
        plans = [ops.plan_stream_threads(b, num_threads=offered) for b in (0, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8)]
        assert plans == sorted(plans) and set(plans) <= {1, offered}
    assert ops.plan_stream_threads(64 << 20, num_threads=1) == 1


def test_the_stream_plan_counts_how_late_the_threads_come():
    """Where the loops measured their meetings late (others hold the cores),
    a pass that a team would share in tens of µs stays on one thread."""
    assert ops.plan_stream_threads(1 << 20, num_threads=2) == 2  # 1 MiB: ~50 µs alone
    _core.report_step_waits(2_000_000 * 100, 100, 100, 2)  # 2 ms a meeting
    assert ops.plan_stream_threads(1 << 20, num_threads=2) == 1
    assert ops.plan_stream_threads(1 << 20, num_threads=2) == 1  # read, not let go
    assert ops.plan_stream_threads(1 << 34, num_threads=2) == 2  # 16 GiB: worth it still


def test_late_regions_keep_the_passes_on_one_thread_for_a_while():
    """The passes' own measure: a region whose last thread came 300 µs late
    (a loaded machine) keeps a 1 MiB pass on one thread; each plan lets 2% go,
    so teams are tried again later."""
    _core.report_region_lateness(600_000, 2)  # the moving average takes half
    assert _core.region_lateness_ns() > 250_000
    plans = [ops.plan_stream_threads(1 << 20, num_threads=2) for _ in range(400)]
    assert plans[0] == 1 and plans[-1] == 2 and plans == sorted(plans)


def test_a_passs_region_reports_how_late_its_threads_came():
    if not _core.openmp():
        pytest.skip("built without OpenMP: no regions")
    before = seqcore.get_num_threads()
    seqcore.set_num_threads(2)
    try:
        with ops._every_thread_works():
            _core.report_region_lateness(10**9, 2)  # a large lateness, which a real pass's report halves
            high = _core.region_lateness_ns()
            ops.sum_of_squares(np.ones(1 << 20, np.float32))  # 16 blocks on a team of 2
    finally:
        seqcore.set_num_threads(before)
    assert _core.region_lateness_ns() < 0.75 * high


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), True, "1"])
def test_the_stream_plan_refuses_bad_sizes(bad):
    with pytest.raises(ValueError, match="nbytes"):
        ops.plan_stream_threads(bad)


def test_the_cost_model_is_visible():
    costs = ops.thread_plan_costs()
    assert set(costs) >= {"rate", "sync_base", "sync_per_thread", "region_base"}
    assert all(v > 0 for v in costs.values())


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, None])
def test_plan_sizes_must_be_positive_ints(bad):
    with pytest.raises(ValueError, match="T:"):
        ops.plan_threads("lstm", bad, 4, 8)


def test_plan_names_a_bad_cell():
    with pytest.raises(ValueError, match="cell:"):
        ops.plan_threads("transformer", 4, 4, 8)


# ---------------------------------------------------------------------------
# schedules: every worker count gives one thread's bits

def run_at(n, cell, inputs, weights, train, options):
    before = seqcore.get_num_threads()
    seqcore.set_num_threads(n)
    try:
        outs, cache = forward(cell, inputs, train=train, **options)
        grads = backward(cell, weights, cache) if train else {}
    finally:
        seqcore.set_num_threads(before)
    return outs, grads


# H = 70: 5 forward units of 16 (LSTM, GRU) and 3 backward units of 32 with
# AVX-512, so 2, 3 and 5 workers split them unevenly; lengths leave rows
# behind mid-sequence; T past one inference chunk.
CASES = {
    "plain": (dict(), 9),
    "lengths": (dict(lengths=np.array([9, 3, 0, 7, 9, 1, 5, 2, 8, 4, 6])), 9),
    "reverse": (dict(lengths=np.array([9, 3, 0, 7, 9, 1, 5, 2, 8, 4, 6]), reverse=True), 9),
    "long": (dict(), 70),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("train", [True, False], ids=["train", "infer"])
@pytest.mark.parametrize("cell", CELLS)
def test_every_worker_count_gives_one_threads_bits(cell, train, case):
    options, T = CASES[case]
    B, D, H = 11, 21, 70
    inputs = make_inputs(cell, T, B, D, H, dtype=np.float32, seed=3)
    weights = make_output_weights(cell, T, B, H, dtype=np.float32)
    expected = run_at(1, cell, inputs, weights, train, options)
    with ops._every_thread_works():
        for n in (2, 3, 5):
            assert_bitwise_equal_results(expected, run_at(n, cell, inputs, weights, train, options))


@pytest.mark.parametrize("cell", CELLS)
def test_planned_threads_give_one_threads_bits(cell):
    inputs = make_inputs(cell, 20, 32, 48, 96, dtype=np.float32, seed=4)
    weights = make_output_weights(cell, 20, 32, 96, dtype=np.float32)
    expected = run_at(1, cell, inputs, weights, True, {})
    for n in (2, 3, 5):
        assert_bitwise_equal_results(expected, run_at(n, cell, inputs, weights, True, {}))


def test_planning_is_restored_after_the_block():
    with ops._every_thread_works():
        pass
    assert ops.plan_threads("lstm", 1, 1, 1, num_threads=8) == 1


# ---------------------------------------------------------------------------
# the team: every region of every call asks for the same threads

def thread_ids():
    return set(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux's /proc")
def test_calls_of_different_sizes_reuse_the_same_threads():
    """libgomp ends the pool threads a smaller team leaves out and starts new
    ones for the next larger team; the kernels ask for the whole offered team
    in every region, so the calls below, whose loops plan 1, 2 and 3 workers
    and whose products plan 1 or 3, run on threads started once."""
    calls = []
    for H in (16, 32, 48, 200):  # LSTM forward units: 1, 2, 3, 13 with AVX-512 (more with AVX2)
        inputs = make_inputs("lstm", 30, 24, 40, H, dtype=np.float32, seed=H)
        weights = make_output_weights("lstm", 30, 24, H, dtype=np.float32)
        calls.append(lambda inputs=inputs, weights=weights: backward("lstm", weights, forward("lstm", inputs)[1]))
    a = np.ones((300, 300), np.float32)
    calls.append(lambda: ops.matmul(a, a))
    calls.append(lambda: ops.matmul(a[:4, :4].copy(), a[:4, :4].copy()))
    before = seqcore.get_num_threads()
    seqcore.set_num_threads(3)
    try:
        with ops._every_thread_works():
            for call in calls:  # the pool starts here
                call()
            started = thread_ids()
            for _ in range(3):
                for call in reversed(calls):
                    call()
                for call in calls:
                    call()
            assert thread_ids() == started
    finally:
        seqcore.set_num_threads(before)


# ---------------------------------------------------------------------------
# idle threads stop spinning soon (seqcore's own OpenMP runtime)

IDLE_CPU = """
import time
import numpy as np
import seqcore
from seqcore import ops
seqcore.set_num_threads(2)
a = np.ones((400, 400), np.float32)
ops.matmul(a, a)
spent = 0.0
for _ in range(20):
    ops.matmul(a, a)  # a team of 2: one pool thread, idle after it
    t0 = time.process_time()
    time.sleep(0.02)
    spent += time.process_time() - t0
print(spent)
"""


def idle_cpu_seconds(**env_vars) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    env.update(env_vars)
    out = subprocess.run([sys.executable, "-c", IDLE_CPU], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="GNU OpenMP's GOMP_SPINCOUNT")
def test_idle_threads_stop_spinning_soon():
    """The CPU the process burns while it sleeps after parallel products:
    with GNU OpenMP's documented default spin (300,000 pauses, 10-40 ms on
    a quiet core) the idle thread spends much of each 20 ms sleep spinning;
    seqcore's runtime spins ~0.1 ms (ops.SPIN_COUNT). On a busy machine both
    get less CPU, alike: the two runs take turns, three times, and their
    medians are compared (one pair on a loaded machine was seen to fail)."""
    pairs = [(idle_cpu_seconds(), idle_cpu_seconds(GOMP_SPINCOUNT="300000")) for _ in range(3)]
    ours, spinning = (statistics.median(p[i] for p in pairs) for i in (0, 1))
    assert ours < 0.5 * spinning, pairs


def test_the_spin_setting_is_not_left_in_the_environment():
    code = "import os, seqcore; print(os.environ.get('GOMP_SPINCOUNT'))"
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "None"
    env["GOMP_SPINCOUNT"] = "123"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "123"


# ---------------------------------------------------------------------------
# meetings that cost more than the model: fewer workers, for a while

def test_slow_meetings_make_the_plan_take_fewer_workers_then_recover():
    shape = dict(cell="lstm", T=100, B=8, H=128, num_threads=8)
    usual = ops.plan_threads(**shape)
    assert usual > 1
    _core.report_step_waits(2_000_000 * 100, 100, 100, usual)  # 2 ms a step: another pool holds the cores
    assert _core.sync_excess_ns() > 100_000
    assert ops.plan_threads(**shape) == 1
    plans = [ops.plan_threads(**shape) for _ in range(200)]  # each plan lets 10% of the excess go
    assert plans[-1] == usual and plans == sorted(plans)


def test_a_few_long_waits_leave_the_plan_alone():
    """A worker preempted now and then (a busy machine): one worker would lose that time too."""
    _core.report_step_waits(20_000_000 * 10, 10, 100, 4)  # 10 of 100 steps waited 20 ms
    assert _core.sync_excess_ns() == 0
    assert ops.plan_threads("lstm", 100, 8, 128, num_threads=8) > 1


def test_slow_meetings_leave_products_alone():
    _core.report_step_waits(2_000_000 * 100, 100, 100, 2)
    assert ops.plan_product_threads(256, 256, 64, num_threads=2) == 2


def test_meetings_as_cheap_as_the_model_leave_the_plan_alone():
    _core.report_step_waits(0, 0, 100, 4)
    assert _core.sync_excess_ns() == 0
    assert ops.plan_threads("lstm", 100, 8, 128, num_threads=8) > 1


def test_a_parallel_loop_reports_its_meetings():
    inputs = make_inputs("lstm", 50, 16, 32, 64, dtype=np.float32)
    before = seqcore.get_num_threads()
    seqcore.set_num_threads(2)
    try:
        with ops._every_thread_works():
            _core.report_step_waits(10**9 * 50, 50, 50, 2)  # a large excess, which a real loop's report halves
            high = _core.sync_excess_ns()
            forward("lstm", inputs, train=False)
    finally:
        seqcore.set_num_threads(before)
    assert _core.sync_excess_ns() < 0.75 * high
