"""bench/generate.py: a record for each model and contestant, the table and JSON
(tiny sizes, no torch: the script's plumbing, not its figures)."""

import json

from benches import load_bench


def test_every_model_and_contestant_gets_a_record(tmp_path, capsys):
    out = tmp_path / "generate.json"
    assert load_bench("generate").main(["--length", "20", "--samples", "3", "--reference-length", "5", "--rounds", "1",
                                        "--no-torch", "--json", str(out)]) == 0
    records = json.loads(out.read_text())["records"]
    assert [(r["model"], r["library"], r["samples"]) for r in records] == [
        (m, lib, n) for m in ("char-rnn", "shakespeare")
        for lib, n in [(who, n) for who in ("seqcore", "seqcore, 2 threads", "seqcore bf16", "seqcore bf16, 2 threads",
                                            "seqcore int8", "seqcore int8, 2 threads")
                       for n in (1, 3)] + [("seqcore, reference path", 1)]]
    assert all(r["chars_per_s"] > 0 for r in records)
    assert "x seqcore 1" in capsys.readouterr().out


def test_the_benchmarked_models_have_the_issues_sizes():
    bench = load_bench("generate")
    vocab, model = bench.make("shakespeare")
    assert (len(vocab), model.embedding.embedding_dim, model.rnn.hidden_size, model.rnn.num_layers) == (65, 64, 256, 2)
    vocab, model = bench.make("char-rnn")
    assert (len(vocab), model.embedding.embedding_dim, model.rnn.hidden_size, model.rnn.num_layers) == (83, 32, 128, 1)
