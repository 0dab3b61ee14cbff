"""The options each input pipeline takes: small frozen records, checked when built.

The run config (``launch/configs``) keeps its field names; ``launch/train/data_options.py`` is the
one place that turns its sections into these records, so ``data/`` never sees a ConfigDict. A
field's name here is the config field's (``--config.data.<field>`` or ``--config.task.<field>``).

* :class:`CorpusOptions`: which text, which tokenizer, the held-out part and the data shards
  (every pretraining pipeline, ``data.corpus.load_corpus``);
* :class:`InstanceOptions`: BERT-family instances (MLM masks and one of NSP, SOP, order);
* :class:`ClmOptions`, :class:`PlmOptions`: causal-LM rows, XLNet permutation-LM instances;
* :class:`DenoisingOptions`: encoder–decoder denoising rows (T5 span corruption, BART sentence
  permutation);
* :class:`TaskOptions`: a fine-tuning task (``data.tasks``); :class:`QaOptions`: span-QA windows.

A value that would fail later, obscurely or silently (a probability of 15, a stride of 0 that
never advances, blocks that do not tile the sequence), is a one-line ValueError here naming the
field and what to use.
"""

from __future__ import annotations

import dataclasses


def _check(ok: bool, field: str, value, rule: str) -> None:
    if not ok:
        raise ValueError(f"{field}={value!r}: {rule}")


def _check_probability(field: str, value: float) -> None:
    _check(0.0 <= value <= 1.0, field, value, "a probability, use a value in [0, 1]")


@dataclasses.dataclass(frozen=True)
class CorpusOptions:
    """The pretraining corpus (``data.corpus.load_corpus``)."""

    corpus: str = "embedded"
    """``"embedded"``, a file or glob of text files (one sentence a line, a blank line between
    documents; ``.gz`` read through), or ``"tfds:NAME:FEATURE"`` (``data.sources``)."""
    tokenizer: str = "embedded"
    """A SentencePiece model: ``"embedded"`` or a ``.model`` path (``data.tokenizer.load``)."""
    tfds_data_dir: str = ""
    """Where prepared TFDS datasets live; ``""`` = TFDS's default."""
    eval_fraction: float = 0.02
    """The share of each shard's documents held out for evaluation, in [0, 1)."""
    num_shards: int = 0
    """Independent input streams the corpus is cut into; 0 = one per process. Fixing it gives
    the same global batches whatever the number of hosts."""
    stream_chunk_documents: int = 4096
    """Streamed corpora (``stream:``, ``prepared:``, mixtures; ``data.streaming``): documents
    per chunk, the unit that is tokenised, turned into instances and shuffled (the shuffle
    buffer); memory grows with it. Also the most held-out documents a shard's eval keeps
    (found among at most 8 times as many documents)."""

    def __post_init__(self):
        _check(bool(self.corpus), "corpus", self.corpus,
               "name a corpus: 'embedded', text files (a glob) or 'tfds:NAME:FEATURE'")
        _check(bool(self.tokenizer), "tokenizer", self.tokenizer,
               "name a tokenizer: 'embedded' or a SentencePiece .model path")
        _check(0.0 <= self.eval_fraction < 1.0, "eval_fraction", self.eval_fraction,
               "the held-out share of the documents must be in [0, 1), e.g. 0.02")
        _check(self.num_shards >= 0, "num_shards", self.num_shards,
               "use 0 (one shard per process) or a positive multiple of the process count")
        _check(self.stream_chunk_documents >= 1, "stream_chunk_documents",
               self.stream_chunk_documents, "a chunk holds at least 1 document; use e.g. 4096")


