"""bench/ab_builds.py: two builds of the extension in one process, each a
module of its own (the check that the A/B compares two things at all)."""

import shutil

import numpy as np
import pytest

from benches import load_bench

from seqcore import _core


def two_copies(tmp_path):
    """Two files of the installed build (one file would be mapped once)."""
    paths = [tmp_path / "before.so", tmp_path / "after.so"]
    for p in paths:
        shutil.copyfile(_core.__file__, p)
    return [str(p) for p in paths]


def test_two_builds_are_two_modules_with_their_own_state(tmp_path):
    bench = load_bench("ab_builds")
    before, after = two_copies(tmp_path)
    a, b = bench.load_build(before, "ab_test_a"), bench.load_build(after, "ab_test_b")
    assert a is not b and a.gemm is not b.gemm
    isa = _core.isa()
    b.set_isa("scalar")
    assert b.isa() == "scalar" and a.isa() == isa and _core.isa() == isa


def test_the_bench_prints_a_row_per_cell_shape_and_step(tmp_path, capsys):
    bench = load_bench("ab_builds")
    rows = bench.main(two_copies(tmp_path) + ["--cells", "rnn", "--rounds", "3", "--threads", "1"])
    assert len(rows) == 2 * len(bench.SHAPES)
    assert all(0 < float(row[-1]) < 10 for row in rows)
    assert "after / before" in capsys.readouterr().out


def test_a_missing_build_or_one_file_twice_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit, match="no such file"):
        load_bench("ab_builds").main([str(tmp_path / "none.so"), _core.__file__])
    with pytest.raises(SystemExit):
        load_bench("ab_builds").main([_core.__file__, _core.__file__])
    assert "expected two files" in capsys.readouterr().err


def test_check_bits_finds_the_same_bits_and_a_difference(tmp_path, capsys):
    bench = load_bench("ab_builds")
    argv = two_copies(tmp_path) + ["--cells", "gru", "--rounds", "3", "--threads", "1", "--shapes", "3x2x4x8",
                                   "--check-bits"]
    bench.main(argv)
    assert "bits: the same in every case" in capsys.readouterr().out
    # one build's outputs off by the least step: the check names the case
    real = bench.outputs
    bench.outputs = lambda core, *a, **k: [v if core.__name__.startswith("ab_before") else
                                           v + np.finfo(v.dtype).eps * abs(v) for v in real(core, *a, **k)]
    bench.main(argv)
    assert "bits: differ in gru 3x2x4x8" in capsys.readouterr().out
