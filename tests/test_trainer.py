"""seqcore.train.Trainer: teacher forcing on a stream (truncated BPTT) and on
padded sequences; validation metrics, early stopping, schedules, clipping,
checkpoints, bitwise resume, non-finite losses and Ctrl-C.

Oracles: a model with a zero head (loss ln V exactly), the cross-entropy
computed chunk by chunk by hand, an uninterrupted run (N steps, save, resume,
M steps == N + M steps straight, bitwise), the update rules' bounds, and
scripted validation losses."""

import csv
import math
import os
import signal
import sys

import numpy as np
import pytest

from seqcore.nn import LanguageModel, softmax_cross_entropy
from seqcore.text import StreamBatches, Vocabulary, train_val_split
from seqcore.train import (SGD, Adam, Constant, Cosine, Evaluation, StepDecay, Trainer, evaluate, load_checkpoint,
                           make_schedule)
from seqcore.train import progress as progress_module

TEXT = ("the quick brown fox jumps over the lazy dog. " * 40
        + "pack my box with five dozen liquor jugs! " * 40)
VOCAB = Vocabulary.from_text(TEXT)
IDS = VOCAB.encode(TEXT)
TRAIN, VAL = train_val_split(IDS, 0.1)
NAMES = ["aardonyx", "abelisaurus", "achelousaurus", "achillobator", "acrocanthosaurus", "aegyptosaurus",
         "afrovenator", "agilisaurus", "alamosaurus", "albertaceratops", "albertosaurus", "alectrosaurus",
         "alioramus", "allosaurus", "alvarezsaurus", "amargasaurus", "ammosaurus", "ampelosaurus"]
NAME_VOCAB = Vocabulary.from_text("\n".join(NAMES))
SEQS = [NAME_VOCAB.encode(n) for n in NAMES]
B, L = 4, 16  # batch, seq_len


def make_model(vocab=VOCAB, seed=0, dropout=0.0, layers=1, hidden=16):
    return LanguageModel(len(vocab), embed_size=8, hidden_size=hidden, num_layers=layers, cell="lstm",
                         dropout=dropout, seed=seed)


def make_trainer(model, data=TRAIN, val=VAL, vocab=VOCAB, lr=1e-2, **kwargs):
    kwargs.setdefault("progress", False)
    return Trainer(model, data, val, vocab=vocab, optimizer=Adam(model, lr=lr), batch_size=B, seq_len=L, **kwargs)


def assert_same_params(a, b):
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name], err_msg=name)


# ---------------------------------------------------------------------------
# learning


def test_training_on_a_stream_reduces_the_loss():
    model = make_model()
    trainer = make_trainer(model, steps=60)
    before = trainer.evaluate().loss
    result = trainer.fit()
    assert result.stop_reason == "done" and result.step == 60
    assert before == pytest.approx(math.log(len(VOCAB)), rel=0.1)  # near chance at the start
    assert result.val.loss < before - 0.8


def test_training_on_padded_sequences_reduces_the_loss_and_counts_only_real_tokens():
    model = make_model(NAME_VOCAB)
    trainer = make_trainer(model, data=SEQS, val=SEQS, vocab=NAME_VOCAB, epochs=15)
    before = trainer.evaluate()
    result = trainer.fit()
    assert result.step == 15 * math.ceil(len(SEQS) / B)
    # each name is framed by <eos>: len + 1 targets, the padding scores nothing
    scored = sum(len(s) + 1 for s in SEQS)
    assert before.tokens == scored and result.tokens == 15 * scored
    assert result.val.loss < before.loss - 0.5


def test_the_state_is_carried_from_chunk_to_chunk_and_reset_each_epoch():
    model = make_model()
    trainer = make_trainer(model, steps=3)
    states = []
    trainer.callbacks.append(lambda t: states.append(t.state))
    trainer.fit()
    h, c = states[0]
    assert h.shape == c.shape == (1, B, 16) and np.abs(h).max() > 0
    epoch_length = trainer.batches_per_epoch
    trainer = make_trainer(make_model(), steps=epoch_length + 1)
    seen = []
    original = trainer.model.forward
    trainer.model.forward = lambda ids, state=None, **kw: (seen.append(state), original(ids, state, **kw))[1]
    trainer.fit()
    assert seen[0] is None and seen[1] is not None and seen[epoch_length] is None


