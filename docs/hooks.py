"""MkDocs hook: the performance tables are made at build time from the
benches' JSON records (tools/perf_tables.py), so no page holds a figure
typed by hand. A marker naming a record that does not exist fails the build."""

import importlib.util
from pathlib import Path

from mkdocs.exceptions import PluginError

_spec = importlib.util.spec_from_file_location(
    "perf_tables", Path(__file__).resolve().parents[1] / "tools" / "perf_tables.py")
perf_tables = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(perf_tables)


def on_page_markdown(markdown, page, config, files):
    """Replace each `<!-- perf-table: NAME -->` line by NAME's table."""
    try:
        return perf_tables.fill_markers(markdown)
    except (OSError, ValueError, KeyError) as e:  # a missing or malformed record: the build fails, naming it
        raise PluginError(f"{page.file.src_path}: {e}") from None
