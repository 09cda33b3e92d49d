"""seqcore.train checkpoints: save / load of a language model with its
vocabulary, optimizer, random state and step; atomic replacement; errors.

Oracles: the objects that were saved (load of save), an uninterrupted run
(N steps, save, resume, M steps == N+M steps straight, bitwise), bytes
changed by hand in the files, and child processes killed mid-save."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from children import CHILD_CWD, child_env
from seqcore.nn import LanguageModel, softmax_cross_entropy
from seqcore.text import Vocabulary
from seqcore.train import (SGD, Adam, Checkpoint, CheckpointError, checkpoint as checkpoint_module,
                           load_checkpoint, save_checkpoint)

TEXT = "the quick brown fox jumps over the lazy dog. " * 20
VOCAB = Vocabulary.from_text(TEXT)
STREAM = VOCAB.encode(TEXT)
T, B = 12, 4


def make_model(seed=0, hidden_size=12):
    # dropout > 0 between the recurrent layers and before the head: both
    # generators ("rnn._rng", "dropout.rng") change the trajectory
    return LanguageModel(len(VOCAB), embed_size=6, hidden_size=hidden_size, num_layers=2, cell="lstm",
                         dropout=0.25, seed=seed)


def batch(step):
    """(inputs, targets) (T, B) of a fixed data stream: the same at the same step."""
    starts = np.random.default_rng(step).integers(0, len(STREAM) - T - 1, size=B)
    chunk = np.stack([STREAM[s:s + T + 1] for s in starts], axis=1)
    return chunk[:-1], chunk[1:]


def train(model, optimizer, first_step, steps):
    for step in range(first_step, first_step + steps):
        x, y = batch(step)
        logits, _ = model.forward(x)  # teacher forcing, dropout on
        _, dlogits = softmax_cross_entropy(logits, y)
        model.zero_grad()
        model.backward(dlogits)
        optimizer.step()


def assert_same_params(a, b):
    assert a.params.keys() == b.params.keys()
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name], err_msg=name)


def saved(tmp_path, step=1, **kwargs):
    """A checkpoint at tmp_path/ckpt of a model trained ``step`` steps with Adam."""
    model = make_model()
    optimizer = Adam(model, lr=1e-2)
    train(model, optimizer, 0, step)
    path = tmp_path / "ckpt"
    save_checkpoint(path, model, optimizer, VOCAB, step=step, **kwargs)
    return path, model, optimizer


def rehash(path):
    """Rewrites the manifest after a file was changed on purpose, so that the
    check under test is the one past the sha256."""
    manifest = json.loads((path / "manifest.json").read_text())
    for name, entry in manifest["files"].items():
        data = (path / name).read_bytes()
        entry.update(size=len(data), sha256=hashlib.sha256(data).hexdigest())
    (path / "manifest.json").write_text(json.dumps(manifest))


# ---------------------------------------------------------------------------
# round trip


def test_load_gives_the_saved_weights_vocab_optimizer_step_and_extra(tmp_path):
    path, model, optimizer = saved(tmp_path, step=3, extra={"epoch": 2, "chunk": 17, "note": "Zoë"})
    ckpt = load_checkpoint(path)
    assert isinstance(ckpt, Checkpoint)
    assert type(ckpt.model) is LanguageModel and ckpt.model.config() == model.config()
    assert_same_params(ckpt.model, model)
    assert ckpt.vocab == VOCAB
    assert ckpt.step == 3 and ckpt.extra == {"epoch": 2, "chunk": 17, "note": "Zoë"}
    assert type(ckpt.optimizer) is Adam and ckpt.optimizer_class == "Adam"
    expected = optimizer.state_dict()
    got = ckpt.optimizer.state_dict()
    assert got.keys() == expected.keys()
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    assert ckpt.rng_state == {"dropout.rng": model.dropout.rng.bit_generator.state,
                              "rnn._rng": model.rnn._rng.bit_generator.state}
    assert ckpt.model.dropout.rng.bit_generator.state == model.dropout.rng.bit_generator.state


def test_model_vocab_and_optimizer_are_optional(tmp_path):
    model = LanguageModel(5, embed_size=0, hidden_size=4, num_layers=1, cell="rnn", dtype=np.float64, seed=1)
    save_checkpoint(tmp_path / "ckpt", model, step=0)
    ckpt = load_checkpoint(tmp_path / "ckpt")
    assert ckpt.vocab is None and ckpt.optimizer is None and ckpt.optimizer_class is None
    assert ckpt.step == 0 and ckpt.extra == {}
    assert ckpt.model.dtype == np.float64
    assert_same_params(ckpt.model, model)


def test_the_files_are_plain_data_listed_with_sha256_in_the_manifest(tmp_path):
    path, model, _ = saved(tmp_path)
    assert sorted(os.listdir(path)) == ["manifest.json", "model.json", "optimizer.json", "optimizer.npz",
                                        "state.json", "vocab.json", "weights.npz"]
    with np.load(path / "weights.npz", allow_pickle=False) as weights:
        assert sorted(weights.files) == sorted(model.params)
    with np.load(path / "optimizer.npz", allow_pickle=False) as slots:
        assert "exp_avg.head.weight" in slots.files
    doc = json.loads((path / "model.json").read_text())
    assert doc == {"format": "seqcore.checkpoint", "version": 1, "class": "LanguageModel", "config": model.config()}
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["format"] == "seqcore.checkpoint" and manifest["version"] == 1
    assert sorted(manifest["files"]) == sorted(set(os.listdir(path)) - {"manifest.json"})
    for name, entry in manifest["files"].items():
        data = (path / name).read_bytes()
        assert entry == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


# ---------------------------------------------------------------------------
# resuming: the same trajectory, bitwise


N, M = 4, 3


def straight_run():
    model = make_model()
    optimizer = Adam(model, lr=1e-2)
    train(model, optimizer, 0, N + M)
    return model


def test_resume_from_the_loaded_model_and_optimizer_continues_bitwise(tmp_path):
    path, _, _ = saved(tmp_path, step=N)
    ckpt = load_checkpoint(path)
    train(ckpt.model, ckpt.optimizer, ckpt.step, M)
    assert_same_params(ckpt.model, straight_run())


def test_restore_into_fresh_objects_continues_bitwise(tmp_path):
    path, _, _ = saved(tmp_path, step=N)
    model = make_model(seed=123)  # other weights and other random streams, all replaced
    optimizer = Adam(model, lr=0.5)  # its hyperparameters too
    load_checkpoint(path).restore_into(model, optimizer)
    assert optimizer.lr == 1e-2
    train(model, optimizer, N, M)
    assert_same_params(model, straight_run())


def test_the_random_state_is_what_makes_the_resume_exact(tmp_path):
    """Control for the two tests above: weights and optimizer alone, with the
    generators where a fresh model has them, give another trajectory."""
    path, _, _ = saved(tmp_path, step=N)
    ckpt = load_checkpoint(path)
    model = make_model()
    model.load_state_dict(ckpt.model.state_dict())
    optimizer = Adam(model, lr=1e-2)
    optimizer.load_state_dict(ckpt.optimizer_state)
    train(model, optimizer, N, M)
    assert not np.array_equal(model.params["head.weight"], straight_run().params["head.weight"])


def test_restore_into_a_model_of_another_shape_raises_and_changes_nothing(tmp_path):
    path, _, _ = saved(tmp_path)
    model = make_model(seed=5, hidden_size=10)
    optimizer = Adam(model)
    before = model.state_dict()
    with pytest.raises(CheckpointError, match=r"parameter 'embedding.weight'|shape"):
        load_checkpoint(path).restore_into(model, optimizer)
    for name, p in model.params.items():
        np.testing.assert_array_equal(p, before[name], err_msg=name)
    assert optimizer.state == {}


def test_restore_into_an_optimizer_of_another_class_raises(tmp_path):
    path, _, _ = saved(tmp_path)
    model = make_model()
    with pytest.raises(CheckpointError, match="holds Adam state, not SGD"):
        load_checkpoint(path).restore_into(model, SGD(model, lr=0.1))


# ---------------------------------------------------------------------------
# bad files: a clear CheckpointError naming the file


def test_a_flipped_byte_in_the_weights_is_reported_corrupt(tmp_path):
    path, _, _ = saved(tmp_path)
    data = bytearray((path / "weights.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (path / "weights.npz").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"weights\.npz: corrupt: its sha256 differs"):
        load_checkpoint(path)


def test_a_truncated_file_is_reported_truncated(tmp_path):
    path, _, _ = saved(tmp_path)
    data = (path / "optimizer.npz").read_bytes()
    (path / "optimizer.npz").write_bytes(data[:len(data) // 3])
    with pytest.raises(CheckpointError, match=r"optimizer\.npz: truncated or changed"):
        load_checkpoint(path)


def test_a_truncated_manifest_is_reported(tmp_path):
    path, _, _ = saved(tmp_path)
    (path / "manifest.json").write_bytes((path / "manifest.json").read_bytes()[:30])
    with pytest.raises(CheckpointError, match=r"manifest\.json: .*invalid or truncated JSON"):
        load_checkpoint(path)


def test_a_missing_file_is_reported(tmp_path):
    path, _, _ = saved(tmp_path)
    (path / "state.json").unlink()
    with pytest.raises(CheckpointError, match=r"state\.json: missing"):
        load_checkpoint(path)


def test_a_directory_without_a_manifest_is_not_a_checkpoint(tmp_path):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "weights.npz").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"manifest\.json: missing; not a seqcore checkpoint"):
        load_checkpoint(tmp_path / "ckpt")


def test_a_missing_directory_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nothing")


def test_a_file_in_place_of_the_directory_is_reported(tmp_path):
    VOCAB.save(tmp_path / "vocab.json")
    with pytest.raises(CheckpointError, match="not a directory"):
        load_checkpoint(tmp_path / "vocab.json")


def test_a_foreign_json_as_the_manifest_is_reported(tmp_path):
    path, _, _ = saved(tmp_path)
    VOCAB.save(path / "manifest.json")  # valid JSON of another seqcore format
    with pytest.raises(CheckpointError, match=r"manifest\.json: not a seqcore checkpoint .*seqcore\.text\.Vocabulary"):
        load_checkpoint(path)


def test_another_format_version_is_reported(tmp_path):
    path, _, _ = saved(tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps({**manifest, "version": 99}))
    with pytest.raises(CheckpointError, match="version 99 is not supported"):
        load_checkpoint(path)


def test_an_unknown_model_class_is_reported_not_imported(tmp_path):
    path, _, _ = saved(tmp_path)
    doc = json.loads((path / "model.json").read_text())
    (path / "model.json").write_text(json.dumps({**doc, "class": "os.system"}))
    rehash(path)
    with pytest.raises(CheckpointError, match=r"model\.json: unknown model class 'os.system'"):
        load_checkpoint(path)


def test_a_config_the_model_refuses_is_reported(tmp_path):
    path, _, _ = saved(tmp_path)
    doc = json.loads((path / "model.json").read_text())
    doc["config"]["cell"] = "transformer"
    (path / "model.json").write_text(json.dumps(doc))
    rehash(path)
    with pytest.raises(CheckpointError, match=r"model\.json: cannot build LanguageModel .*cell"):
        load_checkpoint(path)


def test_weights_of_another_shape_are_reported(tmp_path):
    path, model, _ = saved(tmp_path)
    weights = model.state_dict()
    weights["head.weight"] = weights["head.weight"][:, :-1]
    np.savez(path / "weights.npz", **weights)
    rehash(path)
    with pytest.raises(CheckpointError, match=r"weights\.npz: parameter 'head.weight' has shape"):
        load_checkpoint(path)


def test_weights_with_a_missing_name_are_reported(tmp_path):
    path, model, _ = saved(tmp_path)
    weights = model.state_dict()
    del weights["rnn.bias_hh_l1"]
    np.savez(path / "weights.npz", **weights)
    rehash(path)
    with pytest.raises(CheckpointError, match=r"weights\.npz: parameter names differ.*rnn\.bias_hh_l1"):
        load_checkpoint(path)


class _Trap:
    """Unpickling this creates a file: the proof that a pickle was run."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


