"""Many-to-many with Tx = Ty (tagging): one label per input token.

Each sequence is a string of digits of random length; each digit is tagged
1 if the same digit occurs anywhere else in the sequence ("dup": needs what
came before *and* after, so a bidirectional layer) or, with --task seen, if
it occurred earlier ("seen": a left-to-right layer is enough).

    Embedding -> (bi)LSTM over the padded batch (lengths=) -> Linear at every step
              -> softmax cross-entropy, padded steps masked out of the loss

    python examples/tagging.py
    python examples/tagging.py --unidirectional        # "dup" needs both directions
    python examples/tagging.py --task seen --unidirectional
"""

from __future__ import annotations

import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from _common import Model, fit, logger, pad, parser, valid
from seqcore.nn import LSTM, Embedding, Linear, softmax_cross_entropy

DIGITS = 10  # tokens 1..10 are the digits 0..9; 0 is padding


def make_example(rng: np.random.Generator, min_len: int, max_len: int, task: str):
    """(tokens, tags): a digit string (token = digit + 1) and its 0/1 tags."""
    digits = rng.integers(0, DIGITS, rng.integers(min_len, max_len + 1))
    if task == "dup":  # occurs elsewhere in the sequence
        counts = np.bincount(digits, minlength=DIGITS)
        tags = (counts[digits] > 1).astype(np.int64)
    else:  # "seen": occurred at an earlier step
        tags = np.array([d in digits[:t] for t, d in enumerate(digits)], np.int64)
    return list(digits + 1), list(tags)


def make_batch(examples: Sequence) -> tuple:
    """-> ids (T, B), tags (T, B) (0 in padding), lengths (B,)."""
    ids, lengths = pad([x for x, _ in examples])
    tags, _ = pad([y for _, y in examples])
    return ids, tags, lengths


def build(hidden: int, embed: int, bidirectional: bool, seed: int) -> Model:
    rnn = LSTM(embed, hidden, bidirectional=bidirectional, seed=seed + 1)
    return Model(embed=Embedding(DIGITS + 1, embed, padding_idx=0, seed=seed),
                 rnn=rnn,
                 head=Linear(rnn.output_size, 2, seed=seed + 2))


def forward(model: Model, ids: np.ndarray, lengths: np.ndarray, train: bool) -> np.ndarray:
    """ids (T, B) -> logits (T, B, 2)."""
    x = model.embed.forward(ids, train=train)                          # (T, B, E)
    y, _ = model.rnn.forward(x, train=train, lengths=lengths)         # (T, B, dirs·H), zeros past the ends
    return model.head.forward(y, train=train)                          # (T, B, 2): the head at every step


def backward(model: Model, dlogits: np.ndarray) -> None:
    dy = model.head.backward(dlogits)
    dx = model.rnn.backward(dy)  # no gradient at the final state: the loss reads only y
    model.embed.backward(dx)


def evaluate(model: Model, examples: Sequence, batch_size: int = 500) -> Dict[str, float]:
    """Token accuracy over the real (unpadded) steps, and the share of
    sequences with every tag right."""
    right = counted = seqs_right = 0
    for i in range(0, len(examples), batch_size):
        ids, tags, lengths = make_batch(examples[i:i + batch_size])
        mask = valid(lengths, ids.shape[0])
        ok = (forward(model, ids, lengths, train=False).argmax(-1) == tags) | ~mask
        right += int((ok & mask).sum())
        counted += int(mask.sum())
        seqs_right += int(ok.all(axis=0).sum())
    return {"token_acc": right / counted, "seq_acc": seqs_right / len(examples)}


def main(argv: Optional[List[str]] = None) -> Dict[str, float]:
    p = parser(__doc__.splitlines()[0], steps=600, batch_size=64, hidden=48, lr=0.01)
    p.add_argument("--task", choices=("dup", "seen"), default="dup",
                   help="dup: tag digits that occur elsewhere; seen: tag digits seen before")
    p.add_argument("--unidirectional", action="store_true", help="a left-to-right LSTM only")
    p.add_argument("--min-len", type=int, default=4)
    p.add_argument("--max-len", type=int, default=16)
    p.add_argument("--embed", type=int, default=16)
    p.add_argument("--test-size", type=int, default=1000)
    args = p.parse_args(argv)
    log = logger(args.quiet)
    rng = np.random.default_rng(args.seed)
    test = [make_example(rng, args.min_len, args.max_len, args.task) for _ in range(args.test_size)]
    # chance: always answering the more frequent tag
    ones = np.mean(np.concatenate([y for _, y in test]))
    chance = float(max(ones, 1 - ones))
    model = build(args.hidden, args.embed, not args.unidirectional, args.seed)
    log(f"tagging ({args.task}): {'uni' if args.unidirectional else 'bi'}directional LSTM, "
        f"{model.num_params()} params, lengths {args.min_len}-{args.max_len}, majority tag {chance:.3f}")

    def step(_: int):
        ids, tags, lengths = make_batch([make_example(rng, args.min_len, args.max_len, args.task)
                                         for _ in range(args.batch_size)])
        mask = valid(lengths, ids.shape[0])
        logits = forward(model, ids, lengths, train=True)
        loss, dlogits = softmax_cross_entropy(logits, tags, mask=mask)  # padded steps count for nothing
        backward(model, dlogits)
        return loss, float((logits.argmax(-1) == tags)[mask].mean())

    start = time.perf_counter()
    fit(model, step, args.steps, args.lr, log_every=args.log_every, log=log)
    result = evaluate(model, test)
    result.update(chance=chance, seconds=time.perf_counter() - start)
    print(f"held-out tag accuracy {result['token_acc']:.4f} (majority tag {chance:.3f}), "
          f"sequences all right {result['seq_acc']:.3f}, {result['seconds']:.1f} s")
    return result


if __name__ == "__main__":
    main()
