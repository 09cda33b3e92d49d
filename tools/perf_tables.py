"""The manual's performance tables, made from the benches' --json output,
never typed by hand.

    python tools/perf_tables.py record NAME -- python bench/cells.py --threads 1 2 --rounds 3
    python tools/perf_tables.py render NAME          # print the table (Markdown)
    python tools/perf_tables.py readme [README.md]   # rewrite the README's headline table
    python tools/perf_tables.py readme --check       # exit 1 where it differs from the data

`record` runs the bench command with `--json TMP` added and keeps, in
docs/performance/data/NAME.json, what the bench wrote beside the command as
typed, the date (UTC), the commit measured, the machine (lscpu's model name and flags of note,
the cores), and the load average before and after. `render` turns such a
record into a Markdown table with a caption that names the machine, the
command, the date and the load. The docs build puts the tables into the
pages where a line `<!-- perf-table: NAME -->` stands (docs/hooks.py), and
the README's headline table sits between `<!-- headline-table: NAME -->`
and `<!-- /headline-table -->`, rewritten by `readme`.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "docs" / "performance" / "data"
MARKER = re.compile(r"^<!-- perf-table: ([\w.-]+) -->$", re.M)
HEADLINE = re.compile(r"(<!-- headline-table: ([\w.-]+) -->\n)(.*?)(<!-- /headline-table -->)", re.S)
FLAGS_OF_NOTE = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8")


def machine() -> Dict[str, Any]:
    """lscpu's model name, the CPU flags the kernels care about, the cores."""
    model, flags = "unknown", []
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model name":
                model = value.strip()
            elif key.strip() == "Flags":
                have = set(value.split())
                flags = [f for f in FLAGS_OF_NOTE if f in have]
    except (OSError, subprocess.CalledProcessError):
        pass
    return dict(model=model, flags=flags, cores=os.cpu_count())


def record(name: str, command: Sequence[str], out_dir: Path = DATA) -> Path:
    """Run `command` with `--json TMP` appended; write out_dir/NAME.json."""
    if not re.fullmatch(r"[\w.-]+", name):
        raise ValueError(f"name: letters, digits, '.', '-' or '_' only, got {name!r}")
    if not command:
        raise ValueError("command: the bench to run, e.g. python bench/cells.py --threads 1")
    load_before = os.getloadavg()
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.json"
        subprocess.run([*command, "--json", str(path)], cwd=ROOT, check=True)
        bench = json.loads(path.read_text(encoding="utf-8"))
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or None
    data = dict(name=name, command=" ".join(command), date=date, commit=commit, machine=machine(),
                load=[round(v, 1) for v in (*load_before[:1], *os.getloadavg()[:1])], bench=bench)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{name}.json"
    out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return out


