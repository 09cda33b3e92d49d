"""Dinosaurus Island: a character-level vanilla RNN that learns to make up
dinosaur names, as the course's exercise does.

The course's model and training, on seqcore: one-hot characters (27 symbols:
a–z and the end of a name) -> RNN with 50 tanh units -> linear -> softmax;
one name per step, SGD at lr 0.01 on the loss summed over the name's
characters, every gradient clipped to [-5, 5]. A name is read from the start
symbol and predicts its own characters, then the end:

    x = <eos> d i n o      (<eos> stands for the course's "\\n", both ends)
    y = d i n o <eos>

Every 2,000 iterations it prints the smoothed loss (the course's:
loss = 0.999·loss + 0.001·cur_loss, starting from -ln(1/27)·7, about the
loss of 7 characters guessed uniformly) and a few names sampled from the
model. Names are shuffled once (seeded) and read in turn. One difference
from the course: each name starts from a zero state, as sampling does, not
from the state the previous name ended with.

    python examples/dinosaurs.py                 # 35,000 iterations
    python examples/dinosaurs.py --iterations 5000 --data path/to/dinos.txt
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

import seqcore
from seqcore.generate import sample
from seqcore.nn import LanguageModel, softmax_cross_entropy
from seqcore.text import Vocabulary
from seqcore.train import SGD, clip_by_value, evaluate

# ../shared/data/ beside the project's root (see its README); not copied in
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dinos.txt"
LETTERS = "abcdefghijklmnopqrstuvwxyz"
NAMES_SHOWN = 7      # names sampled at each report, and the 7 of the initial smoothed loss
MAX_NAME = 50        # the course cuts a sampled name at 50 characters


def load_names(path: Path) -> List[str]:
    """The names of ``path``, one a line, lower-cased; a clear error when the
    file is missing or holds other characters than a–z."""
    if not path.is_file():
        raise FileNotFoundError(f"--data: {path} not found; the data lives in ../shared/data/ beside the "
                                f"project's root (see its README), or give --data PATH")
    names = [line.strip() for line in path.read_text(encoding="utf-8").lower().splitlines() if line.strip()]
    odd = sorted(set("".join(names)) - set(LETTERS))
    if odd:
        raise ValueError(f"--data: {path}: expected names of the letters a–z only, found {odd[:10]}")
    return names


def vocabulary() -> Vocabulary:
    """27 symbols: <eos> (id 0, the course's "\\n": the start and the end of a
    name) and a–z."""
    return Vocabulary(list(LETTERS), level="char", specials=("<eos>",))


def sample_names(model: LanguageModel, vocab: Vocabulary, n: int, seed) -> List[str]:
    """n names drawn from the model, each from <eos> until <eos> (at most 50 characters)."""
    rng = np.random.default_rng(seed)
    return [sample(model, vocab, MAX_NAME, seed=rng) for _ in range(n)]


def gradient_check(model: LanguageModel, x: np.ndarray, y: np.ndarray) -> seqcore.GradcheckResult:
    """The course's gradient check, before training: the model's backward on
    one name against central differences, on a float64 twin of the model
    (float32 differences are too coarse to check anything)."""
    twin = LanguageModel(**dict(model.config(), dtype="float64", dropout=0.0))
    twin.load_state_dict(model.state_dict())
    _, dlogits = softmax_cross_entropy(twin.forward(x)[0], y, reduction="sum")
    check = seqcore.gradcheck(twin, x, dlogits)
    print(f"gradient check (float64, one name): {check}", flush=True)
    if not check:
        raise RuntimeError(f"the model's backward does not match central differences: {check}")
    return check


def train(args: argparse.Namespace) -> Dict[str, Any]:
    """The training loop of ``main``, at the threads already set."""
    names = load_names(args.data)
    vocab = vocabulary()
    V = len(vocab)
    # x = <eos> + name, y = name + <eos>: (T, 1) columns, T = len(name) + 1
    order = np.random.default_rng(args.seed).permutation(len(names))
    encoded = [vocab.encode(names[i]) for i in order]
    pairs = []
    for name in encoded:
        ids = np.concatenate(([vocab.eos_id], name, [vocab.eos_id]))
        pairs.append((ids[:-1, None], ids[1:, None]))

    model = LanguageModel(V, embed_size=0, hidden_size=args.hidden, num_layers=1, cell="rnn", seed=args.seed)
    optimizer = SGD(model, lr=args.lr)
    print(f"dinosaurs: {len(names)} names, {V} symbols (<eos> and a–z), RNN {V}→{args.hidden}→{V} one-hot, "
          f"{model.num_params()} params; SGD lr {args.lr:g}, clip ±{args.clip:g}; {args.iterations} iterations",
          flush=True)
    check = gradient_check(model, *pairs[0])

    # nats per character over all the names (framed by <eos> as in training)
    initial_char_loss = evaluate(model, encoded, batch_size=256, vocab=vocab).loss
    initial = -math.log(1.0 / V) * NAMES_SHOWN
    smooth = initial
    history = []
    start = time.perf_counter()
    for j in range(args.iterations):
        x, y = pairs[j % len(pairs)]
        logits, _ = model.forward(x)                                           # (T, 1, V), from a zero state
        cur_loss, dlogits = softmax_cross_entropy(logits, y, reduction="sum")  # nats per name, as the course
        model.zero_grad()
        model.backward(dlogits)
        clip_by_value(model.grads, args.clip)
        optimizer.step()
        smooth = 0.999 * smooth + 0.001 * cur_loss
        if j % args.print_every == 0:
            history.append((j, smooth))
            print(f"Iteration: {j}, Loss: {smooth:.6f}  ({time.perf_counter() - start:.1f} s)")
            print("\n".join(sample_names(model, vocab, NAMES_SHOWN, seed=[args.seed, j])) + "\n", flush=True)
    seconds = time.perf_counter() - start
    history.append((args.iterations, smooth))

    final = sample_names(model, vocab, NAMES_SHOWN, seed=[args.seed, args.iterations])
    char_loss = evaluate(model, encoded, batch_size=256, vocab=vocab).loss
    print(f"final smoothed loss {smooth:.6f} (initial {initial:.6f}) after {args.iterations} iterations, "
          f"{seconds:.1f} s; over all names {char_loss:.4f} nats/char (before training {initial_char_loss:.4f})")
    print("\n".join(final), flush=True)
    return {"initial_loss": initial, "loss": smooth, "initial_char_loss": initial_char_loss,
            "char_loss": char_loss, "iterations": args.iterations, "seconds": seconds, "samples": final,
            "history": history, "gradcheck": check.error}


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", type=Path, default=DATA, help="the names, one a line")
    p.add_argument("--iterations", type=int, default=35000, help="training steps, one name each")
    p.add_argument("--hidden", type=int, default=50, help="hidden units of the RNN")
    p.add_argument("--lr", type=float, default=0.01, help="SGD's learning rate")
    p.add_argument("--clip", type=float, default=5.0, help="every gradient entry is clipped to [-clip, clip]")
    p.add_argument("--print-every", type=int, default=2000, help="iterations between reports")
    p.add_argument("--seed", type=int, default=0, help="seeds the weights, the order of names and the samples")
    p.add_argument("--threads", type=int, default=None, help="seqcore's threads (default: its own)")
    args = p.parse_args(argv)
    if args.iterations < 1 or args.print_every < 1:
        p.error(f"--iterations, --print-every: expected ints >= 1, got {args.iterations}, {args.print_every}")
    before = seqcore.get_num_threads()
    if args.threads is not None:
        seqcore.set_num_threads(args.threads)
    try:
        return train(args)
    finally:
        seqcore.set_num_threads(before)  # main() called from Python leaves the threads as they were


if __name__ == "__main__":
    main()
