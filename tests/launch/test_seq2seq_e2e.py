"""End to end for seq2seq tasks: T5 fine-tuned from a span-corruption run (translation, beam
search) and from scratch (summarisation); GPT as prompt → continuation; launch.evaluate on a
user's TSV and launch.generate on the fine-tuned workdir. A few steps, a few examples."""

import json
import os

import numpy as np
import pytest

from launch.configs import finetune
from launch.evaluation import finetuned
from launch.finetuning import prompted
from launch.finetuning import run as finetuning
from launch.generation import run as generating


def seq2seq_config(task: str, *, init_from: str = "", source: int = 48, target: int = 16):
    cfg = finetune.get_config(task)
    cfg.init_from = init_from
    cfg.task.max_train_examples = 32  # the label budget
    cfg.train.update(steps=3, batch_size=8, evals=1, log_every=1)
    cfg.data.max_seq_length, cfg.data.max_target_length = source, target
    cfg.decode.update(max_eval_examples=6, batch_size=6)
    return cfg


@pytest.fixture(scope="module")
def translation_run(t5_run, tmp_path_factory):
    cfg = seq2seq_config("translation_bible_es_en", init_from=t5_run[0])
    cfg.decode.update(method="beam", beam_width=2)
    run_dir = str(tmp_path_factory.mktemp("es_en"))
    return run_dir, finetuning.finetune(cfg, run_dir)


def _lines(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_translation_from_t5_pretraining_scores_generated_outputs(translation_run, t5_run):
    run_dir, results = translation_run
    assert results["init_from"] == t5_run[0] and results["train_examples"] == 32
    assert results["kind"] == "seq2seq" and results["decode"]["method"] == "beam"
    for split in ("dev", "test"):
        assert set(results[split]) >= {"bleu", "chrf"} and results[split]["examples"] == 6
        assert 0.0 <= results[split]["bleu"] <= 100.0
        predictions = _lines(os.path.join(run_dir, f"predictions_{split}.jsonl"))
        assert len(predictions) == 6 and all(set(p) == {"id", "source", "target", "prediction"}
                                             for p in predictions)
    # the copy-the-source baseline beside the model's figures, and sacrebleu's signatures
    assert results["test_baseline"]["copy_source_chrf"] > 0
    assert "tok:13a" in results["signatures"]["bleu"] and "nc:6" in results["signatures"]["chrf"]
    assert os.path.isdir(os.path.join(run_dir, "best"))


def test_evaluate_a_tsv_and_generate_from_the_finetuned_workdir(translation_run, tmp_path):
    run_dir, _ = translation_run
    data = tmp_path / "pairs.tsv"
    data.write_text("es\ten\nEn el principio creó Dios los cielos y la tierra.\tIn the "
                    "beginning God created the heavens and the earth.\nY dijo Dios: Sea la "
                    "luz.\tAnd God said, Let there be light.\n", encoding="utf-8")
    out = str(tmp_path / "out")
    metrics = finetuned.evaluate_workdir(run_dir, data=str(data), source_column="es",
                                         target_column="en", output=out)
    assert metrics["examples"] == 2 and {"bleu", "chrf"} <= set(metrics)
    rows = _lines(os.path.join(out, "predictions.jsonl"))
    assert [r["target"] for r in rows][1] == "And God said, Let there be light."
    texts = generating.generate_from_workdir(run_dir, ["Y dijo Dios", "la tierra"],
                                             method="greedy", max_new_tokens=4)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)


@pytest.mark.slow
def test_summarisation_from_scratch_reports_rouge(tmp_path):
    cfg = seq2seq_config("summarization_debian_desc", source=64, target=12)
    results = finetuning.finetune(cfg, str(tmp_path))
    assert results["init_from"] is None and results["main_metric"] == "rougeL"
    assert {"rouge1", "rouge2", "rougeL"} <= set(results["test"])
    assert set(results["test_baseline"]) == {"lead_rouge1", "lead_rouge2", "lead_rougeL"}


def test_gpt_prompt_continuation_is_trained_on_the_target_only(gpt_run, tmp_path):
    batch = prompted.rows([(np.array([10, 11, 6]), np.array([20, 21, 6]))], 8, sep_id=3)
    np.testing.assert_array_equal(batch["token_ids"][0], [10, 11, 3, 20, 21, 6, 0, 0])
    # weights where the next token is a target token: after [SEP], 20 and 21 (→ 21, </s>)
    np.testing.assert_array_equal(batch["clm_weights"][0], [0, 0, 1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(batch["clm_targets"][0, 2:5], [20, 21, 6])
    cfg = seq2seq_config("translation_bible_es_en", init_from=gpt_run[0], source=20, target=12)
    results = finetuning.finetune(cfg, str(tmp_path))
    assert results["arch"] == "gpt" and {"bleu", "chrf"} <= set(results["test"])


def test_a_model_without_a_seq2seq_form_is_refused_in_one_line(tmp_path):
    cfg = seq2seq_config("translation_bible_es_en")
    cfg.model.arch = "bert"
    with pytest.raises(ValueError, match="seq2seq tasks fine-tune t5 or gpt"):
        finetuning.finetune(cfg, str(tmp_path))
