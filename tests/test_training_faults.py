"""Faults injected into whole training runs, beyond the save-level ones of
test_checkpoint.py and the non-finite and Ctrl-C ones of test_trainer.py:

- `seqcore train` killed with SIGKILL at many moments while it writes a
  checkpoint every step: the run's checkpoint is loadable every time, and
  `--resume` continues from it;
- a disk that fails (ENOSPC) while the Trainer saves: the error reaches the
  caller and the previous checkpoint is still whole.
"""

import errno
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from children import CHILD_CWD, child_env

from seqcore.nn import LanguageModel
from seqcore.train import Trainer, load_checkpoint
from seqcore.train import checkpoint as checkpoint_module

TEXT = "def add(a, b):\n    return a + b\n\n" * 60
TINY = ["--embed", "8", "--hidden", "16", "--batch", "4", "--seq-len", "16", "--threads", "1", "--quiet",
        "--val-frac", "0"]


def start_training(corpus, out, steps, *extra):
    return subprocess.Popen([sys.executable, "-m", "seqcore.cli", "train", str(corpus), *TINY, "--steps", str(steps),
                             "--checkpoint-every", "1", "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(),
                            cwd=CHILD_CWD)


def _saved_step(out) -> int:
    """The step of the checkpoint in ``out`` (0 when none is there yet). It
    reads only state.json, which a save writes before the directory swap."""
    try:
        with open(out / "checkpoint" / "state.json") as f:
            return int(json.load(f)["step"])
    except (OSError, ValueError, KeyError):
        return 0


def test_training_killed_at_any_moment_leaves_a_loadable_checkpoint_that_resumes(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    out = tmp_path / "run"
    rng = np.random.default_rng(0)
    steps_seen = []
    for kill in range(6):
        proc = start_training(corpus, out, 1_000_000, *(["--resume"] if steps_seen else []))
        # wait until this run has saved once (past the step it resumed from), so
        # that the kill lands in the loop of steps and saves, not at start-up
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _saved_step(out) <= (steps_seen[-1] if steps_seen else 0):
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.5))  # somewhere in the loop of steps and saves
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        ckpt = load_checkpoint(out / "checkpoint")  # raises if torn
        assert all(np.isfinite(p).all() for p in ckpt.model.params.values())
        assert not steps_seen or ckpt.step > steps_seen[-1]  # each run saved past where it resumed
        steps_seen.append(ckpt.step)
    # and the last one still resumes to the end
    target = steps_seen[-1] + 3
    proc = start_training(corpus, out, target, "--resume")
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert load_checkpoint(out / "checkpoint").step == target


def test_a_disk_full_during_a_save_reaches_the_caller_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    ids = np.random.default_rng(0).integers(0, 9, 2000)
    model = LanguageModel(9, embed_size=4, hidden_size=8, seed=0)
    Trainer(model, ids, batch_size=2, seq_len=10, steps=2, out_dir=str(tmp_path), progress=False).fit()
    before = load_checkpoint(tmp_path / "checkpoint")
    assert before.step == 2

    real_write = checkpoint_module.atomic_write

    def full_disk(path, *args, **kwargs):
        if str(path).endswith(".npz"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_write(path, *args, **kwargs)
    monkeypatch.setattr(checkpoint_module, "atomic_write", full_disk)
    model2 = LanguageModel(9, embed_size=4, hidden_size=8, seed=1)
    with pytest.raises(OSError) as info:
        Trainer(model2, ids, batch_size=2, seq_len=10, steps=5, out_dir=str(tmp_path), progress=False).fit()
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    after = load_checkpoint(tmp_path / "checkpoint")
    assert after.step == 2
    for name, p in before.model.params.items():
        np.testing.assert_array_equal(after.model.params[name], p)
