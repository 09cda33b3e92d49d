"""seqcore.text: vocabularies, encode / decode, files, one-hot, batching.

Oracles: texts and ids written out by hand, Python's own str / list
operations (slicing, str.lower, set), and the inverse operation (decode of
encode, load of save)."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from seqcore.text import (StreamBatches, UnknownTokenError, Vocabulary, join_words, length_mask,
                          next_token_pairs, one_hot, pad_batches, stream_batches, tokenize_words,
                          train_val_split)
from seqcore.text import vocab as vocab_module

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
SPECIALS = ("<pad>", "<unk>", "<eos>")


def data_file(name):
    path = DATA / name
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


# ---------------------------------------------------------------------------
# ids


def test_specials_come_first_then_tokens_by_descending_count():
    vocab = Vocabulary.from_text("abbccc")
    assert vocab.tokens == SPECIALS + ("c", "b", "a")
    assert (vocab.pad_id, vocab.unk_id, vocab.eos_id) == (0, 1, 2)


def test_char_ties_are_broken_by_code_point():
    assert Vocabulary.from_text("zéa").tokens[3:] == ("a", "z", "é")


def test_word_ties_are_broken_by_string_order():
    assert Vocabulary.from_text("pear apple fig apple", level="word").tokens[3:] == ("apple", "fig", "pear")


def test_ids_do_not_depend_on_the_order_tokens_first_appear():
    assert Vocabulary.from_text("abcabc") == Vocabulary.from_text("cbacba")


def test_max_size_counts_the_specials_and_keeps_the_most_frequent():
    vocab = Vocabulary.from_text("aaaabbbccd", max_size=5)
    assert vocab.tokens == SPECIALS + ("a", "b")


def test_max_size_none_keeps_every_token():
    assert len(Vocabulary.from_text("abcdef", max_size=None)) == 3 + 6


def test_min_freq_drops_rarer_tokens():
    vocab = Vocabulary.from_text("to be or not to be", level="word", min_freq=2)
    assert vocab.tokens == SPECIALS + ("be", "to")


def test_explicit_token_list_gives_ids_after_the_specials():
    vocab = Vocabulary(["x", "y"], level="char")
    assert vocab.tokens == SPECIALS + ("x", "y")
    assert vocab.token_to_id("y") == 4 and vocab.id_to_token(3) == "x"


def test_no_specials_means_no_special_ids():
    vocab = Vocabulary(["a", "b"], specials=())
    assert (vocab.pad_id, vocab.unk_id, vocab.eos_id) == (None, None, None)
    assert vocab.token_to_id("a") == 0


def test_an_extra_special_is_a_reserved_id_without_a_role():
    vocab = Vocabulary(["a"], specials=("<pad>", "<bos>"))
    assert vocab.token_to_id("<bos>") == 1 and vocab.unk_id is None and vocab.eos_id is None


def test_len_and_contains_count_specials_and_tokens():
    vocab = Vocabulary.from_text("ab")
    assert len(vocab) == 5
    assert "a" in vocab and "<eos>" in vocab and "c" not in vocab


def test_token_to_id_of_an_unknown_token_raises_naming_it():
    with pytest.raises(KeyError, match="'q'"):
        Vocabulary.from_text("ab").token_to_id("q")


def test_id_to_token_out_of_range_raises():
    with pytest.raises(ValueError, match=r"id: expected an int in \[0, 5\), got 5"):
        Vocabulary.from_text("ab").id_to_token(5)


@pytest.mark.parametrize("tokens, level, specials, message", [
    (["a", "a"], "char", SPECIALS, "'a' appears twice"),
    (["be", "<pad>"], "word", SPECIALS, "'<pad>' appears twice"),
    (["ab"], "char", SPECIALS, "tokens: at char level each token is one character"),
    (["a"], "char", ("<pad>", "!"), "specials: at char level a special must be longer"),
    (["a"], "char", ("<pad>", "<pad>"), "specials: expected distinct strings"),
])
def test_constructor_rejects_an_inconsistent_token_list(tokens, level, specials, message):
    with pytest.raises(ValueError, match=message):
        Vocabulary(tokens, level=level, specials=specials)


@pytest.mark.parametrize("kwargs, message", [
    (dict(level="byte"), "level: expected 'char' or 'word'"),
    (dict(max_size=2), "max_size: expected None or an int >= len"),
    (dict(min_freq=0), "min_freq: expected an int >= 1"),
    (dict(min_freq=1.5), "min_freq: expected an int >= 1"),
])
def test_from_text_rejects_bad_arguments_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Vocabulary.from_text("abc", **kwargs)


# ---------------------------------------------------------------------------
# encode / decode


ROUND_TRIP_TEXTS = {
    "ascii": "First Citizen:\nBefore we proceed any further, hear me speak.\n",
    "accents": "Ça, naïve Zoë, ½ €",
    "cjk": "日本語のテキスト",
    "emoji": "ok 👍🏽 👨‍👩‍👧 🇫🇷!",
    "combining": "e\u0301 a\u0308\u0323 Z\u0335\u0361",
    "controls": "tab\there\r\n\x00\x7f",
    "lone surrogate": "a\ud800b",
    "empty": "",
}


@pytest.mark.parametrize("text", ROUND_TRIP_TEXTS.values(), ids=ROUND_TRIP_TEXTS.keys())
def test_char_decode_of_encode_gives_the_text_back(text):
    vocab = Vocabulary.from_text(text)
    ids = vocab.encode(text)
    assert ids.dtype == np.int64 and ids.shape == (len(text),)
    assert vocab.decode(ids) == text


def test_char_encode_gives_one_id_per_code_point():
    vocab = Vocabulary(["e", "\u0301", "x"])
    assert vocab.encode("e\u0301x").tolist() == [3, 4, 5]


def test_char_encode_is_the_same_across_its_pieces(monkeypatch):
    text = "abcé😀" * 7
    vocab = Vocabulary.from_text(text)
    whole = vocab.encode(text)
    monkeypatch.setattr(vocab_module, "_ENCODE_CHUNK", 4)
    assert np.array_equal(vocab.encode(text), whole)
    assert vocab.decode(whole) == text


def test_word_decode_of_encode_gives_the_token_sequence_back():
    text = "  Hark!  o'er   the\tmoor,\n\n'tis  (dawn)... 3.14  naïve e\u0301 👍🏽"
    vocab = Vocabulary.from_text(text, level="word")
    assert tokenize_words(vocab.decode(vocab.encode(text))) == tokenize_words(text)


def test_word_decode_of_encode_gives_usually_spaced_text_back_exactly():
    text = "First Citizen:\nBefore we proceed, hear me (speak)!\n\nAll:\nSoft-hearted, don't; we know't."
    vocab = Vocabulary.from_text(text, level="word")
    assert vocab.decode(vocab.encode(text)) == text


def test_tokenize_words_splits_words_punctuation_and_newlines():
    assert tokenize_words("Don't stop--now,\nfriend 👨‍👩‍👧!") == \
        ["Don't", "stop", "-", "-", "now", ",", "\n", "friend", "👨‍👩‍👧", "!"]


def test_join_words_keeps_a_space_where_tokens_would_merge():
    tokens = ["(", "\u0301", "a", "'", "b"]
    assert tokenize_words(join_words(tokens)) == tokens


def test_unknown_char_encodes_as_unk():
    vocab = Vocabulary.from_text("ab")
    assert vocab.encode("abz€").tolist() == [3, 4, 1, 1]


def test_unknown_word_encodes_as_unk():
    vocab = Vocabulary.from_text("to be", level="word")
    assert vocab.encode("to see").tolist() == [vocab.token_to_id("to"), vocab.unk_id]


@pytest.mark.parametrize("text, unknown", [("abz", "'z'"), ("ab€", "'€'")], ids=["ascii", "non-ascii"])
def test_unknown_char_without_unk_raises_naming_it(text, unknown):
    vocab = Vocabulary(["a", "b"], specials=("<pad>",))
    with pytest.raises(UnknownTokenError, match=f"character {unknown} .* at index 2"):
        vocab.encode(text)


def test_unknown_word_without_unk_raises_naming_it():
    vocab = Vocabulary(["to", "be"], level="word", specials=())
    with pytest.raises(UnknownTokenError, match="word 'see'"):
        vocab.encode("to see")


def test_unknown_token_error_is_both_a_key_error_and_a_value_error():
    assert issubclass(UnknownTokenError, KeyError) and issubclass(UnknownTokenError, ValueError)


def test_decode_writes_specials_by_name_or_skips_them():
    vocab = Vocabulary.from_text("ab")
    ids = [3, 1, 4, 2]
    assert vocab.decode(ids) == "a<unk>b<eos>"
    assert vocab.decode(ids, skip_specials=True) == "ab"


@pytest.mark.parametrize("ids", [[3, 5], [-1, 3]], ids=["too large", "negative"])
def test_decode_of_an_id_out_of_range_raises(ids):
    with pytest.raises(ValueError, match=r"ids: expected values in \[0, 5\)"):
        Vocabulary.from_text("ab").decode(ids)


def test_decode_of_non_integers_raises():
    with pytest.raises(TypeError, match="ids: expected integers"):
        Vocabulary.from_text("ab").decode(np.array([3.0]))


def test_decode_of_a_2d_array_raises():
    with pytest.raises(ValueError, match="ids: expected a 1-D sequence"):
        Vocabulary.from_text("ab").decode(np.zeros((2, 2), np.int64))


def test_encode_of_a_non_str_raises():
    with pytest.raises(TypeError, match="text: expected a str, got bytes"):
        Vocabulary.from_text("ab").encode(b"ab")


# ---------------------------------------------------------------------------
# files


@pytest.mark.parametrize("level", ["char", "word"])
def test_load_of_save_gives_the_same_vocabulary(tmp_path, level):
    vocab = Vocabulary.from_text("Zoë said: ça va 👍🏽!", level=level)
    vocab.save(tmp_path / "vocab.json")
    assert Vocabulary.load(tmp_path / "vocab.json") == vocab


def test_saved_file_is_readable_utf8_json_with_format_and_version(tmp_path):
    Vocabulary.from_text("Zoë").save(tmp_path / "vocab.json")
    text = (tmp_path / "vocab.json").read_text(encoding="utf-8")
    assert "ë" in text
    doc = json.loads(text)
    assert (doc["format"], doc["version"], doc["level"]) == ("seqcore.text.Vocabulary", 1, "char")


def test_a_token_with_a_lone_surrogate_survives_save_and_load(tmp_path):
    vocab = Vocabulary.from_text("a\udc80")
    vocab.save(tmp_path / "vocab.json")
    assert Vocabulary.load(tmp_path / "vocab.json") == vocab


@pytest.mark.parametrize("content, message", [
    (b"\x89PNG\r\n\x1a\n\x00\xff", "not UTF-8"),
    (b"{\"format\": \"seqcore.text.Vocabulary\", \"vers", "invalid or truncated JSON"),
    (b"{\"model\": \"gpt2\"}", "not a seqcore vocabulary"),
    (b"[1, 2, 3]", "not a seqcore vocabulary"),
    (b"{\"format\": \"seqcore.text.Vocabulary\", \"version\": 99}", "version 99 is not supported"),
    (b"{\"format\": \"seqcore.text.Vocabulary\", \"version\": 1, \"level\": \"char\", \"specials\": []}",
     "field 'tokens' is missing"),
    (b"{\"format\": \"seqcore.text.Vocabulary\", \"version\": 1, \"level\": \"char\", \"specials\": [],"
     b" \"tokens\": [\"a\", \"a\"]}", "invalid vocabulary: .*appears twice"),
], ids=["binary", "truncated", "foreign object", "foreign list", "version", "missing field", "duplicate"])
def test_load_of_a_file_that_is_not_a_vocabulary_raises_naming_it(tmp_path, content, message):
    path = tmp_path / "vocab.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as info:
        Vocabulary.load(path)
    assert str(path) in str(info.value)


def test_load_of_a_truncated_save_raises(tmp_path):
    path = tmp_path / "vocab.json"
    Vocabulary.from_text("abcdef").save(path)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ValueError, match="invalid or truncated JSON"):
        Vocabulary.load(path)


def test_a_failed_save_leaves_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "vocab.json"
    Vocabulary.from_text("ab").save(path)
    before = path.read_bytes()

    def failing_dump(doc, f, **kwargs):
        f.write('{"format": "seqcore.text.Vocab')  # half written, then the failure
        raise OSError("disk full")
    monkeypatch.setattr(json, "dump", failing_dump)
    with pytest.raises(OSError, match="disk full"):
        Vocabulary.from_text("xyz").save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["vocab.json"]


def test_a_failed_first_save_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(json, "dump", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        Vocabulary.from_text("ab").save(tmp_path / "vocab.json")
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------
# one-hot


@pytest.mark.parametrize("shape", [(), (4,), (3, 2)])
def test_one_hot_adds_a_last_axis_with_a_one_at_each_id(shape):
    ids = np.arange(int(np.prod(shape))).reshape(shape) % 5
    x = one_hot(ids, 5)
    assert x.shape == shape + (5,) and x.dtype == np.float32
    assert np.array_equal(x.argmax(-1), ids) and np.array_equal(x.sum(-1), np.ones(shape))


def test_one_hot_takes_a_dtype():
    assert one_hot([1], 3, dtype=np.float64).dtype == np.float64


def test_one_hot_of_an_id_out_of_range_raises():
    with pytest.raises(ValueError, match=r"ids: expected values in \[0, vocab_size\) = \[0, 3\)"):
        one_hot([0, 3], 3)


def test_one_hot_of_a_bad_vocab_size_raises():
    with pytest.raises(ValueError, match="vocab_size: expected an int >= 1"):
        one_hot([0], 0)


# ---------------------------------------------------------------------------
# streams for truncated BPTT

N, B, L = 103, 4, 5  # streams of 25 ids, 3 dropped, 24 (input, target) pairs: chunks of 5, 5, 5, 5, 4


def test_streams_are_contiguous_slices_of_the_ids_and_the_tail_is_dropped():
    batches = StreamBatches(np.arange(N), B, L)
    assert batches.streams.shape == (B, 25) and batches.dropped == 3
    for b in range(B):
        assert np.array_equal(batches.streams[b], np.arange(b * 25, (b + 1) * 25))


def test_chunks_per_epoch_and_their_shapes():
    batches = StreamBatches(np.arange(N), B, L)
    assert len(batches) == 5
    assert [x.shape for x, _ in batches] == [(5, 4)] * 4 + [(4, 4)]


def test_targets_are_the_inputs_one_step_later():
    for x, y in StreamBatches(np.arange(N), B, L):
        assert np.array_equal(y, x + 1)  # ids 0..N-1: the next id is id + 1


def test_chunks_continue_each_stream_so_the_state_carries_over():
    ids = np.random.default_rng(0).integers(0, 50, N)
    chunks = list(StreamBatches(ids, B, L))
    inputs = np.concatenate([x for x, _ in chunks])   # (24, B)
    targets = np.concatenate([y for _, y in chunks])
    streams = ids[:100].reshape(B, 25)
    assert np.array_equal(inputs.T, streams[:, :-1]) and np.array_equal(targets.T, streams[:, 1:])


def test_chunks_are_c_contiguous_int64():
    x, y = StreamBatches(np.arange(N, dtype=np.int32), B, L)[0]
    assert x.dtype == y.dtype == np.int64 and x.flags.c_contiguous and y.flags.c_contiguous


def test_targets_per_epoch_counts_every_token_but_each_streams_first():
    assert StreamBatches(np.arange(N), B, L).targets_per_epoch == B * 24


def test_drop_last_leaves_out_the_short_chunk():
    batches = StreamBatches(np.arange(N), B, L, drop_last=True)
    assert len(batches) == 4 and batches.targets_per_epoch == B * 20


def test_iter_from_a_chunk_resumes_the_epoch_there():
    batches = StreamBatches(np.arange(N), B, L)
    resumed = list(batches.iter(start=3))
    assert len(resumed) == 2
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(resumed, list(batches)[3:]))


def test_stream_batches_from_start_is_the_class_iter():
    a = list(stream_batches(np.arange(N), B, L, start=2))
    b = list(StreamBatches(np.arange(N), B, L).iter(2))
    assert all(np.array_equal(x0, x1) and np.array_equal(y0, y1) for (x0, y0), (x1, y1) in zip(a, b))


@pytest.mark.parametrize("args, error, message", [
    ((np.arange(N), 0, L), ValueError, "batch_size: expected an int >= 1"),
    ((np.arange(N), B, "5"), ValueError, "seq_len: expected an int >= 1"),
    ((np.arange(N).reshape(1, N), B, L), ValueError, "ids: expected a 1-D array"),
    ((np.arange(N) * 1.0, B, L), TypeError, "ids: expected integer ids"),
    ((np.arange(7), B, L), ValueError, "ids: 7 ids make streams of 1"),
])
def test_stream_batches_reject_bad_arguments_naming_them(args, error, message):
    with pytest.raises(error, match=message):
        StreamBatches(*args)


def test_stream_batches_reject_a_start_past_the_epoch_at_the_call():
    with pytest.raises(ValueError, match=r"start: expected an int in \[0, 5\]"):
        stream_batches(np.arange(N), B, L, start=6)


# ---------------------------------------------------------------------------
# train / validation split


def test_split_holds_out_the_last_fraction_of_a_stream():
    train, val = train_val_split(np.arange(100), 0.1)
    assert np.array_equal(train, np.arange(90)) and np.array_equal(val, np.arange(90, 100))


def test_split_of_a_list_keeps_its_order():
    assert train_val_split(list("abcde"), 0.4) == (list("abc"), list("de"))


def test_split_with_val_frac_zero_holds_out_nothing():
    train, val = train_val_split(np.arange(10), 0)
    assert len(train) == 10 and len(val) == 0


@pytest.mark.parametrize("val_frac", [1, -0.1, "0.1", True])
def test_split_rejects_a_val_frac_outside_0_1(val_frac):
    with pytest.raises(ValueError, match=r"val_frac: expected a number in \[0, 1\)"):
        train_val_split(np.arange(10), val_frac)


# ---------------------------------------------------------------------------
# padded batches of a set of sequences

SEQS = [[5, 6, 7], [8], [9, 10, 11, 12], [], [13, 14]]


def test_pad_batches_pads_time_major_with_lengths():
    padded, lengths = next(pad_batches(SEQS, 3, pad_id=0))
    assert padded.dtype == lengths.dtype == np.int64
    assert lengths.tolist() == [3, 1, 4]
    assert padded.T.tolist() == [[5, 6, 7, 0], [8, 0, 0, 0], [9, 10, 11, 12]]


def test_pad_batches_adds_bos_and_eos_and_counts_them():
    padded, lengths = list(pad_batches(SEQS, 3, pad_id=0, bos=2, eos=2))[1]
    assert lengths.tolist() == [2, 4]
    assert padded.T.tolist() == [[2, 2, 0, 0], [2, 13, 14, 2]]


def test_pad_batches_last_batch_is_smaller_unless_dropped():
    assert [len(l) for _, l in pad_batches(SEQS, 2, pad_id=0)] == [2, 2, 1]
    assert [len(l) for _, l in pad_batches(SEQS, 2, pad_id=0, drop_last=True)] == [2, 2]


def test_pad_batches_shuffle_is_the_same_for_the_same_seed():
    def order(seed):
        return [p.T.tolist() for p, _ in pad_batches(SEQS * 4, 3, pad_id=0, shuffle=True, seed=seed)]
    assert order(7) == order(7)
    assert order(7) != order(8)


def test_pad_batches_shuffle_gives_every_sequence_once():
    seqs = [[i] for i in range(20)]
    seen = [int(p[0, b]) for p, l in pad_batches(seqs, 6, pad_id=99, shuffle=True, seed=1) for b in range(len(l))]
    assert sorted(seen) == list(range(20)) and seen != list(range(20))


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(batch_size=0), ValueError, "batch_size: expected an int >= 1"),
    (dict(pad_id=-1), ValueError, "pad_id: expected an id"),
    (dict(eos=1.0), ValueError, "eos: expected an id"),
    (dict(sequences=[[1], [2.5]]), TypeError, r"sequences\[1\]: expected integer ids"),
    (dict(sequences=np.zeros((2, 3), np.int64)), TypeError, "sequences: expected a list"),
    (dict(shuffle=True, seed="x"), TypeError, "seed: expected None, an int"),
])
def test_pad_batches_rejects_bad_arguments_at_the_call(kwargs, error, message):
    args = dict(sequences=SEQS, batch_size=2, pad_id=0)
    args.update(kwargs)
    with pytest.raises(error, match=message):
        pad_batches(**args)  # no next(): checked before the first batch


def test_next_token_pairs_shift_by_one_with_shorter_lengths():
    padded, lengths = next(pad_batches([[5, 6, 7], [8]], 2, pad_id=0, bos=2, eos=2))
    inputs, targets, n = next_token_pairs(padded, lengths)
    assert inputs.T.tolist() == [[2, 5, 6, 7], [2, 8, 2, 0]]
    assert targets.T.tolist() == [[5, 6, 7, 2], [8, 2, 0, 0]]
    assert n.tolist() == [4, 2]


def test_length_mask_is_true_before_each_length():
    assert length_mask(np.array([2, 0, 3]), 3).T.tolist() == \
        [[True, True, False], [False, False, False], [True, True, True]]


# ---------------------------------------------------------------------------
# the data of the examples


def test_dinos_lower_cased_have_27_symbols_and_the_specials():
    text = data_file("dinos.txt").read_text(encoding="utf-8").lower()
    vocab = Vocabulary.from_text(text)
    assert set(vocab.tokens[3:]) == set("\nabcdefghijklmnopqrstuvwxyz")
    assert len(vocab) == 27 + 3
    assert vocab.decode(vocab.encode(text)) == text


def test_dinos_names_become_padded_batches_with_lengths():
    text = data_file("dinos.txt").read_text(encoding="utf-8").lower()
    vocab = Vocabulary.from_text(text)
    names = [vocab.encode(line) for line in text.splitlines()]
    batches = list(pad_batches(names, 64, vocab.pad_id, eos=vocab.eos_id))
    assert sum(len(lengths) for _, lengths in batches) == 1536
    padded, lengths = batches[0]
    assert vocab.decode(padded[:lengths[0] - 1, 0]) == text.splitlines()[0]
