"""What pretraining buys: pretrain once, then fine-tune from it and from scratch, several seeds.

  python -m launch.compare --config=launch/configs/compare.py:full --workdir=workdirs/compare

writes WORKDIR/report.md, results.json and plots. Runs already finished are reused, so an
interrupted comparison continues where it stopped.

Variants: `quick` (the README's main job: the tiny BERT pretrained for 1,200 steps, 2 tasks, one
seed) and `full` (the same tiny BERT pretrained 5x longer, then 3 seeds, label budgets and
task-adaptive pretraining on sentiment_rt; run it in its own workdir).

Measured for `full` on 2 CPU cores (2026-11-29; the machine was shared for part of the run): 101
min in all, of which pretraining 41.9 min (eval MLM loss 4.302, unigram 6.663; NSP 0.886). Test
accuracy over 3 seeds, pretrained vs scratch: paraphrase_bible 0.567 vs 0.538 at 500 labels and
0.645 vs 0.553 at 2,000 (both Δ > 2 std, 95% intervals above 0); sentiment_rt behind scratch at
500 / 2,000 / all labels (Δ −0.027 / −0.022 / −0.032, every interval spanning 0).
"""

import ml_collections

from launch.configs import bert, t5


def get_config(variant: str = "quick") -> ml_collections.ConfigDict:
    """`quick` or `full`; `seq2seq` or `seq2seq_smoke` (`_seq2seq_config`)."""
    if variant in ("seq2seq", "seq2seq_smoke"):
        return _seq2seq_config(variant)
    c = ml_collections.ConfigDict()
    c.pretrain = bert.get_config("tiny")
    c.pretrain_from = ""  # an existing pretraining workdir to use instead of pretraining here

    c.tasks = "sentiment_rt,paraphrase_bible"
    c.seeds = 3
    # Label budgets per task ("task=n,n,...;task=n"); 0 = every training example; a task not
    # listed uses all of them. paraphrase_bible: 2,000 of its 49,534 pairs, where pretraining
    # should matter more than with many labels, keep a run near a minute on 2 CPU cores.
    c.budgets = "paraphrase_bible=2000"
    # Task-adaptive pretraining: continue pretraining on the task's unlabelled training texts
    # (never dev or test), then fine-tune from there.
    c.tapt_tasks = ""
    c.tapt_steps = 600
    c.tapt_learning_rate = 5e-4

    # Applied to every task's launch/configs/finetune.py config (same values for both twins).
    c.finetune = ml_collections.ConfigDict()
    c.finetune.model = ml_collections.ConfigDict()
    c.finetune.model.pooling = "mean"
    c.finetune.model.dropout_rate = 0.1
    c.finetune.model.attention_dropout_rate = 0.1
    # No longer than the pretraining sequences: position rows that pretraining never trained are
    # noise the pretrained twin must first unlearn (paraphrase_bible, 2,000 labels, one seed:
    # accuracy 0.570 pretrained vs 0.535 scratch at 64 tokens, one seed).
    c.finetune.data = ml_collections.ConfigDict()
    c.finetune.data.max_seq_length = 64
    c.finetune.train = ml_collections.ConfigDict()
    c.finetune.train.learning_rate = 5e-4
    c.finetune.train.batch_size = 32
    c.finetune.train.steps = 0  # 0 = the task's epochs
    c.finetune.train.min_steps = 300
    c.finetune.train.evals = 4

    if variant == "quick":
        c.seeds = 1
    elif variant == "full":
        # Three seeds, label budgets and task-adaptive pretraining, from a 5x longer pretraining
        # (6,000 steps, ~26M tokens, about 6 passes over the corpus): the 1,200-step quickstart
        # model's features were no more linearly useful than random ones.
        c.pretrain.train.steps = 6000
        c.pretrain.train.warmup_steps = 300
        c.pretrain.train.eval_every = 1000
        c.pretrain.train.checkpoint_every = 1000
        c.budgets = "sentiment_rt=500,2000,0;paraphrase_bible=500,2000"
        c.tapt_tasks = "sentiment_rt"
    else:
        raise ValueError(f"unknown variant {variant!r}: use compare.py:quick or :full")
    return c

# t5.py:tiny span corruption (batch 64 of 64 source + 14 target tokens) measured 1.5 s/step
# (0.66 steps/s over steps 6-10, load average 8-12, nice 10; 2026-12-02): 1,500 steps ≈ 38 min
# of training, leaving room for loading the corpora, evals and checkpoints within 45 min.
SEQ2SEQ_PRETRAIN_STEPS = 1500


def _seq2seq_config(variant: str) -> ml_collections.ConfigDict:
    """T5 pretrained by span corruption on the monolingual es+en Bible vs the same T5 from
    scratch, on es→en translation at 2,000 pairs and at all 27,174, 3 seeds; test BLEU/chrF
    beside the copy-the-source baseline (the report's context). `seq2seq_smoke`: a few steps
    and examples of the same pipeline (tests/launch/test_compare_seq2seq.py)."""
    c = ml_collections.ConfigDict()
    c.pretrain = t5.get_config("tiny")
    c.pretrain.train.steps = SEQ2SEQ_PRETRAIN_STEPS
    c.pretrain.train.warmup_steps = 100
    c.pretrain.train.eval_every = c.pretrain.train.checkpoint_every = 500
    c.pretrain_from = ""
    c.tasks = "translation_bible_es_en"
    c.seeds = 3
    c.budgets = "translation_bible_es_en=2000,0"
    c.tapt_tasks = ""
    c.tapt_steps = 0
    c.tapt_learning_rate = 0.0
    c.finetune = ml_collections.ConfigDict()
    c.finetune.train = ml_collections.ConfigDict()
    c.finetune.train.epochs = 1.0
    c.finetune.train.min_steps = 300  # 2,000 pairs: ~5 epochs
    c.finetune.train.learning_rate = 1e-3
    c.finetune.train.batch_size = 32
    c.finetune.train.evals = 4
    if variant == "seq2seq_smoke":
        c.pretrain.train.update(steps=3, batch_size=8, warmup_steps=1, log_every=1,
                                eval_every=3, checkpoint_every=3, eval_batches=2)
        c.pretrain.data.eval_fraction = 0.01
        c.seeds = 2
        c.budgets = "translation_bible_es_en=16"
        c.finetune.train.update(steps=2, min_steps=0, batch_size=8, evals=1)
        c.finetune.data = ml_collections.ConfigDict(
            {"max_seq_length": 32, "max_target_length": 12})
        c.finetune.decode = ml_collections.ConfigDict({"max_eval_examples": 4,
                                                       "batch_size": 4})
    return c
