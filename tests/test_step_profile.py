"""seqcore.benchmark's language-model step and StepProfile (bench/shakespeare.py
--profile): the step is the Trainer's, the parts add up to the step, and
every timer is removed afterwards."""

import numpy as np

from seqcore import benchmark, nn, train
from seqcore.nn import LanguageModel
from seqcore.train import Adam


def tiny(seed=0):
    model = LanguageModel(11, embed_size=4, hidden_size=6, num_layers=2, seed=seed)
    ids = np.random.default_rng(seed).integers(0, 11, (9, 3))
    return model, Adam(model, lr=0.01), ids[:-1], ids[1:]


def test_the_step_lowers_the_loss_on_one_batch():
    model, optimizer, x, y = tiny()
    step = benchmark.language_model_step(model, optimizer, x, y, clip_norm=5.0)
    first = step()
    for _ in range(30):
        last = step()
    assert last < first


def test_the_parts_add_up_to_the_step_and_the_timers_go_away():
    model, optimizer, x, y = tiny()
    step = benchmark.language_model_step(model, optimizer, x, y, clip_norm=5.0)
    before = (nn.softmax_cross_entropy, train.clip_by_global_norm, type(model.rnn).forward)
    profile = benchmark.StepProfile()
    with profile.timing(model, optimizer) as run:
        for _ in range(3):
            run(step)
    rows = {part: (ms, share) for part, ms, share in profile.rows()}
    assert {"embedding forward", "rnn forward", "rnn backward", "head backward", "loss", "clip", "optimizer",
            "zero_grad", "other", "step"} <= set(rows)
    assert profile.steps == 3
    parts = sum(ms for part, (ms, _) in rows.items() if part != "step")
    assert abs(parts - rows["step"][0]) < 1e-6 * max(rows["step"][0], 1)
    assert (nn.softmax_cross_entropy, train.clip_by_global_norm, type(model.rnn).forward) == before
    assert "forward" not in vars(model.rnn) and "step" not in vars(optimizer)
