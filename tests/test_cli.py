"""The command line: `seqcore train | sample | eval` (and `bench`, `info`).

Oracles: the files a run writes, a run resumed from the command line against
one run straight (bitwise), the same seed giving the same sample, argparse's
exit status 2 with a message naming the flag, and a real Ctrl-C (SIGINT) sent
to a training process."""

import json
import os
import signal
import subprocess
import sys
import sysconfig
import time

import numpy as np
import pytest

from children import CHILD_CWD, child_env
import seqcore
from cli_calls import cli_exit as run
from seqcore import cli
from seqcore.train import load_checkpoint

TEXT = ("def add(a, b):\n    return a + b\n\n" * 40 + "class Point:\n    x = 0\n    y = 0\n\n" * 40)
TINY = ["--embed", "8", "--hidden", "16", "--batch", "4", "--seq-len", "16", "--threads", "1", "--quiet",
        "--sample-length", "20"]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return str(path)


def train(corpus, out, *extra):
    return run(["train", corpus, *TINY, "--steps", "6", "--eval-every", "3", "--out", str(out), *extra])


# ---------------------------------------------------------------------------
# help


@pytest.mark.parametrize("command", ["train", "sample", "eval", "export", "bench", "info"])
def test_each_subcommand_has_help(command, capsys):
    assert run([command, "--help"]) == 0
    assert f"usage: seqcore {command}" in capsys.readouterr().out


def test_train_help_gives_the_defaults(capsys):
    run(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default ./seqcore-run)" in out and "standard library" in out and "(default lstm)" in out


# ---------------------------------------------------------------------------
# train, sample, eval