def _num(v: Optional[float], digits: int = 3) -> str:
    """A figure as the tables print it: thousands separated, or 3 significant digits."""
    if v is None:
        return ""
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def _table(headers: List[str], rows: List[List[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _shape(r: Dict[str, Any]) -> str:
    return f"{r['cell'].upper()} {r['T']}×{r['B']}×{r['D']}×{r['H']}"


def _pivot(records: List[Dict[str, Any]], value: Callable[[Dict[str, Any]], str], columns: List[tuple],
           key: Callable[[Dict[str, Any]], str]) -> List[List[str]]:
    """One row per key (in first-seen order), one column per (threads, step)."""
    rows: Dict[str, Dict[tuple, str]] = {}
    for r in records:
        rows.setdefault(key(r), {})[(r["threads"], r["step"])] = value(r)
    return [[k] + [cells.get(c, "") for c in columns] for k, cells in rows.items()]


def _columns(records: List[Dict[str, Any]]) -> List[tuple]:
    threads = sorted({r["threads"] for r in records})
    return [(n, step) for n in threads for step in ("train", "infer")]


def _cells_fp32(bench: Dict[str, Any]) -> str:
    """bench/cells.py in float32: tokens/s, ×torch, and ×onnxruntime for
    inference where it ran; then the small-batch steps against the probe."""
    records = bench["records"]
    columns = _columns(records)
    ort = any(r.get("native_over_onnxruntime") for r in records)
    headers = ([f"cell, T×B×D×H: tokens/s (×torch{', ×onnxruntime' if ort else ''})"]
               + [f"{step}, {n} thread{'s' * (n > 1)}" for n, step in columns])

    def value(r):
        ratios = [f"{x:.2f}×" for x in (r.get("native_over_torch"), r.get("native_over_onnxruntime")) if x]
        return _num(r["native_tokens_per_s"]) + (f" ({', '.join(ratios)})" if ratios else "")
    table = _table(headers, _pivot(records, value, columns, _shape))
    streams = [r for r in records if r.get("probe_bytes_per_s")]
    if streams:
        rows = [[_shape(r), str(r["threads"]), f"{r['W_hh_bytes_per_s'] / 1e9:.1f}",
                 f"{r['probe_bytes_per_s'] / 1e9:.1f}", f"{100 * r['W_hh_bytes_per_s'] / r['probe_bytes_per_s']:.0f}%"]
                for r in streams]
        table += ("\n\nInference at small batches reads all of W_hh each step: the bytes a second it reads, "
                  "against the probe (`bench/bandwidth.py`) reading as many bytes on as many threads.\n\n"
                  + _table(["cell, T×B×D×H", "threads", "W_hh GB/s", "probe GB/s", "share of the probe"], rows))
    return table


def _cells_bf16(bench: Dict[str, Any]) -> str:
    records = bench["records"]
    columns = _columns(records)
    headers = ["cell, T×B×D×H: ×seqcore fp32 / ×torch bf16"] + [f"{step}, {n} thread{'s' * (n > 1)}"
                                                                for n, step in columns]

    def value(r):
        torch = r.get("bf16_over_torch_bf16")
        return f"{r['bf16_over_fp32']:.2f}" + (f" / {torch:.2f}" if torch else "")
    return _table(headers, _pivot(records, value, columns, _shape))


def _cells_int8(bench: Dict[str, Any]) -> str:
    """bench/cells.py --precision int8: inference, seqcore int8 and its ratios."""
    headers = ["cell, T×B×D×H", "threads", "int8 tokens/s", "×seqcore bf16", "×seqcore fp32",
               "×torch int8 (quantize_dynamic)"]
    rows = [[_shape(r), str(r["threads"]), _num(r["int8_tokens_per_s"]), f"{r['int8_over_bf16']:.2f}",
             f"{r['int8_over_fp32']:.2f}", f"{r['int8_over_torch_int8']:.2f}" if "int8_over_torch_int8" in r else ""]
            for r in bench["records"]]
    return _table(headers, rows)


def _torch_dropin(bench: Dict[str, Any]) -> str:
    """bench/torch_dropin.py: a PyTorch training loop as written and converted, in turns."""
    cfg = bench["config"]
    headers = ["model", "precision", "torch tokens/s", "converted tokens/s", "converted / torch"]
    rows = [[f"{r['cell'].upper()} {cfg['hidden']} × {cfg['layers']}",
             "bf16 autocast" if r.get("precision") == "bf16" else "float32",
             _num(r["torch_tokens_per_s"]), _num(r["seqcore_torch_tokens_per_s"]), f"{r['ratio']:.2f}×"]
            for r in bench["results"]]
    return _table(headers, rows)


def _generate(bench: Dict[str, Any]) -> str:
    rows, base = [], {}
    for r in bench["records"]:
        if r["library"] == "seqcore" and r["samples"] == 1:
            base[r["model"]] = r["chars_per_s"]
    for r in bench["records"]:
        b = base.get(r["model"])
        rows.append([r["model"], r["library"], str(r["samples"]), _num(r["chars_per_s"]), _num(r["us_per_char"]),
                     _num(r["chars_per_s"] / b) if b else ""])
    return _table(["model", "library", "samples", "chars/s", "µs/char", "× seqcore, 1 sample"], rows)


def _layers(bench: List[Dict[str, Any]]) -> str:
    columns = _columns(bench)
    headers = ["2-layer bidirectional, lengths: tokens/s (×torch)"] + [f"{step}, {n} thread{'s' * (n > 1)}"
                                                                      for n, step in columns]

    def value(r):
        return _num(r["seqcore_tokens_per_s"]) + (f" ({r['ratio']:.2f}×)" if r.get("ratio") else "")
    return _table(headers, _pivot(bench, value, columns, lambda r: f"{r['cell'].upper()}, {r['batch']} lengths"))


def _bandwidth(bench: Dict[str, Any]) -> str:
    """bench/bandwidth.py: the probe's GB/s per buffer size and threads."""
    threads = sorted({r["threads"] for r in bench["records"]})
    rows: Dict[int, Dict[int, str]] = {}
    for r in bench["records"]:
        rows.setdefault(r["bytes"], {})[r["threads"]] = f"{r['bytes_per_s'] / 1e9:.1f}"
    caches = ", ".join(f"{k} {v / 2**20:g} MB" for k, v in bench.get("caches", {}).items())
    headers = [f"buffer (caches of a core: {caches})" if caches else "buffer"] + [
        f"GB/s, {n} thread{'s' * (n > 1)}" for n in threads]
    return _table(headers, [[f"{size / 2**20:g} MB"] + [by.get(n, "") for n in threads]
                            for size, by in rows.items()])


def _geomean(values: List[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def cells_summary(bench: Dict[str, Any], threads: Optional[int] = None) -> str:
    """The README's headline: per cell, the geometric mean (and the least) over
    the shapes of seqcore's speed over torch's, per step and threads (only
    ``threads`` where given)."""
    records = [r for r in bench["records"] if r.get("native_over_torch")
               and (threads is None or r["threads"] == threads)]
    if not records:
        raise ValueError("the record has no ratio to torch (was torch installed?)")
    # (the ratio's key, threads, step, header): ×torch per step and threads, then
    # ×onnxruntime for inference where the record has it
    columns = [("native_over_torch", n, step, f"{step}, {n} thread{'s' * (n > 1)}: ×torch")
               for n, step in _columns(records)]
    columns += [("native_over_onnxruntime", n, "infer", f"infer, {n} thread{'s' * (n > 1)}: ×onnxruntime")
                for n in sorted({r["threads"] for r in bench["records"] if r.get("native_over_onnxruntime")
                                 and (threads is None or r["threads"] == threads)})]
    rows = []
    for cell in dict.fromkeys(r["cell"] for r in records):
        row = [f"{cell.upper()} ({len({_shape(r) for r in records if r['cell'] == cell})} shapes)"]
        for key, n, step, _ in columns:
            ratios = [r[key] for r in bench["records"]
                      if r.get(key) and r["cell"] == cell and r["threads"] == n and r["step"] == step]
            row.append(f"{_geomean(ratios):.2f}× (least {min(ratios):.2f}×)" if ratios else "")
        rows.append(row)
    return _table(["cell"] + [header for *_, header in columns], rows)


def _renderer(data: Dict[str, Any]) -> Callable[[Any], str]:
    command = data["command"]
    if "bench/cells.py" in command:
        return {"bf16": _cells_bf16, "int8": _cells_int8}.get(data["bench"].get("precision"), _cells_fp32)
    if "bench/torch_dropin.py" in command:
        return _torch_dropin
    if "bench/generate.py" in command:
        return _generate
    if "bench/layers.py" in command:
        return _layers
    if "bench/bandwidth.py" in command:
        return _bandwidth
    raise ValueError(f"{data['name']}: no table for the command {command!r} (bench/bandwidth.py, "
                     "bench/cells.py, bench/generate.py, bench/layers.py, bench/torch_dropin.py)")


def caption(data: Dict[str, Any]) -> str:
    """What the table was measured on, how and when, in one paragraph."""
    m = data["machine"]
    flags = ", ".join(m["flags"]) if m["flags"] else "no flags of note"
    load = data["load"]
    if max(load) >= m["cores"]:  # more runnable work than cores: others' work shared the machine
        state = (f"loaded: load average {load[0]} before, {load[1]} after, on {m['cores']} cores; other "
                 f"work shared the machine, so these figures, the 2-thread ones above all, move by tens of "
                 f"per cent between runs")
    else:
        state = f"quiet: load average {load[0]} before, {load[1]} after"
    at = f" at commit {data['commit']}" if data.get("commit") else ""
    return (f"*Measured {data['date']}{at} on {m['model']} ({m['cores']} cores; {flags}), {state}. "
            f"Command: `{data['command']}`. Made by `tools/perf_tables.py` from "
            f"`docs/performance/data/{data['name']}.json`.*")


def load(name: str, data_dir: Path = DATA) -> Dict[str, Any]:
    """The record NAME; FileNotFoundError naming the file where there is none."""
    path = data_dir / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no performance record {path} (make it with: python tools/perf_tables.py "
                                f"record {name} -- python bench/...)")
    return json.loads(path.read_text(encoding="utf-8"))


def render(name: str, data_dir: Path = DATA) -> str:
    """The Markdown table of the record NAME, its caption below it."""
    data = load(name, data_dir)
    return _renderer(data)(data["bench"]) + "\n\n" + caption(data)


def fill_markers(markdown: str, data_dir: Path = DATA) -> str:
    """Every `<!-- perf-table: NAME -->` line replaced by render(NAME)."""
    return MARKER.sub(lambda m: render(m.group(1), data_dir), markdown)


def headline(name: str, data_dir: Path = DATA) -> str:
    """The README's table of the record NAME (a bench/cells.py float32 run):
    cells_summary at 1 thread (the steadiest figures on a shared machine; the
    manual's page has every thread count) with the caption."""
    data = load(name, data_dir)
    if _renderer(data) is not _cells_fp32:
        raise ValueError(f"{name}: the headline table is made from a float32 bench/cells.py record")
    return cells_summary(data["bench"], threads=1) + "\n\n" + caption(data)


def fill_headline(readme: str, data_dir: Path = DATA) -> str:
    """The README with its headline table (between the markers) made anew."""
    if not HEADLINE.search(readme):
        raise ValueError("no '<!-- headline-table: NAME -->' ... '<!-- /headline-table -->' block")
    return HEADLINE.sub(lambda m: m.group(1) + headline(m.group(2), data_dir) + "\n" + m.group(4), readme)


def main(argv: List[str]) -> int:
    if argv[:1] == ["record"] and len(argv) >= 4 and argv[2] == "--":
        print(record(argv[1], argv[3:]))
        return 0
    if argv[:1] == ["render"] and len(argv) == 2:
        print(render(argv[1]))
        return 0
    if argv[:1] == ["readme"]:
        check = "--check" in argv
        paths = [a for a in argv[1:] if a != "--check"]
        path = Path(paths[0]) if paths else ROOT / "README.md"
        text = path.read_text(encoding="utf-8")
        try:
            new = fill_headline(text)
        except (OSError, ValueError) as e:
            print(f"perf_tables: {path}: {e}", file=sys.stderr)
            return 1
        if check:
            if new != text:
                print(f"perf_tables: {path}'s headline table differs from its data; run "
                      "python tools/perf_tables.py readme", file=sys.stderr)
                return 1
            return 0
        path.write_text(new, encoding="utf-8")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
