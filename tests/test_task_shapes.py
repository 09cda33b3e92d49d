"""The four shapes of sequence tasks, each trained to a clear success on
synthetic data by the example that shows it (examples/<name>.py, called
through its main() with small settings).

Oracles: held-out data the model never trained on, scored against chance
(for one-to-many, all 90 inputs: one categorical input leaves none unseen);
central finite differences in float64 for the encoder-decoder's gradient
path from decoder to encoder."""

import sys
from pathlib import Path

import numpy as np
import pytest

from gradcheck import assert_close_to_numerical, numerical_gradient

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))

import classification  # noqa: E402
import encoder_decoder  # noqa: E402
import generation  # noqa: E402
import tagging  # noqa: E402


def test_many_to_many_bidirectional_lstm_tags_each_token():
    """Tagging (Tx = Ty) over a padded batch with lengths= and a masked loss:
    tag a digit 1 when it occurs elsewhere in its sequence, which needs the
    steps before and after it. Chance: always the majority tag, about 0.65."""
    r = tagging.main(["--steps", "600", "--test-size", "500", "--quiet"])
    assert r["chance"] < 0.7
    assert r["token_acc"] > 0.97, r


@pytest.mark.parametrize("pool", ["last", "mean"])
def test_many_to_one_classifies_from_last_state_or_mean_of_outputs(pool):
    """Classification of variable-length sequences: which of two tokens occurs
    more often, from the final state at each sequence's own end or from the
    mean of the outputs over its real steps. Chance: 0.5."""
    r = classification.main(["--pool", pool, "--steps", "300", "--test-size", "1000", "--quiet"])
    assert r["chance"] == 0.5
    assert r["accuracy"] > 0.95, r


@pytest.mark.parametrize("condition", ["state", "input"])
def test_one_to_many_generates_whole_sequences_greedily(condition):
    """Generation from one input (s, k) -> s, s+k, s+2k, ... (mod 10), 10
    digits, the input through the initial state or at step 0; trained with
    teacher forcing, scored on greedy generation from the model's own
    outputs. Chance of a whole sequence: 1e-10."""
    r = generation.main(["--condition", condition, "--steps", "300", "--quiet"])
    assert r["exact"] > 0.95, r


def test_encoder_decoder_reverses_held_out_digit_strings():
    """Encoder-decoder with Tx ≠ Ty lengths per sequence: reverse strings of
    3-6 digits. The decoder sees the source only through the encoder's final
    state, so success also shows the gradient reaching the encoder through
    decoder.state_grad. Chance of a whole held-out string: below 1e-3."""
    r = encoder_decoder.main(["--task", "reverse", "--max-len", "6", "--hidden", "64", "--steps", "500",
                              "--test-size", "500", "--quiet"])
    assert r["exact"] > 0.9, r


def test_encoder_decoder_adds_held_out_numbers():
    """Encoder-decoder on "37+85" -> "122" (numbers below 100; the 500
    held-out problems are never trained on), greedy decoding until <eos>.
    Chance of a whole answer: below 1e-2."""
    r = encoder_decoder.main(["--task", "add", "--steps", "1000", "--test-size", "500", "--quiet"])
    assert r["exact"] > 0.9, r


def test_encoder_decoder_gradient_reaches_encoder_through_state_grad():
    """The encoder's weights get the loss's gradient only through
    decoder.state_grad passed as dstate to encoder.backward: compared with
    central finite differences in float64 (a 2-layer encoder and decoder)."""
    model = encoder_decoder.build(hidden=4, embed=3, layers=2, seed=0, dtype=np.float64)
    rng = np.random.default_rng(0)
    problems = [encoder_decoder.make_problem(rng, "add", 2, 3, 8) for _ in range(3)]

    def loss():
        model.zero_grad()
        return encoder_decoder.train_step(model, problems, backwards=True)[0]

    loss()
    for name in ("encoder.weight_hh_l0", "src_embed.weight"):
        analytic = model.grads[name].copy()
        assert np.abs(analytic).max() > 0, name
        assert_close_to_numerical(analytic, numerical_gradient(loss, model.params[name]), rtol=1e-6)
