"""bench/cells.py: every contestant in one table, ONNX Runtime for inference
where it is installed, and the small-batch steps against the bandwidth probe."""

import json

import pytest

from benches import load_bench


def test_a_run_records_onnxruntime_and_the_probe_share(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    out = tmp_path / "cells.json"
    assert load_bench("cells").main(["--cells", "gru", "--configs", "0", "--threads", "1", "--no-reference",
                                     "--repeat", "3", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "onnxruntime tok/s" in printed and "gru infer: native/onnxruntime geometric mean" in printed
    assert "% probe" in printed  # 100x1x64x128: B = 1
    infer = [r for r in json.loads(out.read_text())["records"] if r["step"] == "infer"]
    assert len(infer) == 1
    record = infer[0]
    assert record["onnxruntime_tokens_per_s"] > 0 and record["native_over_onnxruntime"] > 0
    assert 0 < record["W_hh_bytes_per_s"] and 0 < record["probe_bytes_per_s"]
    train = [r for r in json.loads(out.read_text())["records"] if r["step"] == "train"]
    assert train[0]["onnxruntime_tokens_per_s"] is None and "native_over_onnxruntime" not in train[0]


def test_the_onnxruntime_contestant_runs_inference_of_float32_only():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from seqcore import benchmark
    bench = load_bench("cells")
    args = benchmark.cell_arguments("lstm", 3, 2, 4, 8)
    assert bench.onnxruntime_contestant("lstm", args, True, "fp32") is None
    assert bench.onnxruntime_contestant("lstm", args, False, "bf16") is None
    bench.onnxruntime_contestant("lstm", args, False, "fp32")()
