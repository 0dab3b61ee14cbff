"""Converted workdirs with their own tokenizers: launch.convert → launch.finetune on a tiny BERT
(vocab.txt, BERT's special ids) and → launch.generate on a tiny GPT-2 (byte-level BPE, whose
<|endoftext|> is bos, eos and padding), against transformers on the same tiny random models."""

import collections
import gzip
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import sentencepiece as spm

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

import jax  # noqa: E402

from data import qa, tasks  # noqa: E402
from data import tokenizer as tokenizer_lib  # noqa: E402
from data.options import QaOptions  # noqa: E402
from launch.configs import finetune as finetune_configs  # noqa: E402
from launch.conversion import huggingface  # noqa: E402
from launch.finetuning import run as finetuning  # noqa: E402
from launch.finetuning import setup as finetune_setup  # noqa: E402
from launch.generation import run as generating  # noqa: E402
from launch.train import checkpoint, data_options, train_state  # noqa: E402
from launch.train import mesh as mesh_lib  # noqa: E402
from lm import generation  # noqa: E402
from tests.conftest import FIXTURES  # noqa: E402
from tests.lm.test_hf_maps import _jiggle  # noqa: E402

PAIRS = [("And God said, Let there be light: and there was light.",
          "It is a truth universally acknowledged, that a single man in possession of a good "
          "fortune, must be in want of a wife."),
         ("Call me Ishmael.", "THE Café's naïve résumé!")]
PROMPTS = ["And God said", "The whale, the sea and the ship were"]


@pytest.fixture(scope="module")
def lines() -> list[str]:
    with gzip.open(FIXTURES / "corpus_slice.txt.gz", "rt", encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()][:3000]


@pytest.fixture(scope="module")
def bert(tmp_path_factory, lines):
    """(hf dir, converted workdir) of a tiny random BERT with a vocab.txt of the fixture text."""
    source, out = tmp_path_factory.mktemp("bert_hf"), tmp_path_factory.mktemp("bert_wd")
    words = collections.Counter(w.lower() for line in lines for w in line.split() if w.isalpha())
    chars = sorted({c for line in lines for c in line.lower() if not c.isspace()})
    # As in Google's vocabularies, [UNK] [CLS] [SEP] [MASK] after [unused] rows: ids 6-9, none
    # of them pretrax's own (1-4), so a constant in place of the tokenizer's id fails here.
    vocab = dict.fromkeys(["[PAD]", *(f"[unused{i}]" for i in range(5)), "[UNK]", "[CLS]",
                           "[SEP]", "[MASK]", *chars,
                           *(f"##{c}" for c in chars),
                           *(w for w, _ in words.most_common(300) if len(w) > 1)])
    (source / "vocab.txt").write_text("\n".join(vocab) + "\n")
    (source / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "BertTokenizer", "do_lower_case": True}))
    model = _jiggle(transformers.BertForPreTraining(transformers.BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=64)))
    model.save_pretrained(str(source), safe_serialization=True)
    huggingface.import_hf(str(source), str(out / "wd"))
    return source, str(out / "wd")


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory, lines):
    """(hf dir, converted workdir, transformers model) of a tiny random GPT-2 whose byte-level
    BPE is trained on the fixture text."""
    source, out = tmp_path_factory.mktemp("gpt2_hf"), tmp_path_factory.mktemp("gpt2_wd")
    bpe = tokenizers.ByteLevelBPETokenizer()
    bpe.train_from_iterator(lines, vocab_size=400, show_progress=False)
    bpe.save_model(str(source))
    vocab = json.loads((source / "vocab.json").read_text())
    eos = len(vocab)  # the last id, as GPT-2's 50256
    (source / "vocab.json").write_text(json.dumps({**vocab, "<|endoftext|>": eos}))
    (source / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "GPT2Tokenizer"}))
    model = _jiggle(transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=eos + 1, n_embd=32, n_layer=2, n_head=4, n_inner=64,
        n_positions=64, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=eos,
        eos_token_id=eos)))
    model.save_pretrained(str(source), safe_serialization=True)
    huggingface.import_hf(str(source), str(out / "wd"))
    return source, str(out / "wd"), model


def _finetune_config(init_from: str, pairs_file: str = ""):
    """A few steps on ``pairs_file`` (train = dev = test), else on the embedded sentiment_rt."""
    cfg = finetune_configs.get_config("file" if pairs_file else "sentiment_rt")
    if pairs_file:
        cfg.task.train_path = cfg.task.dev_path = cfg.task.test_path = pairs_file
        cfg.task.text_column, cfg.task.text_b_column = "a", "b"
        cfg.task.labels = "no,yes"
    cfg.init_from = init_from
    cfg.data.max_seq_length = 32
    cfg.train.batch_size = 8
    cfg.train.steps = 4
    cfg.train.evals = 1
    cfg.train.log_every = 2
    return cfg


