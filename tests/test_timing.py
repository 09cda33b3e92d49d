"""seqcore.timing: medians in turns, on a clock the functions move by known
amounts (no real time is measured)."""

from seqcore.timing import median_seconds_in_turns


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def timed_fns(clock, seconds):
    """Functions that take `seconds[k]` each on `clock`, and their call counts."""
    calls = {k: 0 for k in seconds}

    def make(k):
        def fn():
            calls[k] += 1
            clock.now += seconds[k]
        return fn

    return {k: make(k) for k in seconds}, calls


def test_turns_give_each_function_its_time_per_call():
    clock = FakeClock()
    fns, calls = timed_fns(clock, {"fast": 0.001, "slow": 0.004})
    result = median_seconds_in_turns(fns, rounds=5, warmup=1, clock=clock)
    assert abs(result["fast"] - 0.001) < 1e-12 and abs(result["slow"] - 0.004) < 1e-12
    assert calls == {"fast": 6, "slow": 6}  # a warm-up call, then one a round


def test_min_time_times_several_calls_a_turn():
    clock = FakeClock()
    fns, calls = timed_fns(clock, {"fast": 0.001, "slow": 0.004})
    result = median_seconds_in_turns(fns, rounds=5, warmup=1, clock=clock, min_time=0.1)
    assert abs(result["fast"] - 0.001) < 1e-12 and abs(result["slow"] - 0.004) < 1e-12
    # 0.1 s over 5 rounds: 20 calls of 1 ms a turn, 5 of 4 ms
    assert calls == {"fast": 1 + 5 * 20, "slow": 1 + 5 * 5}


def test_turns_share_a_slowdown():
    """A machine that slows down halfway slows both alike: the medians keep
    the functions' ratio, 4."""
    clock = FakeClock()
    state = {"calls": 0}

    def make(seconds):
        def fn():
            state["calls"] += 1
            clock.now += seconds * (3.0 if state["calls"] > 8 else 1.0)
        return fn

    result = median_seconds_in_turns({"a": make(0.001), "b": make(0.004)}, rounds=7, clock=clock)
    assert abs(result["b"] / result["a"] - 4.0) < 1e-9
