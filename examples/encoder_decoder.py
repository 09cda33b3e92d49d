"""Encoder–decoder with Tx ≠ Ty: a digit string in, another out.

--task add:     "37+85" -> "122"   (numbers below 10^--digits)
--task reverse: "30418" -> "81403" (--min-len to --max-len digits)

The encoder LSTM reads the source (a padded batch, lengths=); its final
state, taken at each source's own end, is the decoder LSTM's initial state.
For addition the encoder reads the source right to left, units first, as
Sutskever et al. (2014) and Keras' addition example do: the digits the
decoder needs first were then read last (--forward-source reads it left to
right; that learns more slowly).
Training uses teacher forcing: the decoder reads <sos> and then the true
previous target token, and is scored on the target followed by <eos>
(padded steps masked out). The gradient at the decoder's initial state
(decoder.state_grad) goes into encoder.backward as dstate.

At inference the decoder runs one step at a time (forward with train=False
on T=1, the state carried) on its own greedy outputs until <eos>. The
result is the share of held-out sources (never trained on) whose whole
output is right.

    python examples/encoder_decoder.py
    python examples/encoder_decoder.py --task reverse
    python examples/encoder_decoder.py --layers 2
"""

from __future__ import annotations

import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from _common import Model, fit, logger, pad, parser, valid
from seqcore.nn import LSTM, Embedding, Linear, softmax_cross_entropy

PAD, SOS, EOS = 0, 1, 2
SYMBOLS = "+0123456789"  # tokens 3.. in this order
VOCAB = 3 + len(SYMBOLS)
TOKEN = {ch: 3 + i for i, ch in enumerate(SYMBOLS)}


def tokens(text: str) -> List[int]:
    return [TOKEN[ch] for ch in text]


def text(ids: Sequence[int]) -> str:
    """Token ids up to the first <eos> -> the string they spell."""
    out = []
    for i in ids:
        if i == EOS:
            break
        out.append(SYMBOLS[i - 3] if i >= 3 else "?")
    return "".join(out)


def make_problem(rng: np.random.Generator, task: str, digits: int, min_len: int, max_len: int) -> Tuple[str, str]:
    """(source, target) strings."""
    if task == "add":
        a, b = (int(n) for n in rng.integers(0, 10 ** digits, 2))
        return f"{a}+{b}", str(a + b)
    src = "".join(map(str, rng.integers(0, 10, rng.integers(min_len, max_len + 1))))
    return src, src[::-1]


def build(hidden: int, embed: int, layers: int, seed: int, dtype=np.float32) -> Model:
    """Encoder and decoder of the same depth, so the state passes layer for layer."""
    return Model(src_embed=Embedding(VOCAB, embed, padding_idx=PAD, dtype=dtype, seed=seed),
                 encoder=LSTM(embed, hidden, num_layers=layers, dtype=dtype, seed=seed + 1),
                 tgt_embed=Embedding(VOCAB, embed, padding_idx=PAD, dtype=dtype, seed=seed + 2),
                 decoder=LSTM(embed, hidden, num_layers=layers, dtype=dtype, seed=seed + 3),
                 head=Linear(hidden, VOCAB, dtype=dtype, seed=seed + 4))


def encode(model: Model, sources: Sequence[str], backwards: bool, train: bool):
    """Sources -> the encoder's final state (h, c), each (layers, B, H), and
    the source steps; ``backwards`` reads each source right to left."""
    src, src_len = pad([tokens(s[::-1] if backwards else s) for s in sources], PAD)
    _, state = model.encoder.forward(model.src_embed.forward(src, train=train), train=train, lengths=src_len)
    return state, src.shape[0]


def train_step(model: Model, problems: Sequence[Tuple[str, str]], backwards: bool) -> Tuple[float, float]:
    """Teacher forcing on one batch: forward, loss, backward through decoder and encoder."""
    m = model
    state, Ts = encode(m, [s for s, _ in problems], backwards, train=True)
    targets, tgt_len = pad([tokens(t) + [EOS] for _, t in problems], PAD)  # (Ty, B)
    inputs, _ = pad([[SOS] + tokens(t) for _, t in problems], PAD)        # targets shifted right
    y, _ = m.decoder.forward(m.tgt_embed.forward(inputs), state, lengths=tgt_len)
    logits = m.head.forward(y)                                           # (Ty, B, V)
    mask = valid(tgt_len, targets.shape[0])
    loss, dlogits = softmax_cross_entropy(logits, targets, mask=mask)

    m.tgt_embed.backward(m.decoder.backward(m.head.backward(dlogits)))
    # the encoder's outputs are not read: only its final state, through the decoder
    dy_enc = np.zeros((Ts, len(problems), m.encoder.output_size), m.encoder.dtype)
    m.src_embed.backward(m.encoder.backward(dy_enc, dstate=m.decoder.state_grad))
    return loss, float((logits.argmax(-1) == targets)[mask].mean())


