"""Tests for data/pipeline.py: schema, statistics, determinism, resumption, sharding."""

import hashlib
import itertools

import numpy as np
import pytest

from data import corpus as corpus_lib
from data import features, pipeline, sources
from data.tokenizer import Tokenizer

B = 8


def _stream(opts, split, **kwargs):
    """``pipeline.make_dataset`` with the records of ``opts`` (a ``conftest.DataOptions``)."""
    return pipeline.make_dataset(opts.corpus, opts.instances, split, **kwargs)


def _take(opts, n, **kwargs):
    kwargs = {"batch_size": B, "seed": 0, **kwargs}
    return list(itertools.islice(_stream(opts, "train", **kwargs), n))


def _restore(batch):
    """int32 [B, L]: the unmasked sequences (targets put back at their positions)."""
    tokens = batch["token_ids"].copy()
    rows, slots = np.nonzero(batch["mlm_weights"])
    tokens[rows, batch["mlm_positions"][rows, slots]] = batch["mlm_targets"][rows, slots]
    return tokens


def _assert_equal_batches(xs, ys):
    assert len(xs) == len(ys)
    for x, y in zip(xs, ys, strict=True):
        assert x.keys() == y.keys()
        for k in x:
            np.testing.assert_array_equal(x[k], y[k], err_msg=k)


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    """Five short documents: an epoch is ~10 instances, so epoch boundaries come quickly."""
    path = tmp_path_factory.mktemp("tiny") / "tiny.txt"
    docs = ["\n".join(f"Document {d} has sentence {s} about the sea." for s in range(3 + d))
            for d in range(6)]
    path.write_text("\n\n".join(docs) + "\n")
    return str(path)


def test_schema_train_and_eval(fixture_corpus, data_options):
    opts = data_options(fixture_corpus)
    want = features.shapes("bert_pretrain", B=B, L=64, P=10)
    for split in ("train", "eval"):
        batches = list(itertools.islice(
            _stream(opts, split, batch_size=B, seed=0), 3))
        assert batches, split
        for batch in batches:
            assert {k: (v.shape, v.dtype.name) for k, v in batch.items()} == want


def test_layout_targets_and_statistics(fixture_corpus, data_options):
    opts = data_options(fixture_corpus)
    batches = _take(opts, 40)
    masked, chosen, candidates, nsp = 0, 0, 0, []
    for batch in batches:
        tokens = _restore(batch)
        assert not np.any(tokens == features.MASK_ID)  # Every [MASK] had its target put back.
        assert np.all(tokens[:, 0] == features.CLS_ID)
        for row, types in zip(tokens, batch["type_ids"], strict=True):
            seps = np.flatnonzero(row == features.SEP_ID)
            assert len(seps) == 2
            assert np.all(types[:seps[0] + 1] == 0) and np.all(types[seps[0] + 1:seps[1] + 1] == 1)
            assert np.all(types[seps[1] + 1:] == 0) and np.all(row[seps[1] + 1:] == 0)
        w = batch["mlm_weights"].astype(bool)
        masked += (batch["token_ids"][np.nonzero(w)[0], batch["mlm_positions"][w]]
                   == features.MASK_ID).sum()
        chosen += w.sum()
        candidates += (tokens >= features.NUM_SPECIAL_IDS).sum()
        nsp.extend(batch["nsp_labels"].tolist())
    # num_to_predict = round(0.15 * candidates) per sequence (P=10 never binds below 64 tokens).
    assert abs(chosen / candidates - 0.15) < 0.5 * len(nsp) / candidates
    assert abs(masked / chosen - 0.8) < 4 * np.sqrt(0.16 / chosen)
    # Above 0.5: a chunk of one sentence always takes a random B, as in BERT.
    assert 0.4 < np.mean(nsp) < 0.7