# ---------------------------------------------------------------------------
# validation metrics


def test_a_uniform_model_scores_ln_v_nats_v_perplexity_and_log2_v_bits():
    model = make_model()
    model.head.weight[...] = 0
    model.head.bias[...] = 0  # logits all 0: every token has probability 1/V
    result = evaluate(model, VAL, batch_size=B, seq_len=L)
    V = len(VOCAB)
    assert result.loss == pytest.approx(math.log(V), rel=1e-6)
    assert result.perplexity == pytest.approx(V, rel=1e-5)
    assert result.bpc == pytest.approx(math.log2(V), rel=1e-6)


def test_bpc_is_the_loss_over_ln_2_and_perplexity_its_exponential():
    e = Evaluation(loss=1.3, tokens=10)
    assert e.bpc == 1.3 / math.log(2)
    assert e.perplexity == math.exp(1.3)


def test_evaluate_is_the_mean_cross_entropy_over_the_stream_with_the_state_carried():
    model = make_model(seed=4)
    data = IDS[:B * (3 * L + 1)]
    total, count, state = 0.0, 0, None
    for x, y in StreamBatches(data, B, L):  # the oracle: the loss function, chunk by chunk
        logits, state = model.forward(x, state, train=False)
        loss, _ = softmax_cross_entropy(logits, y, reduction="sum")
        total, count = total + loss, count + y.size
    result = evaluate(model, data, batch_size=B, seq_len=L)
    assert result.tokens == count
    assert result.loss == pytest.approx(total / count, rel=1e-5)


def test_validation_runs_every_n_steps_and_at_the_end():
    result = make_trainer(make_model(), steps=10, eval_every=4).fit()
    assert [r["step"] for r in result.history if r["val_loss"] is not None] == [4, 8, 10]


# ---------------------------------------------------------------------------
# early stopping


def test_early_stopping_after_patience_validations_without_improvement():
    trainer = make_trainer(make_model(), steps=40, eval_every=2, patience=3)
    losses = iter([3.0, 2.0, 2.5, 2.1, 2.2, 1.0])  # best at the 2nd validation (step 4), then 3 worse
    trainer.evaluate = lambda data=None: Evaluation(next(losses), 100)
    result = trainer.fit()
    assert result.stop_reason == "early_stopping"
    assert result.step == 10
    assert (result.best_val_loss, result.best_step) == (2.0, 4)
    assert "no better validation loss in 3 validations" in result.message


def test_a_time_budget_ends_training_with_a_validation_and_a_checkpoint(tmp_path, monkeypatch):
    """A fake clock that advances 1 s a step: with max_seconds=5 the 5th step
    is the last, validated and saved."""
    import seqcore.train.trainer as trainer_module
    clock = iter(range(0, 10_000))
    monkeypatch.setattr(trainer_module.time, "perf_counter", lambda: float(next(clock)) / 4)
    trainer = make_trainer(make_model(), steps=40, max_seconds=5, out_dir=tmp_path)
    result = trainer.fit()
    assert result.stop_reason == "time_budget"
    assert 1 <= result.step < 40
    assert result.val is not None and result.checkpoint is not None
    assert "time budget of 5 s ran out" in result.message


def test_a_bad_time_budget_is_rejected():
    with pytest.raises(ValueError, match="^max_seconds: expected None or a number > 0"):
        make_trainer(make_model(), steps=4, max_seconds=0)


# ---------------------------------------------------------------------------
# schedules and clipping


def test_schedules_give_the_documented_learning_rates():
    assert [Constant(0.1)(s) for s in (0, 99)] == [0.1, 0.1]
    assert [StepDecay(0.1, every=10, gamma=0.5)(s) for s in (0, 9, 10, 25)] == [0.1, 0.1, 0.05, 0.025]
    cos = Cosine(0.1, total_steps=100)
    assert cos(0) == 0.1 and cos(50) == pytest.approx(0.0505) and cos(100) == cos(500) == pytest.approx(0.001)
    assert all(cos(s) > cos(s + 1) > 0 for s in range(99))
    assert make_schedule("step", 0.1, 100)(25) == 0.05
    with pytest.raises(ValueError, match="schedule"):
        make_schedule("linear", 0.1, 100)


