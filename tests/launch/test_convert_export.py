"""launch.convert --to_hf carries the tokenizer and a model card: on exports of tiny pretraining
runs, transformers' AutoTokenizer gives pretrax's ids, pipeline("fill-mask") predicts what our
BERT predicts and pipeline("text-generation") continues as our GPT does; README.md holds the
architecture, the data, the steps, the results.json figures and the command. An export whose
tokenizer cannot be written says so and writes the rest."""

import gzip
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import jax  # noqa: E402

from data import tokenizer as tokenizer_lib  # noqa: E402
from launch.configs import bert as bert_configs  # noqa: E402
from launch.conversion import huggingface  # noqa: E402
from launch.generation import run as generating  # noqa: E402
from launch.train import modeling  # noqa: E402
from lm import generation  # noqa: E402
from lm.models import make_model  # noqa: E402
from tests.conftest import FIXTURES  # noqa: E402
from tests.data.test_hf_tokenizers import SAMPLES  # noqa: E402
from tests.lm import test_hf_maps as hf  # noqa: E402


@pytest.fixture(scope="module")
def bert_export(bert_run, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("export") / "bert")
    huggingface.export_hf(bert_run[0], out)
    return out


def test_autotokenizer_of_an_export_gives_pretrax_ids(bert_export):
    theirs = transformers.AutoTokenizer.from_pretrained(bert_export)
    ours = tokenizer_lib.Tokenizer.load()
    with gzip.open(FIXTURES / "corpus_slice.txt.gz", "rt", encoding="utf-8") as f:
        texts = [line.strip() for line in f][:2000] + SAMPLES
    assert theirs(texts, add_special_tokens=False)["input_ids"] == ours.encode(texts)
    known = [ids for ids in ours.encode(texts) if 1 not in ids]  # "<unk>": SentencePiece's " ⁇ "
    assert len(known) > 1000 and [theirs.decode(ids) for ids in known] == ours.decode(known)
    # Pretraining's rows: [CLS] a [SEP] b [SEP], b of type 1; the special tokens are pretrax's.
    a, b = ours.encode(SAMPLES[:2])
    pair = theirs(SAMPLES[0], SAMPLES[1])
    assert pair["input_ids"] == [2, *a, 3, *b, 3]
    assert pair["token_type_ids"] == [0] * (len(a) + 2) + [1] * (len(b) + 1)
    assert [theirs.pad_token_id, theirs.unk_token_id, theirs.cls_token_id, theirs.sep_token_id,
            theirs.mask_token_id, theirs.bos_token_id, theirs.eos_token_id] == list(range(7))


def test_fill_mask_pipeline_predicts_what_our_bert_predicts(bert_run, bert_export):
    fill = transformers.pipeline("fill-mask", model=bert_export, top_k=5)
    predictions = fill("And God said, Let there be [MASK]: and there was light.")
    arch, config, params, _ = huggingface.load_workdir(bert_run[0])
    ids, rest = tokenizer_lib.Tokenizer.load().encode(["And God said, Let there be",
                                                       ": and there was light."])
    row = np.array([[2, *ids, 4, *rest, 3]], np.int32)
    logits = jax.jit(make_model(arch, config).apply)({"params": params}, {
        "token_ids": row, "type_ids": np.zeros_like(row),
        "mlm_positions": np.array([[len(ids) + 1]], np.int32)})["mlm_logits"][0, 0]
    probs = np.asarray(jax.nn.softmax(logits))
    assert [p["token"] for p in predictions] == np.argsort(-probs)[:5].tolist()
    np.testing.assert_allclose([p["score"] for p in predictions], np.sort(probs)[::-1][:5],
                               rtol=1e-4)


