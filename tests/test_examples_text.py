"""The text examples run end to end on the shared data, briefly: Dinosaurus
Island (examples/dinosaurs.py), Tiny Shakespeare (examples/shakespeare.py)
and its comparison with PyTorch (bench/shakespeare.py), each through its
main() with small settings.

Oracles: the loss before training (the course's initial smoothed loss, the
untrained model's validation loss), and for the comparison, PyTorch given the
same initial weights and batches. Skipped without ../shared/data."""

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "examples"))

import dinosaurs  # noqa: E402
import shakespeare  # noqa: E402

needs_dinos = pytest.mark.skipif(not (DATA / "dinos.txt").is_file(), reason="needs ../shared/data/dinos.txt")
needs_shakespeare = pytest.mark.skipif(not (DATA / "tinyshakespeare.txt").is_file(),
                                       reason="needs ../shared/data/tinyshakespeare.txt")


@needs_dinos
def test_dinosaurs_smoothed_loss_falls_below_its_start_and_samples_are_names(capsys):
    """One name per SGD step: the course's smoothed loss first rises (a name
    is longer than the 7 characters of its start value) and falls below
    -ln(1/27)·7 after about 8,000 names; the loss over all names falls by
    far more. Samples are lower-case a–z."""
    r = dinosaurs.main(["--iterations", "12000", "--threads", "1"])
    assert r["initial_loss"] == pytest.approx(-math.log(1 / 27) * 7)
    assert r["loss"] < r["initial_loss"], r["history"]
    assert r["char_loss"] < r["initial_char_loss"] - 1.0
    assert len(r["samples"]) == 7
    assert all(s and s.isalpha() and s.islower() and s.isascii() for s in r["samples"]), r["samples"]
    assert r["gradcheck"] < 1e-5  # the course's gradient check of the model before training
    out = capsys.readouterr().out
    assert "Iteration: 2000, Loss: " in out and "final smoothed loss" in out
    assert "gradient check (float64, one name): worst relative error" in out


def test_dinosaurs_missing_data_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="--data"):
        dinosaurs.main(["--data", str(tmp_path / "none.txt"), "--iterations", "1"])


@needs_shakespeare
def test_shakespeare_trains_a_few_steps_on_a_slice(capsys):
    """A handful of Trainer steps with the example's configuration lower the
    validation loss below the untrained model's, and a sample is printed."""
    r = shakespeare.main(["--max-chars", "40000", "--steps", "6", "--eval-every", "3", "--threads", "1",
                          "--sample-length", "80", "--quiet"])
    assert r["steps"] == 6 and r["stop_reason"] == "done"
    assert math.isfinite(r["val_loss"]) and r["val_loss"] < r["initial_val_loss"]
    assert r["val_bpc"] == pytest.approx(r["val_loss"] / math.log(2))
    assert 0 < len(r["sample"]) <= 80
    assert "validation loss" in capsys.readouterr().out


def test_shakespeare_missing_data_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="--data"):
        shakespeare.main(["--data", str(tmp_path / "none.txt")])


@needs_shakespeare
def test_shakespeare_bench_starts_both_libraries_from_the_same_model():
    """bench/shakespeare.py with a tiny budget: the same initial weights and
    validation batches give the same initial loss in seqcore and torch, and
    both report a speed. Without torch, seqcore alone."""
    spec = importlib.util.spec_from_file_location("bench_shakespeare", ROOT / "bench" / "shakespeare.py")
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # its dataclasses look their module up
    spec.loader.exec_module(bench)
    r = bench.main(["--max-chars", "40000", "--steps", "3", "--eval-every", "2", "--threads", "1", "--quiet"])
    runs = r["runs"]
    assert runs["seqcore"]["steps"] == 3 and runs["seqcore"]["tokens_per_s"] > 0
    assert [e[0] for e in runs["seqcore"]["evals"]] == [0, 2, 3]
    if r["torch"] is None:
        assert set(runs) == {"seqcore"}
        return
    assert runs["torch"]["steps"] == 3 and runs["torch"]["tokens_per_s"] > 0
    initial = [runs[lib]["evals"][0][2] for lib in ("seqcore", "torch")]
    np.testing.assert_allclose(initial[0], initial[1], rtol=1e-5)
    # the same batches, clipping, optimizer and schedule: the same trajectory
    after = [runs[lib]["evals"][-1][2] for lib in ("seqcore", "torch")]
    np.testing.assert_allclose(after[0], after[1], rtol=1e-4)
    assert r["tokens_per_s_ratio"] == pytest.approx(runs["seqcore"]["tokens_per_s"] / runs["torch"]["tokens_per_s"])


@needs_shakespeare
def test_shakespeare_bench_alternates_the_libraries_in_turns(capsys):
    """With torch, the libraries take turns of --block steps: the validation
    lines (every 2 steps) come seqcore 0, 2, torch 0, 2, seqcore 4, torch 4,
    then each library's last step (5) at the end of its own budget."""
    pytest.importorskip("torch")
    spec = importlib.util.spec_from_file_location("bench_shakespeare", ROOT / "bench" / "shakespeare.py")
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench
    spec.loader.exec_module(bench)
    bench.main(["--max-chars", "40000", "--steps", "5", "--eval-every", "2", "--block", "2", "--threads", "1"])
    lines = [line.split() for line in capsys.readouterr().out.splitlines() if "validation loss" in line]
    order = [(words[0], int(words[2])) for words in lines if words[1] == "step"]
    assert order == [("seqcore", 0), ("seqcore", 2), ("torch", 0), ("torch", 2), ("seqcore", 4), ("torch", 4),
                     ("seqcore", 5), ("torch", 5)]