def test_the_trainer_sets_the_learning_rate_of_each_step_from_the_schedule():
    schedule = StepDecay(1e-2, every=3, gamma=0.1)
    result = make_trainer(make_model(), steps=9, schedule=schedule, log_every=1).fit()
    # the row of step s is written after the update of step s, made at schedule(s - 1)
    assert [r["lr"] for r in result.history] == pytest.approx([schedule(s - 1) for s in range(1, 10)])


@pytest.mark.parametrize("clip", ["value", "norm"])
def test_clipping_bounds_the_update(clip):
    model = make_model(seed=1)
    before = {k: v.copy() for k, v in model.params.items()}
    lr, c = 1.0, 1e-3
    options = {"clip_value": c} if clip == "value" else {"clip_norm": c}
    Trainer(model, TRAIN, optimizer=SGD(model, lr=lr), batch_size=B, seq_len=L, steps=1, progress=False,
            **options).fit()
    # SGD: the change is -lr * the clipped gradient (to float32 rounding of the weights, ~1e-7)
    deltas = [model.params[k].astype(np.float64) - before[k] for k in before]
    if clip == "value":
        assert max(np.abs(d).max() for d in deltas) == pytest.approx(lr * c, rel=1e-3)
    else:
        assert math.sqrt(sum(float((d ** 2).sum()) for d in deltas)) == pytest.approx(lr * c, rel=1e-3)


# ---------------------------------------------------------------------------
# checkpoints and bitwise resume


def resumable_trainer(out_dir, steps, seed=0, data=TRAIN, vocab=VOCAB):
    # dropout in and between the 2 layers, a schedule and clipping: all of it must resume exactly
    model = make_model(vocab, seed=seed, dropout=0.2, layers=2)
    return make_trainer(model, data=data, val=None, vocab=vocab, steps=steps, out_dir=out_dir, clip_norm=1.0,
                        schedule=StepDecay(1e-2, every=7, gamma=0.7))


def test_n_steps_save_resume_m_steps_is_bitwise_n_plus_m_steps_straight(tmp_path):
    straight = resumable_trainer(None, 1)
    n = straight.batches_per_epoch // 2 + 1      # stop mid-epoch: the carried state matters
    total = n + straight.batches_per_epoch        # and go on across an epoch boundary
    straight = resumable_trainer(None, total)
    straight.fit()
    resumable_trainer(tmp_path, n).fit()
    resumed = resumable_trainer(tmp_path, total, seed=99)  # other initial weights, all replaced
    resumed.restore()
    assert resumed.step == n and resumed.state is not None
    result = resumed.fit()
    assert result.step == total
    assert_same_params(resumed.model, straight.model)
    assert load_checkpoint(tmp_path / "checkpoint").step == total


def test_the_carried_state_is_what_makes_a_mid_epoch_resume_exact(tmp_path):
    """Control for the test above: the same resume with a fresh state differs."""
    n = resumable_trainer(None, 1).batches_per_epoch // 2 + 1
    straight = resumable_trainer(None, n + 3)
    straight.fit()
    resumable_trainer(tmp_path, n).fit()
    resumed = resumable_trainer(tmp_path, n + 3)
    resumed.restore()
    resumed.state = None
    resumed.fit()
    assert not np.array_equal(resumed.model.params["head.weight"], straight.model.params["head.weight"])


def test_a_resume_on_shuffled_sequences_is_bitwise_too(tmp_path):
    n, total = 3, 3 + 2 * math.ceil(len(SEQS) / B)
    straight = resumable_trainer(None, total, data=SEQS, vocab=NAME_VOCAB)
    straight.fit()
    resumable_trainer(tmp_path, n, data=SEQS, vocab=NAME_VOCAB).fit()
    resumed = resumable_trainer(tmp_path, total, data=SEQS, vocab=NAME_VOCAB)
    resumed.restore()
    resumed.fit()
    assert_same_params(resumed.model, straight.model)


