"""Streamed corpora (``stream:``, ``prepared:``, mixtures): every objective family's batches keep
the schema and the rules of the in-memory ones, a stream resumed from its state continues
exactly, held-out documents never train, and bad specs fail in one line."""

import itertools

import numpy as np
import pytest

from data import mixture, prepared, sources, stream_pipeline, streaming
from data.corpus import tokenize_documents, unigram_counts
from data.tokenizer import Tokenizer
from tests.data.batch_checks import check_schema, check_sentence_batch
from tests.data.conftest import make_options
from tests.data.stream_corpus import write_prepared_corpus, write_split_corpus

B = 8


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("streamed")
    stream = write_split_corpus(str(root / "text"))
    prep = write_prepared_corpus(str(root / "prep"))
    return {"stream": stream, "prepared": prep, "mixture": f"a=0.7:{stream},b=0.3:{prep}"}


def _options(corpus: str, **kw):
    return make_options(corpus, eval_fraction=0.2, stream_chunk_documents=16, **kw)


_FAMILIES = [("sentence", ("mlm", "nsp")), ("sentence", ("mlm", "sop")),
             ("sentence", ("mlm", "order")), ("clm", ("clm",)), ("plm", ("plm",))]


def _dataset(kind, objectives, o, split, batch_size=B, **kw):
    opts = {"sentence": o.instances, "clm": o.clm, "plm": o.plm}[kind]
    return stream_pipeline.make_dataset(kind, o.corpus, opts, split, batch_size=batch_size,
                                        seed=3, objectives=objectives, **kw)


@pytest.mark.parametrize("source", ["stream", "prepared", "mixture"])
@pytest.mark.parametrize("kind,objectives", _FAMILIES)
def test_batches_keep_the_schema_and_rules(corpora, source, kind, objectives):
    o = _options(corpora[source])
    train = list(itertools.islice(_dataset(kind, objectives, o, "train"), 12))
    evals = list(_dataset(kind, objectives, o, "eval"))
    assert len(train) == 12 and evals
    for batch in train + evals:
        check_schema(batch, objectives, B=B, L=64, P=10)
        if kind == "sentence":
            check_sentence_batch(batch, objectives, batch_size=B, max_seq_length=64,
                                 max_predictions=10, vocab_size=8192)
        elif kind == "clm":
            real = batch["segment_ids"] > 0
            assert np.all(batch["clm_weights"][~real] == 0)
        else:
            assert np.all(batch["plm_weights"].sum(axis=1) >= 1)
    # Train rows are shuffled and differ from batch to batch.
    assert not np.array_equal(train[0]["token_ids"], train[1]["token_ids"])


@pytest.mark.parametrize("source", ["stream", "prepared", "mixture"])
@pytest.mark.parametrize("kind,objectives", [_FAMILIES[0], _FAMILIES[3], _FAMILIES[4]])
def test_a_stream_resumed_from_its_state_continues_exactly(corpora, source, kind, objectives):
    o = _options(corpora[source])
    stream = _dataset(kind, objectives, o, "train")
    for steps in (7, 23):  # inside the first chunk, then past chunks, files and an epoch
        list(itertools.islice(stream, steps))
        state = stream.state()
        resumed = _dataset(kind, objectives, o, "train", stream_state=state)
        for a, b in zip(itertools.islice(stream, 4), itertools.islice(resumed, 4), strict=True):
            assert a.keys() == b.keys()
            for k in a:
                np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert stream.state()["0"]["counter"] == (7 + 4 + 23 + 4) * B


