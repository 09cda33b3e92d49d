"""Text: vocabularies of characters or words (encode / decode, JSON files),
one-hot vectors, and batching of a corpus for training.

- ``Vocabulary``: tokens <-> ids, ``from_text``, ``encode`` / ``decode``,
  ``save`` / ``load``; ``tokenize_words`` / ``join_words`` at word level.
- ``StreamBatches`` / ``stream_batches``: one long text as contiguous streams
  for truncated BPTT; ``train_val_split`` holds out its end.
- ``pad_batches``, ``next_token_pairs``, ``length_mask``: a set of short
  sequences (one name a line) as padded batches with lengths.
- ``one_hot``: ids -> one-hot vectors, for the textbook path.
- ``stdlib_corpus``: the standard library's own sources, a corpus that needs
  no download.

This package knows nothing of models: it deals in ids, numpy int64 arrays,
time-major (T, B).
"""

from .batches import (StreamBatches, length_mask, next_token_pairs, one_hot, pad_batches, stream_batches,
                      train_val_split)
from .corpus import stdlib_corpus
from .vocab import DEFAULT_SPECIALS, UnknownTokenError, Vocabulary, join_words, tokenize_words

__all__ = ["Vocabulary", "UnknownTokenError", "DEFAULT_SPECIALS", "tokenize_words", "join_words", "one_hot",
           "StreamBatches", "stream_batches", "train_val_split", "pad_batches", "next_token_pairs", "length_mask",
           "stdlib_corpus"]