def _params_only(params) -> train_state.TrainState:
    return train_state.TrainState(step=None, params=params, opt_state=None, skipped_steps=None,
                                nonfinite_run=None)


def test_pair_ids_are_bert_tokenizers(bert):
    source, workdir = bert
    cfg = finetune_setup.resolve(_finetune_config(workdir))
    assert cfg.data.tokenizer == f"hf:{os.path.abspath(source)}"
    ours = tokenizer_lib.load(cfg.data.tokenizer)
    theirs = transformers.BertTokenizer.from_pretrained(str(source))
    # 64 and 40 cut the first pair's longer text (longest-first). Where a cut ends on a tie with
    # an odd budget, transformers 5 (Rust tokenizers) keeps the extra token in b, BERT's own
    # truncate_seq_pair (and data.tasks) in a; lengths here avoid that tie.
    for length in (64, 40):
        rows = tasks.encode(ours, {"text_a": [a for a, _ in PAIRS],
                                   "text_b": [b for _, b in PAIRS], "labels": [0, 1]}, length)
        for i, (a, b) in enumerate(PAIRS):
            want = theirs(a, b, truncation="longest_first", max_length=length)
            n = len(want["input_ids"])
            assert rows["token_ids"][i, :n].tolist() == want["input_ids"]
            assert rows["type_ids"][i, :n].tolist() == want["token_type_ids"]
            assert (rows["token_ids"][i, n:] == theirs.pad_token_id).all()
    # Span QA windows with its ids and its offsets: [CLS] question [SEP] context [SEP], the
    # context's tokens those of BertTokenizer, and the gold span's characters the answer's.
    context, answer = PAIRS[0][1], "a single man"
    example = {"id": "q", "question": PAIRS[1][0], "context": context, "is_impossible": False,
               "answers": [{"text": answer, "answer_start": context.index(answer)}]}
    feats = qa.encode(ours, [example], QaOptions(max_seq_length=128, max_query_length=16),
                      is_training=True)
    question = theirs(example["question"], add_special_tokens=False)["input_ids"]
    body = theirs(context, add_special_tokens=False)["input_ids"]
    row, start = feats.arrays["token_ids"][0], len(question) + 2
    assert row[:start + len(body) + 1].tolist() == [theirs.cls_token_id, *question,
                                                    theirs.sep_token_id, *body, theirs.sep_token_id]
    assert (row[start + len(body) + 1:] == theirs.pad_token_id).all()
    s, e = feats.arrays["start_positions"][0], feats.arrays["end_positions"][0]
    assert context[feats.token_char_start[0, s]:feats.token_char_end[0, e]] == answer


def test_converted_bert_finetunes_from_its_weights(bert, lines, tmp_path, capsys):
    _, workdir = bert
    pairs_file = tmp_path / "pairs.tsv"
    pairs_file.write_text("a\tb\tlabel\n" + "".join(
        f"{lines[2 * i]}\t{lines[2 * i + 1 + i % 2]}\t{('no', 'yes')[i % 2]}\n"
        for i in range(16)))
    cfg = finetune_setup.resolve(_finetune_config(workdir, str(pairs_file)))
    tokenizer = tokenizer_lib.load(cfg.data.tokenizer)
    task = data_options.task_options(cfg.task)
    spec = tasks.task_spec(task)
    model, model_cfg = finetune_setup.make_model(cfg, spec, tokenizer.vocab_size,
                                                 tokenizer.special_ids)
    assert (model_cfg.pad_id, model_cfg.sep_id) == (0, 8)  # vocab.txt's [PAD] and [SEP]
    mesh = mesh_lib.make_mesh(cfg.mesh)
    batch = next(tasks.make_dataset(task, "train", tokenizer=tokenizer, max_seq_length=32,
                                    batch_size=8, seed=0))
    abstract, shardings = finetune_setup.params_shardings(
        model, batch, mesh, mesh_lib.rules_from_config(cfg.logical_axis_rules))
    # What fine-tuning's step 0 starts from (finetuning._start), without compiling an init.
    state = finetune_setup.load_pretrained(cfg, _params_only(abstract), _params_only(shardings))
    _, _, imported, _ = huggingface.load_workdir(workdir)
    jax.tree_util.tree_map(np.testing.assert_array_equal, state.params["encoder"],
                           imported["encoder"])

    results = finetuning.finetune(_finetune_config(workdir, str(pairs_file)),
                                  str(tmp_path / "ft"))
    assert f"loaded from {workdir} (step 0)" in capsys.readouterr().out
    with open(tmp_path / "ft" / "metrics.jsonl") as f:
        losses = [r["loss"] for r in map(json.loads, f) if "loss" in r]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    assert results["steps"] == 4 and results["test"]["examples"] == 16