def test_a_pickle_in_the_weights_is_refused_not_run(tmp_path):
    path, model, _ = saved(tmp_path)
    marker = tmp_path / "pickle-was-run"
    weights = model.state_dict()
    weights["head.bias"] = np.array([_Trap(str(marker))], dtype=object)
    np.savez(path / "weights.npz", **weights)
    rehash(path)
    with pytest.raises(CheckpointError, match=r"weights\.npz: not a readable \.npz"):
        load_checkpoint(path)
    assert not marker.exists()


def test_an_invalid_random_state_is_reported(tmp_path):
    path, _, _ = saved(tmp_path)
    state = json.loads((path / "state.json").read_text())
    state["rng"]["dropout.rng"]["bit_generator"] = "MT19937"
    (path / "state.json").write_text(json.dumps(state))
    rehash(path)
    with pytest.raises(CheckpointError, match=r"state\.json: generator 'dropout.rng' is 'MT19937'"):
        load_checkpoint(path)


# ---------------------------------------------------------------------------
# saving: what is refused, and replacing a checkpoint


def test_non_finite_weights_are_refused_and_the_previous_checkpoint_stays(tmp_path):
    path, model, optimizer = saved(tmp_path, step=1)
    before = {name: (path / name).read_bytes() for name in os.listdir(path)}
    model.params["rnn.weight_hh_l1"][0, 0] = np.nan
    with pytest.raises(ValueError, match="parameter 'rnn.weight_hh_l1' contains NaN or inf"):
        save_checkpoint(path, model, optimizer, VOCAB, step=2)
    assert {name: (path / name).read_bytes() for name in os.listdir(path)} == before
    assert os.listdir(tmp_path) == ["ckpt"]
    assert load_checkpoint(path).step == 1