def test_checkpoints_are_written_every_n_steps_and_at_the_end(tmp_path):
    on_disk = []  # after each step, the step of the checkpoint in out_dir
    trainer = make_trainer(make_model(), steps=7, out_dir=tmp_path, checkpoint_every=3)
    trainer.callbacks.append(lambda t: on_disk.append(load_checkpoint(tmp_path / "checkpoint").step
                                                      if (tmp_path / "checkpoint").exists() else None))
    result = trainer.fit()
    assert on_disk == [None, None, 3, 3, 3, 6, 6]
    assert result.checkpoint == str(tmp_path / "checkpoint")
    assert load_checkpoint(tmp_path / "checkpoint").step == 7


def test_a_resume_with_other_settings_is_refused(tmp_path):
    make_trainer(make_model(), steps=2, out_dir=tmp_path).fit()
    model = make_model()
    other = Trainer(model, TRAIN, vocab=VOCAB, optimizer=Adam(model, lr=1e-2), batch_size=B + 1, seq_len=L,
                    steps=4, out_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="batch_size 4, this trainer has 5"):
        other.restore()


# ---------------------------------------------------------------------------
# non-finite losses


def output_turns_nan(model, from_call, until_call=None):
    """Makes the model's training forward return NaN logits from its
    ``from_call``-th call (1-based) to ``until_call`` (default: for ever)."""
    original, calls = model.forward, [0]

    def forward(ids, state=None, train=True, lengths=None):
        logits, state = original(ids, state, train=train, lengths=lengths)
        if train:
            calls[0] += 1
            if calls[0] >= from_call and (until_call is None or calls[0] <= until_call):
                logits = logits * np.float32(np.nan)
        return logits, state

    model.forward = forward


def test_a_non_finite_loss_stops_training_and_leaves_the_last_good_checkpoint(tmp_path):
    model = make_model()
    trainer = make_trainer(model, steps=20, out_dir=tmp_path, checkpoint_every=5)
    output_turns_nan(model, from_call=8)
    result = trainer.fit()
    assert result.stop_reason == "non-finite"
    assert result.step == 7
    assert "stopped at step 8" in result.message and "NaN or inf" in result.message
    assert "no checkpoint was written" in result.message
    ckpt = load_checkpoint(tmp_path / "checkpoint")
    assert ckpt.step == 5  # the last one written before, untouched
    assert all(np.isfinite(p).all() for p in ckpt.model.params.values())
    assert all(np.isfinite(p).all() for p in model.params.values())  # the bad step updated nothing


def test_with_skip_a_non_finite_step_is_skipped_and_training_goes_on(tmp_path):
    model = make_model()
    trainer = make_trainer(model, steps=12, out_dir=tmp_path, on_nonfinite="skip")
    output_turns_nan(model, from_call=4, until_call=5)
    result = trainer.fit()
    assert result.stop_reason == "done" and result.step == 12
    assert result.skipped_steps == 2
    assert load_checkpoint(tmp_path / "checkpoint").step == 12
    assert all(r["train_loss"] is None or math.isfinite(r["train_loss"]) for r in result.history)


# ---------------------------------------------------------------------------
# Ctrl-C


def interrupt_at(step):
    def callback(trainer):
        if trainer.step == step:
            raise KeyboardInterrupt
    return callback


def test_ctrl_c_saves_a_final_checkpoint_that_resumes_bitwise(tmp_path):
    straight = resumable_trainer(None, 12)
    straight.fit()
    trainer = resumable_trainer(tmp_path, 12)
    trainer.callbacks.append(interrupt_at(5))
    result = trainer.fit()  # returns: no KeyboardInterrupt escapes
    assert result.stop_reason == "interrupted" and result.step == 5
    assert "interrupted at step 5" in result.message and "checkpoint saved" in result.message
    assert load_checkpoint(tmp_path / "checkpoint").step == 5
    resumed = resumable_trainer(tmp_path, 12)
    resumed.restore()
    resumed.fit()
    assert_same_params(resumed.model, straight.model)