def test_two_shards_in_one_process_are_two_processes_side_by_side(corpora):
    o = _options(corpora["prepared"], num_shards=2)
    both = list(itertools.islice(_dataset("sentence", ("mlm", "nsp"), o, "train"), 5))
    one = [list(itertools.islice(_dataset("sentence", ("mlm", "nsp"), o, "train",
                                          batch_size=B // 2, process_index=i, process_count=2),
                                 5)) for i in range(2)]
    for step in range(5):
        for k in both[step]:
            np.testing.assert_array_equal(
                both[step][k], np.concatenate([one[0][step][k], one[1][step][k]]), err_msg=k)


def test_held_out_documents_never_train(corpora):
    tok = Tokenizer.load("embedded")
    source = streaming.open_source(corpora["stream"], tok)
    trained, skipped = [], streaming.Skipped()
    chunks = streaming.iter_chunks(source, 0, 1, 3, 0.2, 16, streaming.ChunkStart(), skipped)
    for start, docs in chunks:
        if start.epoch:
            break
        trained.extend(tuple(d) for d in docs)
    every = {p: [tuple(d) for d in sources.read_text_file(p)] for p in source.files}
    held = [d for p, docs in every.items() for i, d in enumerate(docs)
            if streaming.held_out(p, i, 0.2)]
    kept = [d for p, docs in every.items() for i, d in enumerate(docs)
            if not streaming.held_out(p, i, 0.2)]
    assert 0.1 < len(held) / (len(held) + len(kept)) < 0.3
    assert sorted(trained) == sorted(kept)
    assert len(streaming.eval_documents(source, 0, 1, 0.2, 10_000, skipped)) == len(held)
    assert len(streaming.eval_documents(source, 0, 1, 0.2, 5, skipped)) == 5


def test_prepared_manifest_counts_and_tokenizer_check(corpora, tmp_path):
    directory = corpora["prepared"][len("prepared:"):]
    manifest = prepared.read_manifest(directory)
    tok = Tokenizer.load("embedded")
    text = corpora["stream"][len("stream:"):]
    docs = tokenize_documents(tok, sources.read_documents(text))
    assert sum(s["documents"] for s in manifest["shards"]) == len(docs)
    total = prepared.unigram_counts(directory, list(range(len(manifest["shards"]))))
    np.testing.assert_array_equal(total, unigram_counts(docs, tok.vocab_size))
    read = [d for f in prepared.shard_files(directory, manifest)
            for d in prepared.iter_documents(f)]
    assert sorted(np.concatenate(d).tobytes() for d in read) == sorted(
        np.concatenate(d).tobytes() for d in docs)
    manifest["tokenizer"]["sha256"] = "0" * 64
    with pytest.raises(ValueError, match="was tokenised with .* not with this run's tokenizer"):
        prepared.check_tokenizer(directory, manifest, tok)


def test_fewer_files_than_shards_is_a_one_line_error(corpora):
    o = _options(corpora["stream"], num_shards=8)
    with pytest.raises(ValueError, match=r"has 4 files, fewer than data.num_shards=8.*more files"):
        list(itertools.islice(_dataset("clm", ("clm",), o, "train"), 1))


@pytest.mark.parametrize("spec,message", [
    ("a=0:stream:x", "weights must be positive"),
    ("a=-1:stream:x", "weights must be positive"),
    ("a=zero:stream:x", "weights must be positive"),
    ("a=1:stream:x,a=1:prepared:y", "appears twice"),
    ("a=1:tfds:wiki", "must be 'stream:GLOB"),
    ("a=1:stream:x,=2:prepared:y", "malformed"),
])
def test_bad_mixture_specs_are_one_line_errors(spec, message):
    with pytest.raises(ValueError, match=message) as err:
        mixture.parse(spec)
    assert "\n" not in str(err.value)


def test_mixture_rows_follow_the_weights(corpora):
    o = _options(corpora["mixture"])
    stream = _dataset("clm", ("clm",), o, "train")
    list(itertools.islice(stream, 100))
    shares = stream.shares()
    assert shares.keys() == {"data/share/a", "data/share/b"}
    assert shares["data/share/a"] == pytest.approx(0.7, abs=0.05)
    assert mixture.parse("x=3:stream:a,b,y=1:prepared:c") == [
        ("x", 0.75, "stream:a,b"), ("y", 0.25, "prepared:c")]


def test_the_chunk_size_is_safe_on_resume_only_when_it_is_new():
    from launch.train import workdir

    assert workdir._is_safe("data.stream_chunk_documents: None -> 4096")
    assert not workdir._is_safe("data.stream_chunk_documents: 16 -> 4096")
