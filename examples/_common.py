"""What the task-shape examples share: a named container of layers, padded
batches of token ids, a training loop (Adam, clipping, cosine decay), and the
common command-line flags. Example code, not part of the seqcore API.

Every example builds its network from seqcore.nn layers and writes its own
forward and backward (there is no autograd): the shapes of the four tasks
differ only there.
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from seqcore.nn import Layer
from seqcore.train import Adam, clip_by_global_norm


class Model(Layer):
    """Named layers as one Layer: ``params``/``grads`` under "<name>.<param>"
    ("encoder.weight_ih_l0"), so one optimiser and one ``zero_grad`` cover all
    of them. The layers are attributes: ``model.encoder``."""

    def __init__(self, **layers: Layer) -> None:
        super().__init__()
        self.layers: Dict[str, Layer] = dict(layers)

    def children(self) -> Iterator[Tuple[str, Layer]]:
        return iter(self.layers.items())

    def __getattr__(self, name: str) -> Layer:
        layers = self.__dict__.get("layers", {})
        if name in layers:
            return layers[name]
        raise AttributeError(name)


# ---------------------------------------------------------------------------
# padded batches


def pad(seqs: Sequence[Sequence[int]], pad_id: int = 0, T: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """B token sequences -> ids (T, B) int64, time-major, ``pad_id`` past each
    end, and lengths (B,) int64. T defaults to the longest sequence."""
    lengths = np.array([len(s) for s in seqs], np.int64)
    T = int(lengths.max()) if T is None else T
    ids = np.full((T, len(seqs)), pad_id, np.int64)
    for b, s in enumerate(seqs):
        ids[:len(s), b] = s
    return ids, lengths


def valid(lengths: np.ndarray, T: int) -> np.ndarray:
    """(T, B) bool: True at the steps inside each sequence."""
    return np.arange(T)[:, None] < lengths[None, :]


# ---------------------------------------------------------------------------
# training


def fit(model: Layer, step: Callable[[int], Tuple[float, float]], steps: int, lr: float,
          clip: float = 1.0, log_every: int = 100, log: Callable[[str], None] = print,
          evaluate: Optional[Callable[[], Dict[str, float]]] = None) -> List[Tuple[int, float, float]]:
    """Adam on ``model`` for ``steps`` steps, lr decaying from ``lr`` to lr/10
    along a cosine, gradients clipped to global norm ``clip``.

    ``step(i)`` runs one batch forward and backward (accumulating into
    model.grads, zeroed before each call) and returns (loss, accuracy) of that
    batch. Every ``log_every`` steps the running means are logged, with the
    metrics of ``evaluate()`` when given. Returns the logged
    (step, loss, accuracy).
    """
    opt = Adam(model, lr=lr)
    start, history = time.perf_counter(), []
    loss_sum = acc_sum = 0.0
    n = 0
    for i in range(1, steps + 1):
        opt.lr = lr * (0.1 + 0.45 * (1 + math.cos(math.pi * (i - 1) / steps)))
        model.zero_grad()
        loss, acc = step(i)
        clip_by_global_norm(model.grads, clip)
        opt.step()
        loss_sum, acc_sum, n = loss_sum + loss, acc_sum + acc, n + 1
        if i % log_every == 0 or i == steps:
            history.append((i, loss_sum / n, acc_sum / n))
            extra = "".join(f"  {k} {v:.3f}" for k, v in (evaluate() if evaluate else {}).items())
            log(f"step {i:5d}/{steps}  loss {loss_sum / n:.4f}  train acc {acc_sum / n:.3f}{extra}"
                f"  ({time.perf_counter() - start:.1f} s)")
            loss_sum = acc_sum = 0.0
            n = 0
    return history


def parser(description: str, steps: int, batch_size: int, hidden: int, lr: float) -> argparse.ArgumentParser:
    """The flags every example has, with its own defaults."""
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--seed", type=int, default=0, help="seeds the data and the initial weights")
    p.add_argument("--steps", type=int, default=steps, help="training steps (batches)")
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--hidden", type=int, default=hidden, help="hidden units of each recurrent layer")
    p.add_argument("--lr", type=float, default=lr, help="Adam's initial learning rate")
    p.add_argument("--log-every", type=int, default=100, help="steps between progress lines")
    p.add_argument("--quiet", action="store_true", help="print only the final result")
    return p


def logger(quiet: bool) -> Callable[[str], None]:
    return (lambda s: None) if quiet else (lambda s: print(s, flush=True))