def test_ctrl_c_in_the_middle_of_a_step_saves_the_last_completed_one(tmp_path):
    model = make_model()
    trainer = make_trainer(model, steps=10, out_dir=tmp_path)
    original, calls = model.forward, [0]

    def forward(*args, **kwargs):
        calls[0] += 1
        if calls[0] == 4:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    model.forward = forward
    result = trainer.fit()
    assert result.stop_reason == "interrupted" and result.step == 3
    assert load_checkpoint(tmp_path / "checkpoint").step == 3


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or sys.platform == "win32", reason="POSIX signals")
def test_a_real_sigint_lets_the_step_finish_then_saves(tmp_path):
    def press_ctrl_c(trainer):
        if trainer.step == 2:
            os.kill(os.getpid(), signal.SIGINT)

    handler = signal.getsignal(signal.SIGINT)
    trainer = make_trainer(make_model(), steps=10, out_dir=tmp_path, callbacks=[press_ctrl_c])
    result = trainer.fit()
    assert result.stop_reason == "interrupted" and result.step == 2
    assert load_checkpoint(tmp_path / "checkpoint").step == 2
    assert signal.getsignal(signal.SIGINT) is handler  # put back


# ---------------------------------------------------------------------------
# the loss curve and the progress output


def test_the_loss_curve_is_written_as_csv(tmp_path):
    result = make_trainer(make_model(), steps=12, eval_every=6, log_every=5, out_dir=tmp_path).fit()
    with open(tmp_path / "loss.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["step", "train_loss", "val_loss", "tokens_per_s", "elapsed_s", "lr", "val_accuracy"]
    assert [int(r["step"]) for r in rows] == [5, 6, 10, 12]
    assert all(r["val_accuracy"] == "" for r in rows)  # a language model has none
    assert [r["val_loss"] != "" for r in rows] == [False, True, False, True]
    assert float(rows[-1]["val_loss"]) == pytest.approx(result.val.loss, rel=1e-5)
    assert all(float(r["tokens_per_s"]) > 0 and float(r["train_loss"]) > 0 for r in rows)


def test_the_loss_curve_is_drawn_as_png_when_matplotlib_is_importable(tmp_path):
    pytest.importorskip("matplotlib")
    make_trainer(make_model(), steps=4, eval_every=2, out_dir=tmp_path).fit()
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_matplotlib_the_png_is_skipped(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import fails
    make_trainer(make_model(), steps=2, out_dir=tmp_path).fit()
    assert (tmp_path / "loss.csv").exists() and not (tmp_path / "loss.png").exists()


def test_progress_shows_a_bar_with_loss_and_tokens_per_second(capsys):
    pytest.importorskip("tqdm")
    make_trainer(make_model(), steps=3, progress=True).fit()
    err = capsys.readouterr().err
    assert "3/3" in err and "loss" in err and "tok/s" in err


def test_without_tqdm_progress_is_printed_as_lines(capsys, monkeypatch):
    monkeypatch.setattr(progress_module, "tqdm", None)
    make_trainer(make_model(), steps=20, eval_every=10, progress=True).fit()
    err = capsys.readouterr().err
    assert "step 20/20: loss" in err and "tok/s" in err and "left" in err
    assert "step 10: validation loss" in err and "nats/char, perplexity" in err and "bits/char" in err


def test_progress_false_prints_nothing(capsys):
    make_trainer(make_model(), steps=3, eval_every=1).fit()
    assert capsys.readouterr() == ("", "")


# ---------------------------------------------------------------------------
# arguments


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": 3, "epochs": 1}, "steps, epochs"),
    ({"on_nonfinite": "ignore"}, "on_nonfinite"),
    ({"val": None, "patience": 2}, "patience"),
    ({"clip_norm": 0}, "clip_norm"),
    ({"eval_every": 0}, "eval_every"),
    ({"schedule": "linear"}, "schedule"),
])
def test_bad_arguments_are_refused_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_trainer(make_model(), **kwargs)


def test_an_optimizer_of_another_model_is_refused():
    with pytest.raises(ValueError, match="optimizer"):
        Trainer(make_model(), TRAIN, optimizer=Adam(make_model(), lr=1e-2))


def test_train_data_of_the_wrong_kind_is_refused():
    with pytest.raises(TypeError, match="train_data"):
        Trainer(make_model(), "some text")
    with pytest.raises(TypeError, match="val_data"):
        Trainer(make_model(), TRAIN, SEQS)