def test_train_writes_a_run_that_sample_and_eval_read(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert train(corpus, out) == 0
    printed = capsys.readouterr().out
    assert "validation: loss" in printed and "bits/char" in printed and "sample (temperature 0.8" in printed
    assert {"run.json", "checkpoint", "loss.csv"} <= set(os.listdir(out))
    assert load_checkpoint(out / "checkpoint").step == 6
    assert json.loads((out / "run.json").read_text())["hidden"] == 16

    assert run(["sample", str(out), "--length", "40", "--seed", "3", "--prime", "def "]) == 0
    first = capsys.readouterr().out
    assert first.startswith("def ") and len(first) > len("def ") + 1
    run(["sample", str(out), "--length", "40", "--seed", "3", "--prime", "def "])
    assert capsys.readouterr().out == first  # same seed, same text

    assert run(["eval", str(out), corpus]) == 0
    printed = capsys.readouterr().out
    # the run's 4 streams (--batch), each scoring all its chars but the first
    assert f"{4 * (len(TEXT) // 4 - 1):,} chars scored" in printed
    assert "nats/char" in printed and "perplexity" in printed and "bits/char" in printed


def test_num_samples_prints_each_sample_that_its_seed_gives_alone(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    train(corpus, out)
    capsys.readouterr()
    assert run(["sample", str(out), "--length", "30", "--seed", "5", "--prime", "def ", "--num-samples", "3"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("--- sample 1 of 3 (seed 5) ---\ndef ")
    for i in range(3):
        run(["sample", str(out), "--length", "30", "--seed", str(5 + i), "--prime", "def "])
        alone = capsys.readouterr().out
        assert f"--- sample {i + 1} of 3 (seed {5 + i}) ---\n{alone}" in printed
    assert run(["sample", str(out), "--num-samples", "0"]) == 2
    assert "--num-samples" in capsys.readouterr().err


def test_eval_reports_the_loss_the_trainer_reports(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    train(corpus, out, "--val-frac", "0.2")
    validation = capsys.readouterr().out.split("validation: loss ")[1].split(" ")[0]
    held_out = tmp_path / "val.txt"
    held_out.write_text(TEXT[len(TEXT) - round(0.2 * len(TEXT)):], encoding="utf-8")
    run(["eval", str(out), str(held_out)])
    assert f"loss {validation} nats/char" in capsys.readouterr().out


def test_train_on_lines_pads_each_line_as_a_sequence(tmp_path, capsys):
    names = tmp_path / "names.txt"
    names.write_text("\n".join(["aardonyx", "abelisaurus", "achelousaurus", "allosaurus", "alamosaurus"] * 4))
    out = tmp_path / "run"
    assert run(["train", str(names), *TINY, "--lines", "--epochs", "2", "--val-frac", "0.2", "--out", str(out)]) == 0
    assert "validating on 4 lines" in capsys.readouterr().out
    assert run(["eval", str(out), str(names)]) == 0
    assert f"{len(''.join(['aardonyx', 'abelisaurus', 'achelousaurus', 'allosaurus', 'alamosaurus'])) * 4 + 20:,}" \
        in capsys.readouterr().out  # every char and an <eos> a line


def test_resume_continues_the_run_bitwise(corpus, tmp_path, capsys):
    constant = ["--schedule", "constant"]  # a schedule that does not depend on the total
    assert train(corpus, tmp_path / "straight", *constant, "--steps", "8") == 0
    assert train(corpus, tmp_path / "resumed", *constant, "--steps", "4") == 0
    assert run(["train", "--out", str(tmp_path / "resumed"), "--resume", "--steps", "8", "--quiet",
                "--threads", "1"]) == 0
    assert "from step 4" in capsys.readouterr().out
    a = load_checkpoint(tmp_path / "straight" / "checkpoint").model.params
    b = load_checkpoint(tmp_path / "resumed" / "checkpoint").model.params
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_resume_finds_the_checkpoint_a_save_killed_mid_swap_left(corpus, tmp_path, capsys):
    """A save killed between its two renames leaves the previous checkpoint as
    .checkpoint.old-*, and no checkpoint/: --resume (and sample) still find it."""
    out = tmp_path / "run"
    assert train(corpus, out, "--steps", "3") == 0
    os.rename(out / "checkpoint", out / ".checkpoint.old-1-abcd")
    assert run(["train", "--out", str(out), "--resume", "--steps", "5", "--quiet", "--threads", "1"]) == 0
    assert "from step 3" in capsys.readouterr().out
    assert load_checkpoint(out / "checkpoint").step == 5


def test_train_without_a_corpus_uses_the_standard_library(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(["train", *TINY, "--steps", "2", "--val-frac", "0.001", "--out", str(out)]) == 0
    assert "the Python {}.{} standard library".format(*sys.version_info[:2]) in capsys.readouterr().out
    assert json.loads((out / "run.json").read_text())["corpus"] is None


# ---------------------------------------------------------------------------
# the standard library corpus


def test_the_stdlib_corpus_is_a_deterministic_selection_of_its_py_files():
    text, paths = cli.stdlib_corpus()
    root = sysconfig.get_paths()["stdlib"]
    names = [os.path.basename(p) for p in paths]
    assert len(paths) >= 10 and names == sorted(names)
    assert all(os.path.dirname(p) == root and n.endswith(".py") and not n.startswith("_")
               for p, n in zip(paths, names))
    assert 500_000 < len(text) <= cli.STDLIB_MAX_CHARS
    assert "def " in text and "import " in text
    assert cli.stdlib_corpus() == (text, paths)


def test_the_stdlib_corpus_stops_before_the_file_that_would_pass_the_limit():
    text, paths = cli.stdlib_corpus(max_chars=100_000)
    sizes = [len(open(p, encoding="utf-8").read()) for p in paths]
    assert len(text) == sum(sizes) <= 100_000 and len(paths) >= 2


# ---------------------------------------------------------------------------
# bad arguments: exit status 2 and a message naming the argument


@pytest.mark.parametrize("args, flag", [
    (["train", "no-such-file.txt"], "CORPUS"),
    (["train", "{corpus}", "--hidden", "0"], "--hidden"),
    (["train", "{corpus}", "--layers", "two"], "--layers"),
    (["train", "{corpus}", "--lr", "-1"], "--lr"),
    (["train", "{corpus}", "--val-frac", "1.5"], "--val-frac"),
    (["train", "{corpus}", "--steps", "3", "--epochs", "1"], "--epochs"),
    (["train", "{corpus}", "--cell", "transformer"], "--cell"),
    (["train", "{corpus}", "--batch", "100000"], "--batch"),
    (["train", "{corpus}", "--patience", "2", "--val-frac", "0"], "--patience"),
    (["train", "{corpus}", "--out", "{tmp}"], "--out"),
    (["train", "--resume", "--out", "{tmp}/nothing"], "--resume"),
    (["train", "{empty}"], "CORPUS"),
    (["sample", "{tmp}/nothing"], "DIR"),
    (["sample", "{tmp}"], "DIR"),
    (["eval", "{tmp}", "{corpus}"], "DIR"),
    (["eval", "{tmp}", "no-such-file.txt"], "CORPUS"),
    (["bench", "--T", "0"], "--T"),
])
def test_bad_arguments_exit_2_with_a_message_naming_them(args, flag, corpus, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    args = [a.format(corpus=corpus, tmp=tmp_path, empty=empty) for a in args]
    assert run(args) == 2
    assert flag in capsys.readouterr().err


def test_sample_in_another_precision_than_the_runs(corpus, tmp_path, capsys, monkeypatch):
    """--precision bf16 samples an fp32 run with bfloat16 products: the text
    the model set to bf16 gives through the API; fp32 is the run's own."""
    from seqcore.generate import sample
    out = tmp_path / "run"
    train(corpus, out)
    capsys.readouterr()
    flags = ["--length", "60", "--seed", "2", "--temperature", "1.5"]
    assert run(["sample", str(out), *flags]) == 0
    default = capsys.readouterr().out
    assert run(["sample", str(out), *flags, "--precision", "fp32"]) == 0
    assert capsys.readouterr().out == default
    assert run(["sample", str(out), *flags, "--precision", "bf16"]) == 0
    printed = capsys.readouterr().out
    ckpt = load_checkpoint(out / "checkpoint")
    ckpt.model.precision = "bf16"
    assert printed == sample(ckpt.model, ckpt.vocab, 60, prime="\n", temperature=1.5, seed=2) + "\n"
    import seqcore.cli
    seen = []
    streamed = seqcore.cli.stream
    monkeypatch.setattr(seqcore.cli, "stream", lambda model, *a, **k: seen.append(model.precision) or
                        streamed(model, *a, **k))
    for precision in ("bf16", "fp32"):
        run(["sample", str(out), *flags, "--precision", precision])
    assert seen == ["bf16", "fp32"]
    assert run(["sample", str(out), "--precision", "bf32"]) == 2
    assert "--precision" in capsys.readouterr().err


def test_sample_arguments_are_checked(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    train(corpus, out)
    capsys.readouterr()
    for args, flag in ((["--temperature", "0"], "--temperature"), (["--top-p", "1.5"], "--top-p"),
                       (["--top-k", "0"], "--top-k")):
        assert run(["sample", str(out), *args]) == 2
        assert flag in capsys.readouterr().err


def test_a_resume_cannot_change_the_model(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    train(corpus, out)
    assert run(["train", "--out", str(out), "--resume", "--hidden", "32"]) == 2
    assert "--hidden" in capsys.readouterr().err


def test_the_console_command_exits_2_on_a_bad_flag():
    proc = subprocess.run([sys.executable, "-m", "seqcore.cli", "train", "--hidden", "0"], capture_output=True,
                          text=True, env=child_env(), cwd=CHILD_CWD, timeout=60)
    assert proc.returncode == 2
    assert "argument --hidden: expected an int >= 1, got '0'" in proc.stderr


# ---------------------------------------------------------------------------
# Ctrl-C


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(corpus, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "seqcore.cli", "train", corpus, *TINY, "--steps", "1000000",
                             "--checkpoint-every", "5", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(),
                            cwd=CHILD_CWD)
    deadline = time.monotonic() + 60
    while not (out / "checkpoint").exists() and time.monotonic() < deadline:  # in the training loop
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Traceback" not in stderr
    assert "interrupted at step" in stdout and "checkpoint saved" in stdout
    assert load_checkpoint(out / "checkpoint").step >= 5


# ---------------------------------------------------------------------------
# the other subcommands still work


def test_info_prints_the_runtime_as_json(capsys):
    assert run(["info"]) == 0
    assert "isa" in json.loads(capsys.readouterr().out)


def test_bench_prints_a_table(capsys):
    assert run(["bench", "--T", "2", "--B", "2", "--D", "3", "--H", "4", "--repeat", "1", "--threads", "1"]) == 0
    assert "lstm" in capsys.readouterr().out


def test_export_without_the_onnx_extra_says_how_to_install_it(corpus, tmp_path, monkeypatch, capsys):
    assert train(corpus, tmp_path / "run") == 0
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx fails
    monkeypatch.delitem(sys.modules, "seqcore.onnx", raising=False)
    monkeypatch.delattr(seqcore, "onnx", raising=False)  # as if never imported
    assert run(["export", str(tmp_path / "run"), str(tmp_path / "model.onnx")]) == 1
    assert 'pip install "seqcore[onnx]"' in capsys.readouterr().err
    assert not (tmp_path / "model.onnx").exists()


def test_train_in_bf16_keeps_the_precision_in_the_run_and_its_checkpoint(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert train(corpus, out, "--precision", "bf16") == 0
    assert "bfloat16 products" in capsys.readouterr().out
    assert json.loads((out / "run.json").read_text())["precision"] == "bf16"
    model = load_checkpoint(out / "checkpoint").model
    assert model.precision == "bf16" and model.rnn.precision == model.head.precision == "bf16"
    # eval and sample read the model back in its precision
    assert run(["eval", str(out), corpus]) == 0
    printed = capsys.readouterr().out
    assert run(["sample", str(out), "--length", "20", "--seed", "1"]) == 0
    capsys.readouterr()
    # a resumed run may change the precision (the weights are float32 either way)
    assert run(["train", "--out", str(out), "--resume", "--steps", "8", "--precision", "fp32", "--quiet",
                "--threads", "1"]) == 0
    assert "bfloat16" not in capsys.readouterr().out
    assert json.loads((out / "run.json").read_text())["precision"] == "fp32"
    assert load_checkpoint(out / "checkpoint").model.precision == "fp32"
    assert "nats/char" in printed



def test_bench_in_bf16(capsys):
    assert run(["bench", "--T", "2", "--B", "2", "--D", "3", "--H", "4", "--repeat", "1", "--threads", "1",
                "--precision", "bf16"]) == 0
    assert "float32 bf16" in capsys.readouterr().out
    assert run(["bench", "--dtype", "float64", "--precision", "bf16"]) == 2
    assert "--precision bf16 needs --dtype float32" in capsys.readouterr().err