def test_a_non_finite_optimizer_state_is_refused(tmp_path):
    path, model, optimizer = saved(tmp_path, step=1)
    optimizer.state["head.bias"]["exp_avg_sq"][0] = np.inf
    with pytest.raises(ValueError, match="state 'exp_avg_sq.head.bias' contains NaN or inf"):
        save_checkpoint(path, model, optimizer, step=2)
    assert load_checkpoint(path).step == 1


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(step=-1), ValueError, "step: expected an int >= 0"),
    (dict(step=1.0), ValueError, "step: expected an int >= 0"),
    (dict(step=1, extra={"lr": float("nan")}), ValueError, "extra: expected JSON data"),
    (dict(step=1, extra={"when": object()}), TypeError, "extra: expected JSON data"),
    (dict(step=1, vocab=Vocabulary.from_text("ab")), ValueError, "vocab: has 5 tokens"),
])
def test_bad_arguments_are_refused_before_anything_is_written(tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        save_checkpoint(tmp_path / "ckpt", make_model(), **kwargs)
    assert os.listdir(tmp_path) == []


def test_only_classes_a_checkpoint_can_rebuild_are_saved(tmp_path):
    from seqcore.nn import Linear

    class MyAdam(Adam):
        pass
    with pytest.raises(TypeError, match="model: expected one of the classes a checkpoint can rebuild"):
        save_checkpoint(tmp_path / "ckpt", Linear(3, 2), step=0)
    model = make_model()
    with pytest.raises(TypeError, match="optimizer: expected one of .* got MyAdam"):
        save_checkpoint(tmp_path / "ckpt", model, MyAdam(model), step=0)
    assert os.listdir(tmp_path) == []


def test_an_optimizer_of_another_model_is_refused(tmp_path):
    with pytest.raises(ValueError, match="optimizer: its parameter .* is not the model's"):
        save_checkpoint(tmp_path / "ckpt", make_model(), Adam(make_model()), step=0)


def test_saving_over_a_checkpoint_replaces_it_and_leaves_nothing_else(tmp_path):
    path, model, optimizer = saved(tmp_path, step=1)
    train(model, optimizer, 1, 2)
    save_checkpoint(path, model, optimizer, step=3, extra={"epoch": 1})
    ckpt = load_checkpoint(path)
    assert ckpt.step == 3 and ckpt.extra == {"epoch": 1} and ckpt.vocab is None
    assert not (path / "vocab.json").exists()
    assert_same_params(ckpt.model, model)
    assert os.listdir(tmp_path) == ["ckpt"]


def test_a_directory_that_is_not_a_checkpoint_is_never_replaced(tmp_path):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a seqcore checkpoint"):
        save_checkpoint(tmp_path / "ckpt", make_model(), step=0)
    assert os.listdir(tmp_path / "ckpt") == ["notes.txt"]
    assert sorted(os.listdir(tmp_path)) == ["ckpt"]


def test_an_empty_directory_may_become_a_checkpoint(tmp_path):
    (tmp_path / "ckpt").mkdir()
    save_checkpoint(tmp_path / "ckpt", make_model(), step=0)
    assert load_checkpoint(tmp_path / "ckpt").step == 0


# ---------------------------------------------------------------------------
# a save that fails or is killed half-way


def test_a_save_failing_after_the_first_file_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path, model, optimizer = saved(tmp_path, step=1)
    real = checkpoint_module.atomic_write_json

    def failing(file, doc, **kwargs):  # weights.npz is written, model.json fails
        raise OSError("disk full")
    monkeypatch.setattr(checkpoint_module, "atomic_write_json", failing)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, optimizer, step=2)
    assert os.listdir(tmp_path) == ["ckpt"]
    assert load_checkpoint(path).step == 1
    monkeypatch.setattr(checkpoint_module, "atomic_write_json", real)
    save_checkpoint(path, model, optimizer, step=2)
    assert load_checkpoint(path).step == 2


