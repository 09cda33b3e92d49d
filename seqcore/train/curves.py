"""The loss curve of a run, as files: ``loss.csv`` (step, train_loss,
val_loss, tokens_per_s, elapsed_s, lr, val_accuracy; ``write_loss_csv`` /
``read_loss_csv``) and, when matplotlib is importable (the "plot" extra),
``loss.png`` (``write_loss_plot``). The Trainer writes both with each
checkpoint and reads the CSV back when it resumes."""

from __future__ import annotations

import csv
import io
from typing import Any, Dict, List, Sequence

from .._atomic import atomic_write

LOSS_CSV, LOSS_PNG = "loss.csv", "loss.png"
CSV_COLUMNS = ("step", "train_loss", "val_loss", "tokens_per_s", "elapsed_s", "lr", "val_accuracy")


def write_loss_csv(path: str, history: Sequence[Dict[str, Any]]) -> None:
    """``history`` rows as CSV with the columns ``CSV_COLUMNS`` (an empty
    cell where a row has no value), written atomically."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in history:
        writer.writerow(["" if row.get(k) is None else (f"{row[k]:.6g}" if isinstance(row[k], float) else row[k])
                         for k in CSV_COLUMNS])
    atomic_write(path, lambda f: f.write(buf.getvalue()), text=True)


def read_loss_csv(path: str) -> List[Dict[str, Any]]:
    """The rows ``write_loss_csv`` wrote (numbers, None for empty cells)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [{k: (None if not row.get(k) else (int(row[k]) if k == "step" else float(row[k])))
             for k in CSV_COLUMNS} for row in rows]


def write_loss_plot(path: str, history: Sequence[Dict[str, Any]]) -> bool:
    """The training and validation loss against the step, as a PNG, when
    matplotlib is importable (the "plot" extra); returns whether it wrote one.
    Uses matplotlib's object API, so pyplot's global state is left alone."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return False
    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.add_subplot()
    for key, label in (("train_loss", "train"), ("val_loss", "validation")):
        points = [(r["step"], r[key]) for r in history if r.get(key) is not None]
        if points:
            ax.plot(*zip(*points), label=label, marker="o" if key == "val_loss" else None, markersize=3)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png"))
    return True
