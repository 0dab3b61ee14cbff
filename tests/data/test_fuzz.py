"""Property-based fuzz of the pretraining input path: arbitrary Unicode text → documents → tokens
→ sentence instances → MLM masks → batches, through the functions ``data.pipeline`` runs.

Lines are any surrogate-free text (control characters, NUL, odd whitespace, empty strings,
whitespace-only and invisible lines, words thousands of characters long, sentences of many words,
lines over the long-line limit, which
is lowered to 300 characters here so that splitting runs on every few examples). The property:
nothing raises, and every batch keeps every rule of ``tests/data/batch_checks.py`` (the schema of
``data/features.py``, ids below V, weights in {0, 1}, valid labels, consistent padding, layout
and type ids, and the exact MLM prediction count).

The masks come from the pipeline's own map function (``pipeline._mask_fn``), traced once per
task as a ``tf.function`` and applied row by row, which is what ``tf.data``'s map does; building
a fresh ``tf.data`` pipeline per example would spend the time budget on tracing.
"""

import functools

import numpy as np
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data import corpus as corpus_lib
from data import features, pipeline, text_files
from data.skipped import Skipped
from data.tokenizer import Tokenizer
from tests.data.batch_checks import check_sentence_batch
from tests.data.conftest import make_options

B, L, P = 8, 32, 5
MAX_CHARS = 300  # the long-line limit, lowered so that the fuzz exercises splitting
_MAX_ROWS = 96  # instances checked per example (an epoch of long fuzzed text can be thousands)

# Fixed: the same examples on every run and machine, no example database written to the repo.
settings.register_profile("pretrax_fuzz", derandomize=True, deadline=None, max_examples=100,
                          database=None, suppress_health_check=[HealthCheck.too_slow,
                                                                HealthCheck.data_too_large])

_ANY_CHAR = st.characters(blacklist_categories=("Cs",))  # every code point but surrogates
_WORD_CHAR = st.characters(whitelist_categories=("L", "N"))
_LINE = st.one_of(
    st.text(_ANY_CHAR, max_size=40),                                  # anything at all
    st.just(""),                                                      # a document break
    st.text(st.sampled_from(" \t\x0b\x0c\r\x1c\x85\xa0\u2028\u3000"), min_size=1, max_size=6),
    # invisible: control, format and space characters, which may tokenise to nothing at all
    st.text(st.characters(whitelist_categories=("Cc", "Cf", "Zs")), min_size=1, max_size=8),
    st.builds(lambda c, n: c * n, _WORD_CHAR, st.integers(50, 2000)),  # one very long word
    st.lists(st.text(_WORD_CHAR, min_size=1, max_size=12), min_size=1, max_size=60).map(
        lambda words: ". ".join(" ".join(words[i:i + 5]) for i in range(0, len(words), 5))),
)
# Always there, so that every task has a usable document; the fuzzed text comes between them.
_SCAFFOLD = ["The ship left the harbour at dawn.", "Nobody on board knew where it was going."]


@functools.cache
def _tokenizer() -> Tokenizer:
    return Tokenizer.load("embedded")


def _options(task: str, whole_word: bool):
    return make_options("fuzz", max_seq_length=L, max_predictions_per_seq=P, short_seq_prob=0.3,
                       whole_word_masking=whole_word, sop_swap_prob=0.5, order_min_segments=1,
                       order_max_segments=3)


@functools.cache
def _mask(task: str, whole_word: bool):
    """The pipeline's map function for ``task``, traced once."""
    tok, objectives = _tokenizer(), ("mlm", task)
    fn = pipeline._mask_fn(_options(task, whole_word).instances, tok.vocab_size,
                           tok.is_word_start() if whole_word else None,
                           tf.constant([0, 1234], tf.int64), task,
                           tuple(features.schema(objectives)))
    spec = [tf.TensorSpec([L], tf.int32), tf.TensorSpec([L], tf.int32),
            tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int64)]
    return tf.function(fn, input_signature=spec)


def _batch(arrays, mask) -> dict[str, np.ndarray]:
    rows = [mask(*(tf.constant(a[i]) for a in arrays)) for i in range(B)]
    return {k: np.stack([r[k].numpy() for r in rows]) for k in rows[0]}


@settings(settings.get_profile("pretrax_fuzz"))
@given(lines=st.lists(_LINE, min_size=1, max_size=14), task=st.sampled_from(["nsp", "sop",
                                                                               "order"]),
       whole_word=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_any_text_gives_valid_batches(lines, task, whole_word, seed):
    skipped = Skipped()
    located = [(f"fuzz:{i}", x) for i, x in enumerate(["", *_SCAFFOLD, "", *lines, "",
                                                       *_SCAFFOLD])]
    docs = text_files.documents_from_lines(located, skipped, max_chars=MAX_CHARS)
    assert all(len(s) <= MAX_CHARS and s == s.strip() and s for d in docs for s in d)
    tok, options = _tokenizer(), _options(task, whole_word).instances
    tokens = corpus_lib.tokenize_documents(tok, docs, skipped)
    counts = corpus_lib.unigram_counts(tokens, tok.vocab_size)
    corpus = corpus_lib.PretrainingCorpus(
        tokenizer=tok, shards={0: corpus_lib.CorpusShard(train_docs=tokens, eval_docs=tokens)},
        unigram_counts=counts, source="fuzz")
    usable = corpus_lib.task_documents(corpus, 0, "train", task, options)
    epochs = pipeline._train_epochs(usable, options, seed, 0, B, 0, task)
    arrays = next(epochs)  # the first epoch's whole batches (the rest opens the next epoch)
    for start in range(0, min(len(arrays[0]), _MAX_ROWS), B):
        batch = _batch([a[start:start + B] for a in arrays], _mask(task, whole_word))
        check_sentence_batch(batch, ("mlm", task), batch_size=B, max_seq_length=L,
                             max_predictions=P, vocab_size=tok.vocab_size,
                             masked_lm_prob=options.masked_lm_prob, max_segments=3,
                             exact_count=not whole_word)