def test_the_model_card_says_what_the_model_is_and_how_it_was_made(bert_run, bert_export):
    workdir, results = bert_run
    card = open(f"{bert_export}/README.md").read()
    assert card.startswith("---\nlibrary_name: transformers\npipeline_tag: fill-mask\n")
    assert (f"exported as transformers' `BertForPreTraining` from the pretrax workdir `{workdir}` "
            "at step 2.") in card
    assert ("`BertForPreTraining`: num_layers 2, hidden_size 128, num_heads 2, mlp_dim 512, "
            "max_length 64, vocab_size 8192;") in card
    assert f"- corpus: `{FIXTURES / 'corpus_slice.txt.gz'}`" in card
    assert "- objectives: mlm, nsp\n- 2 steps of 8 sequences of 64 tokens" in card
    for key in ("eval/mlm_loss", "eval/mlm_accuracy", "eval/nsp_loss", "eval/nsp_accuracy"):
        assert f"| {key} | {results[key]:.4f} |" in card
    assert f"```\npython -m launch.convert --workdir={workdir} --to_hf={bert_export}\n```" in card
    assert json.loads(open(f"{bert_export}/pretrax_config.json").read()) == json.loads(
        open(f"{workdir}/config.json").read())


def test_text_generation_pipeline_continues_as_our_gpt(gpt_run, tmp_path):
    workdir, results = gpt_run
    huggingface.export_hf(workdir, str(tmp_path / "gpt"))
    card = (tmp_path / "gpt" / "README.md").read_text()
    assert "pipeline_tag: text-generation" in card and "at step 3." in card
    assert f"| eval/perplexity | {results['eval/perplexity']:.4f} |" in card
    prompt, new = "And God said", 6
    text = transformers.pipeline("text-generation", model=str(tmp_path / "gpt"))(
        prompt, max_new_tokens=new, do_sample=False)[0]["generated_text"]
    model, params, tokenizer, _ = generating.load_model(workdir)
    ids = tokenizer.encode([prompt])
    ours = np.asarray(generation.generate(model, params, generation.left_pad(ids, 0),
                                          jax.random.key(0), greedy=True, max_new_tokens=new,
                                          eos_id=6, pad_id=0))[0].tolist()
    ours = ours[:ours.index(6)] if 6 in ours else ours
    theirs = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "gpt"))
    assert theirs(prompt)["input_ids"] == ids[0] and "token_type_ids" not in theirs(prompt)
    assert text == prompt + theirs.decode(ours) or text == theirs.decode(ids[0] + ours)


def test_an_export_without_a_convertible_tokenizer_says_so_and_writes_the_rest(tmp_path,
                                                                               capsys):
    """A workdir whose tokenizer is a SentencePiece char model (tokenizer.json has no such
    model); and nothing is overwritten."""
    model_file = tokenizer_lib.train([str(FIXTURES / "corpus_slice.txt.gz")],
                                     str(tmp_path / "char"), vocab_size=200, model_type="char")
    cfg = bert_configs.get_config("tiny")
    cfg.data.tokenizer = model_file
    cfg.data.max_seq_length = cfg.model.max_length = 16
    config = modeling.model_config(cfg, tokenizer_lib.Tokenizer.load(model_file).vocab_size)
    huggingface.write_workdir(str(tmp_path / "wd"), cfg, hf.random_params(
        make_model("bert", config), hf._batch(), seed=1))
    huggingface.export_hf(str(tmp_path / "wd"), str(tmp_path / "out"))
    out = capsys.readouterr().out
    assert (f"note: the export has no tokenizer files: {model_file} is a SentencePiece char "
            "model; Hugging Face's tokenizer.json holds unigram and bpe ones: train the "
            "tokenizer with --model_type=unigram (the default) or bpe") in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "README.md", "config.json", "model.safetensors", "pretrax_config.json"]
    assert "This export has no tokenizer files" in (tmp_path / "out" / "README.md").read_text()
    assert "No `results.json` in the workdir" in (tmp_path / "out" / "README.md").read_text()
    transformers.BertForPreTraining.from_pretrained(str(tmp_path / "out"))
    (tmp_path / "out" / "model.safetensors").unlink()  # any file of an export stops another
    with pytest.raises(ValueError, match=r"out/config\.json exists; nothing was written\. "
                       r"Choose a new --to_hf directory"):
        huggingface.export_hf(str(tmp_path / "wd"), str(tmp_path / "out"))
