"""Padded batches for the reference: which time step each row runs at each
iteration.

The cells run iterations s = 0 … T-1. Row b runs time step t = s forward, or
t = lengths[b] − 1 − s in reverse (each sequence from its own end), while
s < lengths[b]; past its end the row is inactive: its state is carried and
its outputs are zero.
"""

import numpy as np


def iteration_times(T, B, lengths=None, reverse=False):
    """(T, B) int array: the time step row b runs at iteration s, -1 when inactive."""
    lengths = np.full(B, T, dtype=np.int64) if lengths is None else np.asarray(lengths, dtype=np.int64)
    s = np.arange(T)[:, None]
    times = lengths[None, :] - 1 - s if reverse else np.broadcast_to(s, (T, B)).copy()
    return np.where(s < lengths[None, :], times, -1)


def gather(a, times):
    """a (T, B, ...) by time -> (T, B, ...) by iteration; zeros where inactive."""
    B = a.shape[1]
    out = a[np.maximum(times, 0), np.arange(B)[None, :]]
    out[times < 0] = 0
    return out


def scatter(a, times):
    """a (T, B, ...) by iteration -> (T, B, ...) by time; zeros at padded steps."""
    out = np.zeros_like(a)
    s, b = np.nonzero(times >= 0)
    out[times[s, b], b] = a[s, b]
    return out
