"""Many-to-one (classification): one label per variable-length sequence.

Each sequence mixes the tokens "a" and "b" with distractors; the label says
which of "a" and "b" occurs more often (never a tie). The classifier reads
either the LSTM's final state, taken at each sequence's own last step
(--pool last), or the mean of its outputs over the real steps (--pool mean).

    Embedding -> LSTM over the padded batch (lengths=) -> last state or mean
              -> Linear -> softmax cross-entropy

    python examples/classification.py
    python examples/classification.py --pool mean
    python examples/classification.py --bidirectional
"""

from __future__ import annotations

import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from _common import Model, fit, logger, pad, parser, valid
from seqcore.nn import LSTM, Embedding, Linear, softmax_cross_entropy

A, B_TOKEN = 1, 2  # tokens 3..VOCAB-1 are distractors; 0 is padding
VOCAB = 8


def make_example(rng: np.random.Generator, min_len: int, max_len: int):
    """(tokens, label): label 1 when "a" occurs more often than "b", else 0."""
    while True:
        tokens = rng.integers(1, VOCAB, rng.integers(min_len, max_len + 1))
        a, b = int((tokens == A).sum()), int((tokens == B_TOKEN).sum())
        if a != b:
            return list(tokens), int(a > b)


def build(hidden: int, embed: int, bidirectional: bool, seed: int) -> Model:
    rnn = LSTM(embed, hidden, bidirectional=bidirectional, seed=seed + 1)
    return Model(embed=Embedding(VOCAB, embed, padding_idx=0, seed=seed),
                 rnn=rnn,
                 head=Linear(rnn.output_size, 2, seed=seed + 2))


class Classifier:
    """The forward and backward of the whole network, for one pooling."""

    def __init__(self, model: Model, pool: str) -> None:
        self.model, self.pool = model, pool
        self._saved = None

    def forward(self, ids: np.ndarray, lengths: np.ndarray, train: bool) -> np.ndarray:
        """ids (T, B) -> logits (B, 2)."""
        m = self.model
        x = m.embed.forward(ids, train=train)                          # (T, B, E)
        y, (h, _) = m.rnn.forward(x, train=train, lengths=lengths)    # y (T, B, F); h (dirs, B, H)
        if self.pool == "last":
            # each direction's state at the end of its own pass: the forward one at
            # step lengths-1, the reverse one at step 0; concatenated as y's features
            feats = np.concatenate(list(h), axis=1)                    # (B, dirs·H)
        else:
            # padded steps output zeros: the sum over T is the sum over the real steps
            feats = y.sum(axis=0) / lengths[:, None].astype(y.dtype)  # (B, F)
        self._saved = (y.shape, h.shape, lengths) if train else None
        return m.head.forward(feats, train=train)

    def backward(self, dlogits: np.ndarray) -> None:
        m = self.model
        (T, B, F), hshape, lengths = self._saved
        dfeats = m.head.backward(dlogits)                              # (B, F)
        if self.pool == "last":
            dy = np.zeros((T, B, F), dfeats.dtype)                     # the outputs are not read
            dh = np.stack(np.split(dfeats, hshape[0], axis=1))         # (dirs, B, H)
            dx = m.rnn.backward(dy, (dh, np.zeros_like(dh)))           # dstate (dh, dc)
        else:
            mask = valid(lengths, T)[:, :, None]
            dy = np.where(mask, dfeats / lengths[:, None].astype(dfeats.dtype), 0).astype(dfeats.dtype)
            dx = m.rnn.backward(dy)
        m.embed.backward(dx)


def evaluate(net: Classifier, examples: Sequence, batch_size: int = 500) -> float:
    right = 0
    for i in range(0, len(examples), batch_size):
        chunk = examples[i:i + batch_size]
        ids, lengths = pad([x for x, _ in chunk])
        labels = np.array([y for _, y in chunk])
        right += int((net.forward(ids, lengths, train=False).argmax(-1) == labels).sum())
    return right / len(examples)


def main(argv: Optional[List[str]] = None) -> Dict[str, float]:
    p = parser(__doc__.splitlines()[0], steps=500, batch_size=64, hidden=32, lr=0.01)
    p.add_argument("--pool", choices=("last", "mean"), default="last",
                   help="classify from the final state or from the mean of the outputs")
    p.add_argument("--bidirectional", action="store_true")
    p.add_argument("--min-len", type=int, default=5)
    p.add_argument("--max-len", type=int, default=30)
    p.add_argument("--embed", type=int, default=8)
    p.add_argument("--test-size", type=int, default=2000)
    args = p.parse_args(argv)
    log = logger(args.quiet)
    rng = np.random.default_rng(args.seed)
    test = [make_example(rng, args.min_len, args.max_len) for _ in range(args.test_size)]
    chance = 0.5  # labels are symmetric in "a" and "b"
    net = Classifier(build(args.hidden, args.embed, args.bidirectional, args.seed), args.pool)
    log(f"classification (pool {args.pool}): {'bi' if args.bidirectional else 'uni'}directional LSTM, "
        f"{net.model.num_params()} params, lengths {args.min_len}-{args.max_len}, chance {chance}")

    def step(_: int):
        batch = [make_example(rng, args.min_len, args.max_len) for _ in range(args.batch_size)]
        ids, lengths = pad([x for x, _ in batch])
        labels = np.array([y for _, y in batch])
        logits = net.forward(ids, lengths, train=True)
        loss, dlogits = softmax_cross_entropy(logits, labels)
        net.backward(dlogits)
        return loss, float((logits.argmax(-1) == labels).mean())

    start = time.perf_counter()
    fit(net.model, step, args.steps, args.lr, log_every=args.log_every, log=log)
    result = {"accuracy": evaluate(net, test), "chance": chance, "seconds": time.perf_counter() - start}
    print(f"held-out accuracy {result['accuracy']:.4f} (chance {chance}), {result['seconds']:.1f} s")
    return result


if __name__ == "__main__":
    main()
