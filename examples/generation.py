"""One-to-many (generation): a whole sequence from one input.

The input is a pair (start s, step k), given as one vector (one-hot s next to
one-hot k); the output is the digit sequence s, s+k, s+2k, ... (mod 10).
Every later digit follows from the one before and k, so the network must
carry k in its state all along. The input enters either through a Linear into
the LSTM's initial state (--condition state) or as the input at step 0
(--condition input).

Training uses teacher forcing: the decoder reads <sos> and then the true
previous digit. Generation is greedy, one step at a time from the model's
own previous output (forward with train=False on T=1, the state carried),
and scored on all 90 inputs: with one categorical input there is nothing
unseen to hold out (held-out (s, k) pairs are not learned from the others:
the network learns each pair's sequence, not the rule).

    python examples/generation.py
    python examples/generation.py --condition input
"""

from __future__ import annotations

import time
from typing import Dict, List, Optional

import numpy as np

from _common import Model, fit, logger, parser
from seqcore.nn import LSTM, Embedding, Linear, softmax_cross_entropy

DIGITS = 10
SOS = DIGITS          # decoder input tokens: the digits 0..9 and <sos>
FEATURES = 2 * DIGITS  # one-hot start, one-hot step


PAIRS = [(s, k) for s in range(DIGITS) for k in range(1, DIGITS)]  # the 90 inputs


def encode(batch, length: int):
    """(s, k) pairs -> condition vectors (B, 20) float32 and targets (L, B) int64."""
    cond = np.zeros((len(batch), FEATURES), np.float32)
    s, k = np.array(batch).T
    cond[np.arange(len(batch)), s] = 1
    cond[np.arange(len(batch)), DIGITS + k] = 1
    targets = (s[None, :] + np.arange(length)[:, None] * k[None, :]) % DIGITS
    return cond, targets.astype(np.int64)


class Generator:
    """Condition -> LSTM decoder -> Linear over the digits, forward and backward."""

    def __init__(self, hidden: int, embed: int, condition: str, seed: int) -> None:
        self.condition, self.H = condition, hidden
        layers = dict(embed=Embedding(DIGITS + 1, embed, seed=seed),
                      rnn=LSTM(embed, hidden, seed=seed + 1),
                      head=Linear(hidden, DIGITS, seed=seed + 2))
        if condition == "state":  # -> (h0, c0) = (tanh(z[:, :H]), z[:, H:])
            layers["init"] = Linear(FEATURES, 2 * hidden, seed=seed + 3)
        else:                     # -> the input at step 0, in place of <sos>'s embedding
            layers["init"] = Linear(FEATURES, embed, seed=seed + 3)
        self.model = Model(**layers)
        self._h0 = None

    def start(self, cond: np.ndarray, train: bool):
        """-> (initial state or None, x0 (1, B, E) or None)."""
        z = self.model.init.forward(cond, train=train)
        if self.condition == "state":
            h0 = np.tanh(z[:, :self.H])
            self._h0 = h0 if train else None
            return (h0[None], np.ascontiguousarray(z[None, :, self.H:])), None
        return None, z[None]

    def forward(self, cond: np.ndarray, inputs: np.ndarray, train: bool = True) -> np.ndarray:
        """Teacher forcing: cond (B, 20), inputs (L, B) = <sos>, y_0, …, y_{L-2} -> logits (L, B, 10)."""
        m = self.model
        state, x0 = self.start(cond, train)
        x = m.embed.forward(inputs, train=train)            # (L, B, E)
        if x0 is not None:
            x = np.concatenate([x0, x[1:]])                 # step 0 reads the condition
        y, _ = m.rnn.forward(x, state, train=train)
        return m.head.forward(y, train=train)

    def backward(self, dlogits: np.ndarray) -> None:
        m = self.model
        dx = m.rnn.backward(m.head.backward(dlogits))
        if self.condition == "state":
            dh0, dc0 = m.rnn.state_grad                      # each (1, B, H)
            dz = np.concatenate([dh0[0] * (1 - self._h0 ** 2), dc0[0]], axis=1)
        else:
            dz, dx = dx[0], dx.copy()
            dx[0] = 0                                        # step 0 read the condition, no embedding
        m.init.backward(dz)
        m.embed.backward(dx)

    def generate(self, cond: np.ndarray, length: int) -> np.ndarray:
        """Greedy: cond (B, 20) -> digits (L, B), each step fed the previous output."""
        m = self.model
        state, x = self.start(cond, train=False)
        if x is None:
            x = m.embed.forward(np.full((1, len(cond)), SOS), train=False)
        out = []
        for _ in range(length):
            y, state = m.rnn.forward(x, state, train=False)  # one step, (1, B, H)
            token = m.head.forward(y, train=False).argmax(-1)   # (1, B)
            out.append(token[0])
            x = m.embed.forward(token, train=False)
        return np.stack(out)


def exact(gen: Generator, batch, length: int) -> float:
    """Share of pairs whose whole generated sequence is right."""
    cond, targets = encode(batch, length)
    return float((gen.generate(cond, length) == targets).all(axis=0).mean())


def main(argv: Optional[List[str]] = None) -> Dict[str, float]:
    p = parser(__doc__.splitlines()[0], steps=400, batch_size=32, hidden=64, lr=0.01)
    p.add_argument("--condition", choices=("state", "input"), default="state",
                   help="the input enters through the initial state or at step 0")
    p.add_argument("--length", type=int, default=10, help="digits to generate")
    p.add_argument("--embed", type=int, default=16)
    args = p.parse_args(argv)
    log = logger(args.quiet)
    rng = np.random.default_rng(args.seed)
    gen = Generator(args.hidden, args.embed, args.condition, args.seed)
    chance = DIGITS ** -args.length  # guessing a whole sequence
    log(f"generation (condition via {args.condition}): {gen.model.num_params()} params, "
        f"{len(PAIRS)} inputs (s, k), length {args.length}")

    def step(_: int):
        batch = [PAIRS[i] for i in rng.integers(0, len(PAIRS), args.batch_size)]
        cond, targets = encode(batch, args.length)
        inputs = np.concatenate([np.full((1, len(batch)), SOS), targets[:-1]])  # teacher forcing
        logits = gen.forward(cond, inputs)
        loss, dlogits = softmax_cross_entropy(logits, targets)
        gen.backward(dlogits)
        return loss, float((logits.argmax(-1) == targets).mean())

    start = time.perf_counter()
    fit(gen.model, step, args.steps, args.lr, log_every=args.log_every, log=log,
          evaluate=lambda: {"greedy exact": exact(gen, PAIRS, args.length)})
    result = {"exact": exact(gen, PAIRS, args.length), "chance": chance, "seconds": time.perf_counter() - start}
    shown = [PAIRS[i] for i in rng.choice(len(PAIRS), 3, replace=False)]
    for (s, k), seq in zip(shown, gen.generate(encode(shown, args.length)[0], args.length).T):
        log(f"  s={s} k={k} -> {''.join(map(str, seq))}")
    print(f"greedy exact-sequence accuracy {result['exact']:.3f} over the {len(PAIRS)} inputs "
          f"(chance 1e-{args.length}), {result['seconds']:.1f} s")
    return result


if __name__ == "__main__":
    main()
