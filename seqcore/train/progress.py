"""What a run shows while it trains, and how Ctrl-C stops it: a tqdm bar on
stderr (loss, tokens/s, time left), or without tqdm a line every 5% of the
steps (``Progress``); ``InterruptAtStepEnd`` lets the step in progress finish
on a first Ctrl-C. ``progress=False`` prints nothing."""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from typing import Callable, Optional

try:
    from tqdm import tqdm
except ImportError:  # the progress bar is optional: plain lines instead
    tqdm = None


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class Progress:
    """A tqdm bar on stderr, or without tqdm a line every ``every`` steps.
    ``unit``: what the speed counts ("tok/s"; "seq/s" for a classifier)."""

    def __init__(self, enabled: bool, total: int, initial: int, unit: str = "tok/s") -> None:
        self.enabled, self.total, self.initial, self.unit = enabled, total, initial, unit
        self.every = max(1, total // 20)
        self.started = time.perf_counter()
        self.bar = None
        if enabled and tqdm is not None:
            # redrawn up to 10 times a second on a terminal; every 10 s into a log file
            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, file=sys.stderr,
                            mininterval=0.1 if sys.stderr.isatty() else 10.0)

    def update(self, step: int, loss: Optional[float], tokens_per_s: float) -> None:
        if not self.enabled:
            return
        text = ("loss ?" if loss is None else f"loss {loss:.3f}") + f", {tokens_per_s:,.0f} {self.unit}"
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.update(step - self.bar.n)
        elif step % self.every == 0 or step == self.total:
            spent = time.perf_counter() - self.started
            left = spent / (step - self.initial) * (self.total - step) if step > self.initial else math.nan
            self.write(f"step {step}/{self.total}: {text}, {_duration(spent)} elapsed, {_duration(left)} left")

    def write(self, message: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class InterruptAtStepEnd:
    """While active (main thread only), a first Ctrl-C sets ``requested``
    instead of raising, so that the step in progress completes; a second one
    raises KeyboardInterrupt at once, or calls ``at_once`` when given (a
    data-parallel job aborts: one rank leaving its collectives would leave
    the others waiting)."""

    def __init__(self, at_once: Optional[Callable[[], None]] = None) -> None:
        self.requested = False
        self._previous = None
        self._at_once = at_once

    def _handler(self, signum, frame) -> None:
        if self.requested:
            if self._at_once is not None:
                self._at_once()
            raise KeyboardInterrupt
        self.requested = True
        # not through tqdm: a signal handler must not wait for the bar's lock
        sys.stderr.write("\nCtrl-C: stopping after this step (Ctrl-C again to stop at once)\n")

    def __enter__(self) -> "InterruptAtStepEnd":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
