"""bench/wavefront.py: the wavefront over stacked layers gives today's bits
(forward in training and inference, and the training step run on the caches
joined from its chunks), at 1, 2, 3 and 5 threads, 2 and 3 layers, LSTM,
GRU and RNN, chunks that do and do not divide T; and the script's records
(tiny sizes: its plumbing, not its figures)."""

import json

import numpy as np
import pytest

from benches import load_bench

from seqcore.nn import GRU, LSTM, RNN


@pytest.mark.parametrize("cls", [LSTM, GRU, RNN], ids=["lstm", "gru", "rnn"])
@pytest.mark.parametrize("layers", [2, 3])
@pytest.mark.parametrize("threads", [1, 2, 3, 5])
@pytest.mark.parametrize("T, B, chunk", [(12, 3, 5), (8, 1, 2), (9, 4, 9)])
def test_the_wavefront_gives_the_sequential_stacks_bits(cls, layers, threads, T, B, chunk):
    bench = load_bench("wavefront")
    layer = cls(5, 16, num_layers=layers, seed=1)
    x = np.random.default_rng(2).standard_normal((T, B, 5)).astype(np.float32)
    same, wave_backward_difference = bench._check_bits(cls.cell, layer, x, chunk, threads)
    assert same
    # the wavefront backward sums the weight gradients by chunk: near, not equal, unless one chunk
    assert wave_backward_difference < 1e-4
    if chunk < T and cls.cell == "lstm":
        assert wave_backward_difference > 0


def test_the_script_records_every_mode(tmp_path, capsys, monkeypatch):
    bench = load_bench("wavefront")
    monkeypatch.setattr(bench, "CONFIGS", {"tiny": ("lstm", 10, 2, 4, 8, 2)})
    out = tmp_path / "wave.json"
    assert bench.main(["--threads", "2", "--chunks", "3", "--rounds", "1", "--json", str(out)]) == 0
    records = json.loads(out.read_text())["records"]
    assert [(r["step"], r["mode"]) for r in records] == [
        ("infer", "sequential"), ("infer", "wave K=3"),
        ("train", "sequential"), ("train", "wave K=3"), ("train", "wave fwd+bwd K=3")]
    assert all(r["bitwise"] for r in records if r["mode"] == "wave K=3")
    assert "×seq" in capsys.readouterr().out
