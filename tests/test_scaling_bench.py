"""bench/scaling.py: a figure for each workload, step and thread count, the
speed-ups against the first count, JSON and the table."""

import json

from benches import load_bench


def test_every_workload_step_and_thread_count_gets_a_record(tmp_path, capsys):
    bench = load_bench("scaling")
    out = tmp_path / "scaling.json"
    result = bench.main(["--threads", "2", "1", "--cells", "gru", "--configs", "0", "--repeat", "1",
                         "--min-time", "0", "--no-torch", "--quiet", "--json", str(out)])
    keys = {(r["workload"], r["step"], r["threads"]) for r in result["records"]}
    assert keys == {(w, s, n) for w, s in [("gru 100x1x64x128", "train"), ("gru 100x1x64x128", "infer"),
                                           ("bilstm2 64x32x128x256", "train"), ("bilstm2 64x32x128x256", "infer"),
                                           ("shakespeare step", "train")] for n in (1, 2)}
    assert all(r["seqcore"] > 0 for r in result["records"])
    assert all(r["seqcore_speedup"] == 1.0 for r in result["records"] if r["threads"] == 1)
    assert json.loads(out.read_text())["threads"] == [1, 2]
    assert "seqcore ×1st" in capsys.readouterr().out


def test_alternated_calls_take_turns():
    bench = load_bench("scaling")
    calls = []
    bench.alternated(lambda: calls.append("a"), lambda: calls.append("b"), repeat=3, min_time=0)
    assert calls == ["a", "b"] * (len(calls) // 2) and len(calls) >= 8


def test_the_default_threads_double_up_to_the_cores(monkeypatch):
    bench = load_bench("scaling")
    monkeypatch.setattr(bench.os, "cpu_count", lambda: 12)
    assert bench.default_threads() == [1, 2, 4, 8, 12]
    monkeypatch.setattr(bench.os, "cpu_count", lambda: 16)
    assert bench.default_threads() == [1, 2, 4, 8, 16]


def test_an_earlier_run_prints_again_from_its_json(tmp_path, capsys):
    bench = load_bench("scaling")
    out = tmp_path / "scaling.json"
    bench.main(["--threads", "1", "--cells", "lstm", "--configs", "0", "--workloads", "cells", "--repeat", "1",
                "--min-time", "0", "--no-torch", "--quiet", "--json", str(out)])
    first = capsys.readouterr().out
    again = bench.main(["--from-json", str(out)])
    assert len(again["records"]) == 2
    table = capsys.readouterr().out
    assert table.splitlines()[1:4] == first.splitlines()[1:4]