def test_converted_gpt2_greedy_decoding_is_transformers(gpt2):
    source, workdir, theirs_model = gpt2
    model, params, tokenizer, step = generating.load_model(workdir)
    assert step == 0 and tokenizer.name == f"hf:{os.path.abspath(source)}"
    theirs_tok = transformers.GPT2Tokenizer.from_pretrained(str(source))
    eos = theirs_tok.eos_token_id
    assert eos == tokenizer.special_ids.eos == tokenizer.special_ids.pad == tokenizer.vocab_size - 1
    prompts = tokenizer.encode(PROMPTS)
    assert prompts == [theirs_tok(p)["input_ids"] for p in PROMPTS]
    new = 12
    # Both prompts in one batch, the shorter left-padded with <|endoftext|> (never attended).
    ours = np.asarray(generation.generate(
        model, params, generation.left_pad(prompts, eos), jax.random.key(0), greedy=True,
        max_new_tokens=new, eos_id=eos, pad_id=eos))
    texts = generating.continue_prompts(model, params, tokenizer, PROMPTS, max_new_tokens=new)
    for row, prompt, text in zip(ours, prompts, texts, strict=True):
        with torch.no_grad():
            out = theirs_model.generate(torch.tensor([prompt]), max_new_tokens=new,
                                        do_sample=False, attention_mask=torch.ones(1, len(prompt),
                                                                                   dtype=int),
                                        pad_token_id=eos)
        want = out[0, len(prompt):].tolist()
        assert row[:len(want)].tolist() == want and (row[len(want):] == eos).all()
        assert tokenizer.decode(row) == theirs_tok.decode(row.tolist())
        assert text == theirs_tok.decode(want[:want.index(eos)] if eos in want else want)


def test_generate_binary_on_converted_gpt2(gpt2):
    source, workdir, _ = gpt2
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-m", "launch.generate", f"--workdir={workdir}",
                           f"--prompt={PROMPTS[0]}", "--max_new_tokens=5"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"[step 0, greedy] {PROMPTS[0]} → " in done.stdout


def test_unsupported_converted_finetuning_is_refused_by_name(gpt2, tmp_path):
    source, workdir, _ = gpt2
    with pytest.raises(ValueError, match=r"the tokenizer hf:.*gpt2_hf.* has no \[CLS\] or "
                       r"\[SEP\] token, which the fine-tuning rows \[CLS\] a \[SEP\] b "
                       r"\[SEP\] need"):
        tasks.encode(tokenizer_lib.load(f"hf:{source}"),
                     {"text_a": ["a"], "text_b": None, "labels": [0]}, 16)
    with pytest.raises(ValueError, match=r"data\.tokenizer=hf:.*gpt2_hf.*: fine-tuning a converted "
                       r"model\.arch=gpt is not supported: GPT-2's byte-level BPE has no \[CLS\], "
                       r"\[SEP\] or padding token"):
        finetune_setup.resolve(_finetune_config(workdir))
    cfg = _finetune_config("")
    cfg.model.arch, cfg.data.tokenizer = "xlnet", f"hf:{tmp_path}"
    with pytest.raises(ValueError, match=r"model\.arch=xlnet is not supported: XLNet's tokenizer "
                       r"puts <sep> <cls> at the end of each row"):
        finetune_setup.resolve(cfg)