def test_a_failed_swap_puts_the_previous_checkpoint_back(tmp_path, monkeypatch):
    path, model, optimizer = saved(tmp_path, step=1)
    real = os.rename

    def rename(src, dst):
        if os.path.basename(src).startswith(".ckpt.tmp-"):
            raise OSError("no space left")
        real(src, dst)
    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError, match="no space left"):
        save_checkpoint(path, model, optimizer, step=2)
    assert os.listdir(tmp_path) == ["ckpt"]
    assert load_checkpoint(path).step == 1


def test_a_checkpoint_moved_aside_by_an_interrupted_swap_is_still_read(tmp_path):
    path, model, optimizer = saved(tmp_path, step=1)
    os.rename(path, tmp_path / ".ckpt.old-99999-abcd")  # killed between the two renames
    assert load_checkpoint(path).step == 1
    save_checkpoint(path, model, optimizer, step=2)
    assert load_checkpoint(path).step == 2
    assert os.listdir(tmp_path) == ["ckpt"]


# A child process saves (step 2, every weight filled with 2.0) over a
# checkpoint of step 1 and is SIGKILLed: at a chosen point, where it stops and
# says "paused", or at whatever point it has reached after a delay, while it
# saves in a loop (step k, weights k). The parent then reads the directory.
CHILD = r"""
import os, shutil, sys, time
from seqcore.nn import LanguageModel
from seqcore.train import save_checkpoint
from seqcore.train import checkpoint as ck

directory, stage = sys.argv[1], sys.argv[2]
model = LanguageModel(300, embed_size=32, hidden_size=int(sys.argv[3]), num_layers=2, dropout=0.1, seed=0)

def pause():  # tell the parent where we are, then wait to be killed
    print("paused", flush=True)
    time.sleep(60)

def fill(step):
    for p in model.params.values():
        p[...] = step

real_rename, real_rmtree, real_write = os.rename, shutil.rmtree, ck.atomic_write
if stage == "after-first-file":
    def atomic_write(path, write, **kwargs):
        real_write(path, write, **kwargs)
        pause()
    ck.atomic_write = atomic_write
elif stage == "before-swap":
    def rename(src, dst):
        if ".tmp-" in os.path.basename(src):
            pause()
        real_rename(src, dst)
    os.rename = rename
elif stage == "between-renames":
    def rename(src, dst):
        real_rename(src, dst)
        if ".old-" in os.path.basename(dst):
            pause()
    os.rename = rename
elif stage == "before-cleanup":
    def rmtree(path, **kwargs):
        if ".old-" in os.path.basename(path):
            pause()
        real_rmtree(path, **kwargs)
    shutil.rmtree = rmtree

if stage == "loop":
    print("saving", flush=True)
    step = 2
    while True:
        fill(step)
        save_checkpoint(directory, model, step=step)
        step += 1
else:
    fill(2)
    save_checkpoint(directory, model, step=2)
    print("finished without pausing", flush=True)
"""

