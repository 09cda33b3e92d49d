"""tools/perf_tables.py: the manual's performance tables come from the
benches' JSON records, each with its machine, command and date; the README's
headline table is the rendering of its record, not a copy typed by hand."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "perf_tables.py"
if not SCRIPT.is_file():
    pytest.skip("tools/perf_tables.py is not beside the tests", allow_module_level=True)

spec = importlib.util.spec_from_file_location("perf_tables", SCRIPT)
perf_tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(perf_tables)

MACHINE = dict(model="Test CPU 9000", flags=["avx2", "avx512f"], cores=2)


def write(data_dir, name, command, bench):
    data = dict(name=name, command=command, date="2026-12-06 20:00 UTC", machine=MACHINE, load=[1.5, 2.5],
                bench=bench)
    (data_dir / f"{name}.json").write_text(json.dumps(data))
    return data


def cell_record(cell, threads, step, **figures):
    return dict(cell=cell, T=10, B=2, D=3, H=4, threads=threads, step=step, **figures)


def test_a_cells_table_has_a_row_per_shape_a_column_per_threads_and_step(tmp_path):
    records = [cell_record("lstm", n, s, native_tokens_per_s=1000.0 * n, native_over_torch=1.5)
               for n in (1, 2) for s in ("train", "infer")]
    records.append(cell_record("gru", 1, "train", native_tokens_per_s=12.0, native_over_torch=None))
    write(tmp_path, "c", "python bench/cells.py --threads 1 2", dict(info={}, records=records))
    table = perf_tables.render("c", tmp_path)
    lines = table.splitlines()
    assert lines[0].count("|") == 6  # the shape and 4 columns
    assert lines[2] == "| LSTM 10×2×3×4 | 1,000 (1.50×) | 1,000 (1.50×) | 2,000 (1.50×) | 2,000 (1.50×) |"
    assert lines[3] == "| GRU 10×2×3×4 | 12 |  |  |  |"
    caption = lines[-1]
    for words in ("Test CPU 9000", "2 cores", "avx512f", "2026-12-06 20:00 UTC", "loaded: load average 1.5 "
                  "before, 2.5 after", "`python bench/cells.py --threads 1 2`", "docs/performance/data/c.json"):
        assert words in caption
    data = write(tmp_path, "q", "python bench/cells.py", dict(info={}, records=records))
    data["load"] = [0.5, 1.2]
    (tmp_path / "q.json").write_text(json.dumps(data))
    assert "quiet: load average 0.5 before, 1.2 after" in perf_tables.render("q", tmp_path)
    data["commit"] = "abc1234"
    (tmp_path / "q.json").write_text(json.dumps(data))
    assert "20:00 UTC at commit abc1234 on Test CPU 9000" in perf_tables.render("q", tmp_path)


def test_a_cells_table_shows_onnxruntime_and_the_probe_where_the_record_has_them(tmp_path):
    records = [cell_record("lstm", 2, "train", native_tokens_per_s=100.0, native_over_torch=1.5),
               cell_record("lstm", 2, "infer", native_tokens_per_s=300.0, native_over_torch=1.25,
                           native_over_onnxruntime=1.1, W_hh_bytes_per_s=45e9, probe_bytes_per_s=50e9)]
    write(tmp_path, "c", "python bench/cells.py --threads 2", dict(info={}, records=records))
    table = perf_tables.render("c", tmp_path)
    assert "tokens/s (×torch, ×onnxruntime)" in table
    assert "| LSTM 10×2×3×4 | 100 (1.50×) | 300 (1.25×, 1.10×) |" in table
    assert "| LSTM 10×2×3×4 | 2 | 45.0 | 50.0 | 90% |" in table
    summary = perf_tables.cells_summary(dict(records=records))
    assert "infer, 2 threads: ×onnxruntime" in summary and "| 1.10× (least 1.10×) |" in summary


def test_bf16_generate_and_layers_records_have_their_tables(tmp_path):
    bf16 = [cell_record("rnn", 1, "train", bf16_over_fp32=2.5, bf16_over_torch_bf16=1.25)]
    write(tmp_path, "b", "python bench/cells.py --precision bf16", dict(precision="bf16", records=bf16))
    assert "| RNN 10×2×3×4 | 2.50 / 1.25 |" in perf_tables.render("b", tmp_path)
    gen = [dict(model="m", library="seqcore", samples=1, chars_per_s=2000.0, us_per_char=500.0),
           dict(model="m", library="torch loop", samples=1, chars_per_s=500.0, us_per_char=2000.0)]
    write(tmp_path, "g", "python bench/generate.py --rounds 3", dict(records=gen))
    table = perf_tables.render("g", tmp_path)
    assert "| m | seqcore | 1 | 2,000 | 500 | 1 |" in table and "| m | torch loop | 1 | 500 | 2,000 | 0.25 |" in table
    layers = [dict(cell="lstm", batch="full", step="train", threads=1, seqcore_tokens_per_s=5000.0,
                   torch_tokens_per_s=2500.0, ratio=2.0)]
    write(tmp_path, "l", "python bench/layers.py", layers)
    assert "| LSTM, full lengths | 5,000 (2.00×) |" in perf_tables.render("l", tmp_path)
    probe = [dict(bytes=2**20, threads=1, bytes_per_s=90e9), dict(bytes=2**20, threads=2, bytes_per_s=180e9)]
    write(tmp_path, "p", "python bench/bandwidth.py", dict(caches={"L2": 2**21}, records=probe))
    table = perf_tables.render("p", tmp_path)
    assert "| buffer (caches of a core: L2 2 MB) | GB/s, 1 thread | GB/s, 2 threads |" in table
    assert "| 1 MB | 90.0 | 180.0 |" in table
    write(tmp_path, "x", "python bench/gemm.py", {})
    with pytest.raises(ValueError, match="no table for the command"):
        perf_tables.render("x", tmp_path)


def test_markers_are_replaced_and_a_missing_record_is_an_error(tmp_path):
    write(tmp_path, "l", "python bench/layers.py", [dict(cell="gru", batch="variable", step="infer", threads=2,
                                                          seqcore_tokens_per_s=10.0, torch_tokens_per_s=None,
                                                          ratio=None)])
    page = "# P\n\ntext\n\n<!-- perf-table: l -->\n\nmore\n"
    out = perf_tables.fill_markers(page, tmp_path)
    assert "<!-- perf-table" not in out and "| GRU, variable lengths |  | 10 |" in out and out.endswith("\nmore\n")
    with pytest.raises(FileNotFoundError, match="missing.json"):
        perf_tables.fill_markers("<!-- perf-table: missing -->", tmp_path)


def test_the_readme_block_is_rewritten_from_the_record(tmp_path):
    records = [cell_record("lstm", 1, "train", native_tokens_per_s=1.0, native_over_torch=r) for r in (2.0, 0.5)]
    records[1]["H"] = 8
    records.append(cell_record("gru", 1, "infer", native_tokens_per_s=1.0, native_over_torch=3.0))
    records.append(cell_record("gru", 2, "infer", native_tokens_per_s=1.0, native_over_torch=9.0))  # not shown
    write(tmp_path, "c", "python bench/cells.py --threads 1", dict(info={}, records=records))
    readme = "# R\n\n<!-- headline-table: c -->\n| an old table |\n<!-- /headline-table -->\n\nafter\n"
    out = perf_tables.fill_headline(readme, tmp_path)
    assert "an old table" not in out and out.endswith("-->\n\nafter\n")
    assert "| LSTM (2 shapes) | 1.00× (least 0.50×) |  |" in out  # the geometric mean of 2 and 0.5
    assert "| GRU (1 shapes) |  | 3.00× (least 3.00×) |\n" in out and "9.00" not in out and "2 threads" not in out
    assert "Test CPU 9000" in out
    assert perf_tables.fill_headline(out, tmp_path) == out
    with pytest.raises(ValueError, match="headline-table"):
        perf_tables.fill_headline("# R\n", tmp_path)
    write(tmp_path, "l", "python bench/layers.py", [])
    with pytest.raises(ValueError, match="float32 bench/cells.py"):
        perf_tables.fill_headline(readme.replace(": c -->", ": l -->"), tmp_path)


def test_record_runs_the_bench_with_json_and_keeps_command_date_machine(tmp_path):
    bench = tmp_path / "fake_bench.py"
    bench.write_text("import json, sys\n"
                     "path = sys.argv[sys.argv.index('--json') + 1]\n"
                     "json.dump({'records': [], 'argv': sys.argv[1:]}, open(path, 'w'))\n")
    out = perf_tables.record("fake", [sys.executable, str(bench), "--rounds", "1"], tmp_path)
    data = json.loads(out.read_text())
    assert data["command"] == f"{sys.executable} {bench} --rounds 1"
    assert data["bench"]["argv"][:2] == ["--rounds", "1"] and data["bench"]["argv"][2] == "--json"
    assert data["date"].endswith("UTC") and len(data["load"]) == 2 and data["commit"]
    assert set(data["machine"]) == {"model", "flags", "cores"}
    with pytest.raises(ValueError, match="name"):
        perf_tables.record("../x", [sys.executable], tmp_path)


def test_the_manuals_records_render_and_each_is_shown():
    records = sorted(perf_tables.DATA.glob("*.json"))
    assert records, "docs/performance/data/ holds no record"
    pages = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs").rglob("*.md"))
    for path in records:
        table = perf_tables.render(path.stem)
        assert perf_tables.load(path.stem)["machine"]["model"] in table
        assert f"<!-- perf-table: {path.stem} -->" in pages, f"{path.name} is shown on no page"


def test_the_readmes_headline_table_is_its_records():
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    assert perf_tables.HEADLINE.search(text), "the README has no headline-table block"
    assert perf_tables.fill_headline(text) == text, "run: python tools/perf_tables.py readme"