def test_converted_albert_takes_its_spiece_model(lines, tmp_path):
    """ALBERT's spiece.model in the pipeline: pair ids are AlbertTokenizer's, and the fine-tuning
    model (padding and [SEP] ids from it) restores the converted encoder."""
    source = tmp_path / "hf"
    source.mkdir()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_prefix=str(source / "spiece"), vocab_size=300,
        pad_id=0, unk_id=1, bos_id=-1, eos_id=-1, num_threads=1, minloglevel=2,
        user_defined_symbols=["<x>", "<y>", "[CLS]", "[SEP]", "[MASK]"])  # 4, 5, 6: not 2, 3, 4
    (source / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "AlbertTokenizer"}))
    _jiggle(transformers.AlbertForPreTraining(transformers.AlbertConfig(
        vocab_size=300, embedding_size=16, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=64, max_position_embeddings=64,
        pad_token_id=0))).save_pretrained(str(source), safe_serialization=True)
    huggingface.import_hf(str(source), str(tmp_path / "wd"))
    cfg = finetune_setup.resolve(_finetune_config(str(tmp_path / "wd")))
    assert cfg.model.arch == "albert"
    tokenizer = tokenizer_lib.load(cfg.data.tokenizer)
    theirs = transformers.AlbertTokenizer.from_pretrained(str(source))
    rows = tasks.encode(tokenizer, {"text_a": [a for a, _ in PAIRS],
                                    "text_b": [b for _, b in PAIRS], "labels": [0, 1]}, 64)
    for i, (a, b) in enumerate(PAIRS):
        want = theirs(a, b, truncation="longest_first", max_length=64,
                      return_token_type_ids=True)
        n = len(want["input_ids"])
        assert rows["token_ids"][i, :n].tolist() == want["input_ids"]
        assert rows["type_ids"][i, :n].tolist() == want["token_type_ids"]
        assert (rows["token_ids"][i, n:] == theirs.pad_token_id).all()
    spec = type("Spec", (), {"kind": "classification", "label_names": ("a", "b")})
    model, model_cfg = finetune_setup.make_model(cfg, spec, tokenizer.vocab_size,
                                                 tokenizer.special_ids)
    assert (model_cfg.pad_id, model_cfg.sep_id) == (0, theirs.sep_token_id) == (0, 5)
    batch = {"token_ids": rows["token_ids"][:, :32], "type_ids": rows["type_ids"][:, :32]}
    abstract = finetune_setup.abstract_params(model, batch)["encoder"]
    encoder, step, _ = checkpoint.restore_params_subtree(str(tmp_path / "wd"), "encoder", abstract)
    _, _, imported, _ = huggingface.load_workdir(str(tmp_path / "wd"))
    assert step == 0
    jax.tree_util.tree_map(np.testing.assert_array_equal, encoder, imported["encoder"])


def test_span_qa_finetunes_a_converted_bert_with_its_own_wordpiece(lines, tmp_path, capsys):
    """A BertForMaskedLM whose WordPiece (tokenizer.json alone) is trained here: converted, its
    MLM head loaded and the pooler and NSP head initialised; span QA fine-tunes on it with its
    ids and offsets, and evaluates."""
    source = tmp_path / "hf"
    source.mkdir()
    wordpiece = tokenizers.BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator(lines, vocab_size=2000, show_progress=False)
    wordpiece.save(str(source / "tokenizer.json"))
    _jiggle(transformers.BertForMaskedLM(transformers.BertConfig(
        vocab_size=wordpiece.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=64, max_position_embeddings=64))
            ).save_pretrained(str(source), safe_serialization=True)
    huggingface.import_hf(str(source), str(tmp_path / "wd"))
    out = capsys.readouterr().out
    assert "loaded: encoder (37 tensors), MLM head (5 tensors)\ninitialised: pooler" in out
    assert "note:" not in out  # its tokenizer is read
    cfg = finetune_configs.get_config("qa_disflqa")
    cfg.init_from = str(tmp_path / "wd")
    cfg.data.max_seq_length, cfg.data.doc_stride, cfg.data.max_query_length = 64, 32, 24
    # ~7,400 windows in each of dev and test: evaluated 128 at a time
    cfg.train.batch_size, cfg.train.steps, cfg.train.evals, cfg.train.log_every = 128, 4, 1, 2
    results = finetuning.finetune(cfg, str(tmp_path / "qa"))
    assert f"loaded from {tmp_path / 'wd'} (step 0)" in capsys.readouterr().out
    with open(tmp_path / "qa" / "metrics.jsonl") as f:
        losses = [r["loss"] for r in map(json.loads, f) if "loss" in r]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    test = results["test"]
    assert results["main_metric"] == "f1" and results["steps"] == 4
    assert test["total"] == test["HasAns_total"] + test["NoAns_total"] == 849
    assert 0.0 <= test["exact"] <= test["f1"] <= 100.0
    tokenizer = tokenizer_lib.load(f"hf:{source}")
    assert tokenizer.special_ids.cls == wordpiece.token_to_id("[CLS]") == 2


def test_an_export_of_a_converted_bert_carries_its_tokenizer(bert, tmp_path):
    source, workdir = bert
    huggingface.export_hf(workdir, str(tmp_path / "out"))
    theirs = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "out"))
    want = transformers.BertTokenizer.from_pretrained(str(source))
    for a, b in PAIRS:
        assert theirs(a, b)["input_ids"] == want(a, b)["input_ids"]
    assert (tmp_path / "out" / "vocab.txt").read_text() == (source / "vocab.txt").read_text()
    card = (tmp_path / "out" / "README.md").read_text()
    assert f"Converted from the Hugging Face checkpoint `{os.path.abspath(source)}`" in card
    assert "No `results.json` in the workdir" in card