def translate(model: Model, sources: Sequence[str], backwards: bool, max_steps: int) -> List[str]:
    """Greedy decoding, one step at a time from the model's own outputs."""
    m = model
    state, _ = encode(m, sources, backwards, train=False)
    token = np.full((1, len(sources)), SOS)
    out = []
    done = np.zeros(len(sources), bool)
    for _ in range(max_steps):
        y, state = m.decoder.forward(m.tgt_embed.forward(token, train=False), state, train=False)
        token = m.head.forward(y, train=False).argmax(-1)               # (1, B)
        out.append(token[0])
        done |= token[0] == EOS
        if done.all():
            break
    return [text(seq) for seq in np.stack(out, axis=1)]


def exact(model: Model, problems: Sequence[Tuple[str, str]], backwards: bool, max_steps: int,
          batch_size: int = 500) -> float:
    """Share of problems whose whole greedy output is right."""
    right = 0
    for i in range(0, len(problems), batch_size):
        chunk = problems[i:i + batch_size]
        outputs = translate(model, [s for s, _ in chunk], backwards, max_steps)
        right += sum(out == t for out, (_, t) in zip(outputs, chunk))
    return right / len(problems)


def main(argv: Optional[List[str]] = None) -> Dict[str, float]:
    p = parser(__doc__.splitlines()[0], steps=1500, batch_size=64, hidden=128, lr=0.01)
    p.add_argument("--task", choices=("add", "reverse"), default="add")
    p.add_argument("--digits", type=int, default=2, help="add: numbers in [0, 10^digits)")
    p.add_argument("--forward-source", action="store_true", help="add: read the source left to right")
    p.add_argument("--min-len", type=int, default=3, help="reverse: shortest source")
    p.add_argument("--max-len", type=int, default=8, help="reverse: longest source")
    p.add_argument("--layers", type=int, default=1, help="stacked layers of the encoder and of the decoder")
    p.add_argument("--embed", type=int, default=16)
    p.add_argument("--test-size", type=int, default=1000)
    args = p.parse_args(argv)
    log = logger(args.quiet)
    rng = np.random.default_rng(args.seed)
    backwards = args.task == "add" and not args.forward_source

    def problem():
        return make_problem(rng, args.task, args.digits, args.min_len, args.max_len)

    test = {}
    while len(test) < args.test_size:
        s, t = problem()
        test[s] = t
    test = list(test.items())
    held_out = {s for s, _ in test}
    max_steps = max(len(t) for _, t in test) + 2
    model = build(args.hidden, args.embed, args.layers, args.seed)
    log(f"encoder-decoder ({args.task}): {args.layers}-layer LSTMs, {model.num_params()} params; "
        f"held out {len(test)} sources, e.g. {test[0][0]} -> {test[0][1]}")

    def step(_: int):
        batch = []
        while len(batch) < args.batch_size:
            s, t = problem()
            if s not in held_out:
                batch.append((s, t))
        return train_step(model, batch, backwards)

    start = time.perf_counter()
    probe = test[:200]
    fit(model, step, args.steps, args.lr, log_every=args.log_every, log=log,
          evaluate=lambda: {"greedy exact (200 held out)": exact(model, probe, backwards, max_steps)})
    result = {"exact": exact(model, test, backwards, max_steps), "seconds": time.perf_counter() - start}
    for (s, t), out in zip(test[:4], translate(model, [s for s, _ in test[:4]], backwards, max_steps)):
        log(f"  {s:>12} -> {out:<10} ({'right' if out == t else 'expected ' + t})")
    print(f"held-out exact-sequence accuracy {result['exact']:.3f} ({len(test)} sources), "
          f"{result['seconds']:.1f} s")
    return result


if __name__ == "__main__":
    main()