killing = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")


def save_step_1(path, hidden_size):
    model = LanguageModel(300, embed_size=32, hidden_size=hidden_size, num_layers=2, dropout=0.1, seed=0)
    for p in model.params.values():
        p[...] = 1
    save_checkpoint(path, model, step=1)
    return model


def kill_child_saving(path, stage, hidden_size, delay=0.0):
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), stage, str(hidden_size)],
                             env=child_env(OMP_NUM_THREADS="1"), cwd=CHILD_CWD,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        assert line.strip() in ("paused", "saving"), f"child said {line!r}: {child.stderr.read()}"
        time.sleep(delay)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        child.stdout.close()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL


def assert_whole(ckpt):
    """Every weight is the step's value: the files are all of one save."""
    for name, p in ckpt.model.params.items():
        assert (p == ckpt.step).all(), f"{name} is not all {ckpt.step}: files of two saves mixed"


@killing
@pytest.mark.parametrize("stage, step", [("after-first-file", 1), ("before-swap", 1), ("between-renames", 1),
                                         ("before-cleanup", 2)])
def test_a_save_killed_at_any_stage_leaves_a_whole_checkpoint(tmp_path, stage, step):
    path = tmp_path / "ckpt"
    model = save_step_1(path, hidden_size=16)
    kill_child_saving(path, stage, hidden_size=16)
    ckpt = load_checkpoint(path)
    assert ckpt.step == step
    assert_whole(ckpt)
    assert os.listdir(tmp_path) != ["ckpt"]  # the killed save left its temporary or old directory
    # the next save goes through and clears what the killed one left
    save_checkpoint(path, model, step=3)
    assert load_checkpoint(path).step == 3
    assert os.listdir(tmp_path) == ["ckpt"]


@killing
@pytest.mark.parametrize("delay", [0.1, 0.35, 0.6])
def test_a_save_killed_after_a_delay_leaves_a_whole_checkpoint(tmp_path, delay):
    path = tmp_path / "ckpt"
    model = save_step_1(path, hidden_size=256)  # ~2.5 MB of weights a save
    kill_child_saving(path, "loop", hidden_size=256, delay=delay)
    ckpt = load_checkpoint(path)
    assert ckpt.step >= 1
    assert_whole(ckpt)
    save_checkpoint(path, model, step=0)
    assert load_checkpoint(path).step == 0
    assert os.listdir(tmp_path) == ["ckpt"]