def test_targets_match_instances(tiny_corpus, data_options):
    opts = data_options(tiny_corpus, eval_fraction=0.2, max_seq_length=32,
                        max_predictions_per_seq=5)
    corpus = pipeline.load_corpus(opts.corpus)
    inst = pipeline._instances(corpus.train_docs, opts.instances,
                               pipeline._rng(pipeline._TRAIN, 0, 0, 0))
    batch = _take(opts, 1)[0]
    np.testing.assert_array_equal(_restore(batch), inst["token_ids"][:B])
    np.testing.assert_array_equal(batch["type_ids"], inst["type_ids"][:B])
    np.testing.assert_array_equal(batch["nsp_labels"], inst["nsp_labels"][:B])


def test_same_seed_same_batches_other_seed_differs(fixture_corpus, data_options):
    opts = data_options(fixture_corpus)
    _assert_equal_batches(_take(opts, 3, seed=5), _take(opts, 3, seed=5))
    other = _take(opts, 1, seed=6)[0]
    assert not np.array_equal(_take(opts, 1, seed=5)[0]["token_ids"], other["token_ids"])


def test_resume_matches_uninterrupted_stream(tiny_corpus, data_options):
    opts = data_options(tiny_corpus, eval_fraction=0.2, max_seq_length=32,
                        max_predictions_per_seq=5)
    corpus = pipeline.load_corpus(opts.corpus)
    epoch0 = len(pipeline._instances(corpus.train_docs, opts.instances,
                                     pipeline._rng(pipeline._TRAIN, 0, 0, 0))["nsp_labels"])
    stream = _take(opts, 12, batch_size=4)
    assert epoch0 % 4 and 12 * 4 > 3 * epoch0  # Batches straddle epochs; several epochs pass.
    for k in (1, epoch0 // 4, epoch0 // 4 + 1, 7):
        _assert_equal_batches(_take(opts, 3, batch_size=4, start_position=4 * k), stream[k:k + 3])


def test_eval_is_fixed_and_finite(fixture_corpus, data_options):
    opts = data_options(fixture_corpus)
    one = list(_stream(opts, "eval", batch_size=B, seed=0))
    two = list(_stream(opts, "eval", batch_size=B, seed=0))
    assert len(one) >= 1
    _assert_equal_batches(one, two)


def test_eval_repeats_until_one_batch(tiny_corpus, data_options):
    opts = data_options(tiny_corpus, eval_fraction=0.2, max_seq_length=32,
                        max_predictions_per_seq=5)
    assert len(pipeline.load_corpus(opts.corpus).eval_docs) == 1
    batches = list(_stream(opts, "eval", batch_size=16, seed=0))
    assert len(batches) == 1


def _disjoint_corpus(path, tokenizer: Tokenizer):
    """Eight documents whose words are single pieces that no other document uses."""
    words = [p[1:] for p in (tokenizer.piece(i) for i in range(1000, 3000))
             if p[1:].isalpha() and len(p) > 4]
    words = [w for w in words if len(tokenizer.encode([w])[0]) == 1][:8 * 12]
    docs = ["\n".join(" ".join(words[12 * d + j] for j in range(s, s + 6))
                      for s in range(6)) for d in range(8)]
    path.write_text("\n\n".join(docs) + "\n")
    return str(path)


def _tokens(docs) -> set[int]:
    return set(np.concatenate([s for d in docs for s in d]).tolist())


def test_processes_read_disjoint_documents(tmp_path, data_options):
    """One file, two shards: each process tokenises only its dealt documents, docs[p::2]."""
    opts = data_options(_disjoint_corpus(tmp_path / "disjoint.txt", Tokenizer.load()),
                        eval_fraction=0.25, max_seq_length=24, max_predictions_per_seq=4)
    whole = pipeline.load_corpus(opts.corpus)
    everything = whole.train_docs + whole.eval_docs
    corpora = [pipeline.load_corpus(opts.corpus, process_index=p, process_count=2)
               for p in range(2)]
    for p, corpus in enumerate(corpora):
        assert list(corpus.shards) == [p]
        assert (len(corpus.train_docs), len(corpus.eval_docs)) == (3, 1)
    mine = [_tokens(c.train_docs + c.eval_docs) for c in corpora]
    assert not mine[0] & mine[1] and mine[0] | mine[1] == _tokens(everything)
    for p in range(2):
        seen = set()
        for batch in _take(opts, 6, batch_size=4, process_index=p, process_count=2):
            seen |= set(_restore(batch).ravel().tolist())
        assert seen - set(range(features.NUM_SPECIAL_IDS)) <= _tokens(corpora[p].train_docs)
    evals = [list(_stream(opts, "eval", batch_size=4, seed=0, process_index=p, process_count=2))
             for p in range(2)]
    assert min(len(e) for e in evals) >= 1


def _write_files(directory, num_files: int, docs_per_file: int = 3) -> list[str]:
    paths = []
    for f in range(num_files):
        docs = ["\n".join(f"File {f} document {d} sentence {s} is here." for s in range(4))
                for d in range(docs_per_file)]
        paths.append(directory / f"part{f}.txt")
        paths[-1].write_text("\n\n".join(docs) + "\n")
    return [str(p) for p in paths]


def test_a_shard_opens_and_tokenises_only_its_files(tmp_path, data_options, monkeypatch):
    paths = _write_files(tmp_path, 3)
    opts = data_options(f"{tmp_path}/part*.txt", num_shards=2, eval_fraction=0.2)
    opened, tokenised = [], []
    read, tokenize = sources.read_text_file, corpus_lib.tokenize_documents
    monkeypatch.setattr(sources, "read_text_file",
                        lambda p, *a: opened.append(p) or read(p, *a))
    monkeypatch.setattr(corpus_lib, "tokenize_documents",
                        lambda tok, docs, *a: tokenised.extend(docs) or tokenize(tok, docs, *a))
    corpus = pipeline.load_corpus(opts.corpus, process_index=0, process_count=2)
    assert opened == [paths[0], paths[2]]
    assert tokenised == read(paths[0]) + read(paths[2])
    assert list(corpus.shards) == [0] and len(corpus.train_docs) + len(corpus.eval_docs) == 6


def test_shard_content_does_not_depend_on_process_count(tmp_path, data_options):
    _write_files(tmp_path, 5)
    opts = data_options(f"{tmp_path}/part*.txt", num_shards=4, eval_fraction=0.2)
    by_count = {n: {s: x for p in range(n)
                    for s, x in pipeline.load_corpus(opts.corpus, process_index=p,
                                                     process_count=n).shards.items()}
                for n in (1, 2, 4)}
    for n in (2, 4):
        assert sorted(by_count[n]) == [0, 1, 2, 3]
        for s, shard in by_count[n].items():
            for split in ("train_docs", "eval_docs"):
                want, got = getattr(by_count[1][s], split), getattr(shard, split)
                assert [np.concatenate(d).tolist() for d in got] == [
                    np.concatenate(d).tolist() for d in want], (n, s, split)
    counts = [pipeline.load_corpus(opts.corpus, process_index=p, process_count=2).unigram_counts
              for p in range(2)]
    np.testing.assert_array_equal(counts[0] + counts[1],
                                  pipeline.load_corpus(opts.corpus).unigram_counts)


def test_a_shard_too_small_says_which_and_what_to_do(tmp_path, data_options):
    opts = data_options(_write_files(tmp_path, 1, docs_per_file=5)[0], num_shards=2)
    with pytest.raises(ValueError, match=r"data shard 1 of 2 has 2 documents.*fewer data\."
                                         r"num_shards, more corpus files"):
        pipeline.load_corpus(opts.corpus, process_index=1, process_count=2)


def _digest(batches) -> str:
    h = hashlib.sha256()
    for b in batches:
        for k in sorted(b):
            h.update(k.encode())
            h.update(np.ascontiguousarray(b[k]).tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("num_shards", [0, 1])
def test_single_process_batches_are_unchanged(fixture_corpus, data_options, num_shards):
    """The default single-host path gives the bytes it gave before data shards were read alone.

    The digest was taken from the pipeline that read the whole corpus in every process (3 train
    then 3 eval batches of 8, seed 0); a change here changes every single-host run's data.
    """
    opts = data_options(fixture_corpus, num_shards=num_shards)
    batches = _take(opts, 3) + list(itertools.islice(
        _stream(opts, "eval", batch_size=B, seed=0), 3))
    assert _digest(batches) == ("703eb54710a6dcb6fef963df3af7619a"
                                "e22974c164b5ae52862b64178ca1d9bf")


def test_split_and_unigram_baseline(fixture_corpus, data_options):
    corpus = pipeline.load_corpus(data_options(fixture_corpus).corpus)
    assert (len(corpus.train_docs), len(corpus.eval_docs)) == (17, 2)
    logp = corpus.unigram_log_probs
    assert logp.shape == (corpus.vocab_size,) and logp.dtype == np.float32
    assert np.all(np.isfinite(logp))  # Padded slots (target 0, weight 0) must not give NaN.
    assert logp[:features.NUM_SPECIAL_IDS].max() < logp[features.NUM_SPECIAL_IDS:].min() - 10
    assert np.isclose(np.exp(logp.astype(np.float64)).sum(), 1.0, atol=1e-5)
    the = corpus.tokenizer.encode(["the"])[0][0]
    assert logp[the] > np.log(0.01)
    assert pipeline.load_corpus(data_options(fixture_corpus).corpus) is corpus  # Cached.


def test_split_documents_errors():
    train, held_out = pipeline.split_documents(100, 0.05)
    assert len(held_out) == 5 and not set(train) & set(held_out) and len(train) == 95
    assert pipeline.split_documents(3, 0.0) == ([0, 2], [1])
    with pytest.raises(ValueError, match="fewer than 2 for training"):
        pipeline.split_documents(2, 0.1)


def test_whole_word_masking_in_pipeline(fixture_corpus, data_options):
    opts = data_options(fixture_corpus, whole_word_masking=True)
    starts = pipeline.load_corpus(opts.corpus).tokenizer.is_word_start()
    for batch in _take(opts, 4):
        rows = zip(_restore(batch), batch["mlm_positions"], batch["mlm_weights"], strict=True)
        for row, pos, w in rows:
            chosen = np.zeros(len(row), bool)
            chosen[pos[w > 0]] = True
            is_candidate = row >= features.NUM_SPECIAL_IDS
            # Inside a word (a candidate continuation piece after a candidate), all or nothing.
            inside = is_candidate[1:] & is_candidate[:-1] & ~starts[row[1:]]
            np.testing.assert_array_equal(chosen[1:][inside], chosen[:-1][inside])


@pytest.mark.parametrize("split", ["train", "eval"])
def test_fixed_shards_give_the_same_global_batch_on_any_process_count(fixture_corpus,
                                                                      data_options, split):
    opts = data_options(fixture_corpus, num_shards=2)

    def take(p, n, batch_size):
        kw = dict(batch_size=batch_size, seed=0, process_index=p, process_count=n)
        return list(itertools.islice(_stream(opts, split, **kw), 3))

    whole = take(0, 1, B)
    halves = [take(p, 2, B // 2) for p in range(2)]
    joined = [{k: np.concatenate([a[k], b[k]]) for k in a} for a, b in zip(*halves, strict=True)]
    _assert_equal_batches(joined, whole)
    stream = take(0, 1, B)
    resumed = list(itertools.islice(_stream(
        opts, split, batch_size=B, seed=0, start_position=B), 2)) if split == "train" else None
    if resumed is not None:
        _assert_equal_batches(resumed, stream[1:3])


def test_shard_layout_errors():
    assert pipeline.shard_layout(0, 8, 1, 2) == ([1], 8)
    assert pipeline.shard_layout(4, 8, 1, 2) == ([2, 3], 4)
    with pytest.raises(ValueError, match="multiple of 2"):
        pipeline.shard_layout(3, 8, 0, 2)
    with pytest.raises(ValueError, match="divisible by data.num_shards=4"):
        pipeline.shard_layout(4, 3, 0, 1)
