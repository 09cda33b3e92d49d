"""Learning-rate schedules: the learning rate as a function of the step.

A schedule is a callable ``schedule(step) -> lr`` (step = optimizer steps
taken before this one, from 0). It holds no state, so a resumed run gets the
same learning rates from the step alone. The ``Trainer`` sets
``optimizer.lr = schedule(step)`` before each step; any callable of that shape
will do.

    Constant(2e-3)                          2e-3 at every step
    StepDecay(2e-3, every=1000, gamma=0.5)  halved every 1000 steps (torch's StepLR)
    Cosine(2e-3, total_steps=5000)          from 2e-3 down to min_lr along half a
                                            cosine (torch's CosineAnnealingLR), then flat

Every schedule keeps the learning rate > 0 (an optimizer refuses 0): Cosine
ends at ``min_lr``, by default lr / 100.
"""

from __future__ import annotations

import math
import numbers
from typing import Callable, Optional

Schedule = Callable[[int], float]

SCHEDULES = ("constant", "step", "cosine")


def _positive(name: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0 < v < math.inf:
        raise ValueError(f"{name}: expected a number > 0, got {v!r}")
    return float(v)


def _count(name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
        raise ValueError(f"{name}: expected an int >= 1, got {v!r}")
    return int(v)


class Constant:
    """lr at every step."""

    def __init__(self, lr: float) -> None:
        self.lr = _positive("lr", lr)

    def __call__(self, step: int) -> float:
        return self.lr

    def __repr__(self) -> str:
        return f"Constant(lr={self.lr})"


class StepDecay:
    """lr · gamma^(step // every): multiplied by ``gamma`` every ``every`` steps."""

    def __init__(self, lr: float, every: int, gamma: float = 0.5) -> None:
        self.lr, self.every = _positive("lr", lr), _count("every", every)
        self.gamma = _positive("gamma", gamma)

    def __call__(self, step: int) -> float:
        return self.lr * self.gamma ** (step // self.every)

    def __repr__(self) -> str:
        return f"StepDecay(lr={self.lr}, every={self.every}, gamma={self.gamma})"


class Cosine:
    """min_lr + (lr - min_lr) · (1 + cos(π · step / total_steps)) / 2 for
    step < total_steps, min_lr after; min_lr defaults to lr / 100."""

    def __init__(self, lr: float, total_steps: int, min_lr: Optional[float] = None) -> None:
        self.lr, self.total_steps = _positive("lr", lr), _count("total_steps", total_steps)
        self.min_lr = self.lr / 100 if min_lr is None else _positive("min_lr", min_lr)
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr: expected at most lr = {self.lr}, got {self.min_lr}")

    def __call__(self, step: int) -> float:
        progress = min(step, self.total_steps) / self.total_steps
        return self.min_lr + (self.lr - self.min_lr) * (1 + math.cos(math.pi * progress)) / 2

    def __repr__(self) -> str:
        return f"Cosine(lr={self.lr}, total_steps={self.total_steps}, min_lr={self.min_lr})"


def make_schedule(name: str, lr: float, total_steps: int) -> Schedule:
    """A schedule by name, for the command line: "constant"; "step" (halved
    at each quarter of ``total_steps``); "cosine" (down to lr / 100 at
    ``total_steps``)."""
    if name == "constant":
        return Constant(lr)
    if name == "step":
        return StepDecay(lr, every=max(1, total_steps // 4), gamma=0.5)
    if name == "cosine":
        return Cosine(lr, total_steps)
    raise ValueError(f"schedule: expected one of {list(SCHEDULES)}, got {name!r}")
