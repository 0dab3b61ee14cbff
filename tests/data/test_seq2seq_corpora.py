"""The monolingual pretraining corpora and the es-en tokenizer: train split only, no aligned
pairs, Spanish accents round-trip, T5 sentinels on ids 7..106."""

import gzip
import hashlib
import json
import os

import pytest

from data import denoising, monolingual, seq2seq_tasks, sources
from data.tokenizer import Tokenizer

TOKENIZER = "data/tokenizers/bible_es_en_8k"


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.load(TOKENIZER + ".model")


def _verses(split):
    out = {"es": set(), "en": set()}
    for row in seq2seq_tasks.bible_rows():
        if row["split"] == split:
            out["es"].add(row["es"])
            out["en"].add(row["en"])
    return out


def test_the_shipped_corpora_are_what_the_builder_writes(tmp_path):
    written = monolingual.write_corpora(str(tmp_path))
    for lang, path in monolingual.corpus_paths().items():
        with open(path, "rb") as a, open(written[lang], "rb") as b:
            assert a.read() == b.read()


@pytest.mark.parametrize("lang", monolingual.LANGUAGES)
def test_corpora_hold_every_train_verse_and_no_dev_or_test_verse(lang):
    docs = sources.read_documents(monolingual.corpus_paths()[lang])
    lines = [s for d in docs for s in d]
    assert len(docs) == 1037 and len(lines) == 27174
    assert set(lines) == _verses("train")[lang]
    held_out = _verses("dev")[lang] | _verses("test")[lang]
    assert not set(lines) & (held_out - _verses("train")[lang])


def test_the_two_languages_are_not_aligned():
    es = monolingual.monolingual_documents("es")
    en = monolingual.monolingual_documents("en")
    assert sorted(n for n, _ in es) == sorted(n for n, _ in en)  # same chapters …
    same_place = sum(a == b for (a, _), (b, _) in zip(es, en, strict=True))
    assert same_place < 10  # … in independent orders (about 1 expected by chance)


def test_the_tokenizer_was_trained_on_the_train_corpora_only():
    with open(TOKENIZER + ".manifest.json", encoding="utf-8") as f:
        manifest = json.load(f)
    shipped = {}
    for path in monolingual.corpus_paths().values():
        with open(path, "rb") as f:
            shipped[os.path.basename(path)] = hashlib.sha256(f.read()).hexdigest()
    assert {i["file"]: i["sha256"] for i in manifest["inputs"]} == shipped
    assert manifest["options"]["vocab_size"] == 8192 and manifest["options"]["sentinels"] == 100


def test_spanish_accents_round_trip(tok):
    texts = ["¿De dónde, pues, tienes el agua viva? ¡Oh Jehová! Señor, fué á Jerusalén.",
             "Pingüino, ÁÉÍÓÚÑ y ç€ (nunca vistos) también.", "The woman said, “Sir.”"]
    assert tok.decode(tok.encode(texts)) == texts
    assert tok.special_ids.unk not in sum(tok.encode(texts), [])


def test_sentinels_follow_the_specials(tok):
    ids = denoising.sentinel_ids(tok)
    assert list(ids) == list(range(7, 107))
    assert tok.piece(7) == "<extra_id_0>" and tok.piece(106) == "<extra_id_99>"
    assert tok.encode(["<extra_id_3>"])[0][-1] == 10  # kept whole


def test_a_tokenizer_without_sentinels_is_refused():
    with pytest.raises(ValueError, match="--sentinels"):
        denoising.sentinel_ids(Tokenizer.load())


def test_the_corpora_are_gzip_with_blank_lines_between_chapters():
    with gzip.open(monolingual.corpus_paths()["es"], "rt", encoding="utf-8") as f:
        text = f.read()
    assert text.count("\n\n") == 1036 and "\t" not in text


def test_training_with_sentinels_and_byte_fallback_writes_a_manifest(tmp_path):
    from data import tokenizer

    text = tmp_path / "es.txt"
    with gzip.open(monolingual.corpus_paths()["es"], "rt", encoding="utf-8") as f:
        text.write_text("".join(f.readline() for _ in range(1500)), encoding="utf-8")
    prefix = str(tmp_path / "tiny")
    path = tokenizer.train([str(text)], prefix, vocab_size=600,
                           user_defined_symbols=tokenizer.sentinel_symbols(4),
                           character_coverage=1.0, byte_fallback=True)
    tok = Tokenizer.load(path)
    assert [tok.piece(i) for i in range(7, 11)] == [f"<extra_id_{i}>" for i in range(4)]
    assert tok.decode(tok.encode(["año ñandú €"])) == ["año ñandú €"]
    manifest = tokenizer.write_manifest(prefix, [str(text)], {"vocab_size": 600})
    with open(manifest, encoding="utf-8") as f:
        got = json.load(f)
    assert got["inputs"][0]["file"] == "es.txt" and got["options"] == {"vocab_size": 600}
    assert got["inputs"][0]["sha256"] == hashlib.sha256(text.read_bytes()).hexdigest()