@dataclasses.dataclass(frozen=True)
class InstanceOptions:
    """BERT-family instances: ``[CLS] A [SEP] B [SEP]`` pairs (or order segments) and MLM masks
    (``data.pipeline.make_dataset``)."""

    max_seq_length: int
    """``L``, tokens per instance, special tokens included."""
    max_predictions_per_seq: int
    """``P``, MLM prediction slots per instance (unused slots have weight 0)."""
    masked_lm_prob: float = 0.15
    """The share of a sequence's word pieces that MLM predicts (at least 1, at most ``P``)."""
    short_seq_prob: float = 0.1
    """Probability of a shorter target length, so short inputs are not out of distribution."""
    nsp_random_prob: float = 0.5
    """NSP: probability that segment B comes from another document ("not next")."""
    whole_word_masking: bool = False
    """Mask (and for XLNet, predict) whole words rather than single pieces."""
    sop_swap_prob: float = 0.5
    """SOP: probability that the two segments are swapped."""
    order_min_segments: int = 1
    """Order recovery: the fewest segments ``k`` a passage is cut into."""
    order_max_segments: int = 3
    """Order recovery: the most segments ``k``; the head has ``Σ_{k ≤ max} k!`` classes."""
    order_mid_sentence: bool = False
    """Order recovery: start each passage a random number of tokens into its first sentence and
    end it inside its last, so no segment is recognisably first (a capitalised sentence start)
    or last (a full stop): the accuracy then measures order, not boundary cues."""

    def __post_init__(self):
        _check(self.max_seq_length >= 5, "max_seq_length", self.max_seq_length,
               "[CLS] A [SEP] B [SEP] needs at least 5 tokens; use 128 or 512")
        _check(self.max_predictions_per_seq >= 1, "max_predictions_per_seq",
               self.max_predictions_per_seq,
               "MLM needs at least 1 prediction slot; use about max_seq_length * masked_lm_prob")
        for field in ("masked_lm_prob", "short_seq_prob", "nsp_random_prob", "sop_swap_prob"):
            _check_probability(field, getattr(self, field))
        _check(1 <= self.order_min_segments <= self.order_max_segments, "order_min_segments",
               self.order_min_segments,
               f"need 1 <= order_min_segments <= order_max_segments={self.order_max_segments}")


@dataclasses.dataclass(frozen=True)
class ClmOptions:
    """Causal-LM rows: documents packed into rows of ``L`` tokens (``data.clm.make_dataset``)."""

    max_seq_length: int
    """``L``, tokens per packed row."""

    def __post_init__(self):
        _check(self.max_seq_length >= 2, "max_seq_length", self.max_seq_length,
               "a row needs a token and its next one to predict; use 128 or 1024")


@dataclasses.dataclass(frozen=True)
class DenoisingOptions:
    """Encoder–decoder denoising rows (``data.seq2seq_pretraining.make_dataset``)."""

    max_seq_length: int
    """``Ls``, source (encoder) tokens; span corruption fills it exactly."""
    max_target_length: int
    """``Lt``, target (decoder) tokens (span corruption needs ``random_spans_helper``'s)."""
    denoising: str = "span_corruption"
    """``span_corruption`` (T5) or ``sentence_permutation`` (BART's, generative)."""
    noise_density: float = 0.15
    """Span corruption: the fraction of tokens masked (T5: 0.15)."""
    mean_noise_span_length: float = 3.0
    permutation_noise_density: float = 0.0
    """Sentence permutation: the fraction of the shuffled input also masked (BART's text
    infilling, one mask id a span); 0 = permutation alone."""

    def __post_init__(self):
        _check(self.denoising in ("span_corruption", "sentence_permutation"), "denoising",
               self.denoising, "use span_corruption (T5) or sentence_permutation (BART)")
        _check(self.max_seq_length >= 4, "max_seq_length", self.max_seq_length,
               "rows need room for tokens, sentinels and EOS; use 64 or more")
        _check(self.max_target_length == 0 or self.max_target_length >= 4, "max_target_length",
               self.max_target_length, "use 0 (the objective's own) or 4 or more")
        _check_probability("noise_density", self.noise_density)
        _check_probability("permutation_noise_density", self.permutation_noise_density)
        _check(self.mean_noise_span_length >= 1.0, "mean_noise_span_length",
               self.mean_noise_span_length, "spans are at least 1 token long; use 3 as T5 does")


@dataclasses.dataclass(frozen=True)
class PlmOptions:
    """XLNet permutation-LM instances (``data.plm.make_dataset``)."""

    instances: InstanceOptions
    """BERT's sentence pairs that XLNet reuses (``max_seq_length`` L, ``short_seq_prob``,
    ``nsp_random_prob``), its ``max_predictions_per_seq`` (P) and ``whole_word_masking`` (spans
    start and end at word starts); the MLM and SOP/order fields are not read."""
    plm_k: float = 6.0
    """``K``: about 1/K of the tokens, the last of the factorisation order, are predicted."""
    plm_max_span: int = 5
    """Longest target span in words (a span of n words has probability ∝ 1/n)."""
    perm_size: int = 0
    """Tokens per block of the permutation (the same shuffle in every block); 0 = ``L``."""

    def __post_init__(self):
        _check(self.plm_k >= 1.0, "plm_k", self.plm_k,
               "about 1/K of the tokens are predicted, so K must be at least 1 (XLNet: 6)")
        _check(self.plm_max_span >= 1, "plm_max_span", self.plm_max_span,
               "target spans are 1 or more words long; use 5 as XLNet does")
        length = self.instances.max_seq_length
        _check(self.perm_size >= 0 and (self.perm_size == 0 or length % self.perm_size == 0),
               "perm_size", self.perm_size,
               f"use 0 (the whole sequence) or a divisor of max_seq_length={length}")


@dataclasses.dataclass(frozen=True)
class TaskOptions:
    """A fine-tuning task (``data.tasks``): an embedded, TFDS or ``"file"`` task."""

    name: str
    """A ``data.tasks.TASKS`` name (``sentiment_rt``, ``glue/sst2``, …) or ``"file"``."""
    tfds_data_dir: str = ""
    """Where prepared TFDS datasets live; ``""`` = TFDS's default."""
    train_path: str = ""
    """File task: the training file (TSV/CSV with a header row, or JSONL; ``.gz`` allowed)."""
    dev_path: str = ""
    """File task: the dev file; ``""`` = 10% of train, carved by a stable hash of the text."""
    test_path: str = ""
    """File task: the test file; ``""`` = another 10% of train, carved alike."""
    format: str = ""
    """File task: ``tsv``, ``csv`` or ``jsonl``; ``""`` = from the file's extension."""
    text_column: str = "text"
    """File task: the column of the (first) text."""
    text_b_column: str = ""
    """File task: the column of the second text of a pair; ``""`` = single texts."""
    label_column: str = "label"
    """File task: the column of the label."""
    labels: str = ""
    """File task: the class names in class-index order, comma-separated; ``""`` = the sorted
    distinct labels of the train file."""
    kind: str = "classification"
    """File task: ``classification``, ``regression`` or ``seq2seq`` (``data.seq2seq_tasks``)."""
    source_column: str = "source"
    """Seq2seq file task: the column of the source text."""
    target_column: str = "target"
    """Seq2seq file task: the column of the target text."""
    max_train_examples: int = 0
    """A label budget: that many training examples, chosen by the seed; 0 = every one."""
    max_eval_examples: int = 0
    """Dev and test: that many examples each, the same subset for every run (chosen with seed 0,
    file order kept); 0 = every one. For comparisons that must fit a time budget."""

    def __post_init__(self):
        _check(bool(self.name), "name", self.name,
               "name a task: an embedded or TFDS task (data.tasks.TASKS) or 'file'")


@dataclasses.dataclass(frozen=True)
class QaOptions:
    """Span-QA windows ``[CLS] question [SEP] context-window [SEP]`` (``data.qa.encode``)."""

    max_seq_length: int
    """``L``, tokens per window."""
    doc_stride: int = 128
    """Tokens between the starts of consecutive windows over a long context."""
    max_query_length: int = 64
    """Questions are cut to this many tokens."""

    def __post_init__(self):
        _check(self.doc_stride >= 1, "doc_stride", self.doc_stride,
               "windows must move on through a long context; use at least 1 (BERT: 128)")
        _check(self.max_query_length >= 1, "max_query_length", self.max_query_length,
               "questions need at least 1 token; use 64 as BERT does")
