"""What pretraining buys: pretrain once, then fine-tune from it and from scratch, several seeds.

  python -m launch.compare --config=launch/configs/compare.py:full --workdir=workdirs/compare

writes WORKDIR/report.md, results.json and plots. Runs already finished are reused, so an
interrupted comparison continues where it stopped.

Variants: `quick` (the README's main job: the tiny BERT, 2 tasks, one seed) and `full` (the
same runs plus 3 seeds, label budgets and task-adaptive pretraining on sentiment_rt; pointed at the
quickstart's workdir it reuses everything already done).
"""

import ml_collections

from launch.configs import bert


def get_config(variant: str = "quick") -> ml_collections.ConfigDict:
    """`quick` or `full`."""
    c = ml_collections.ConfigDict()
    c.pretrain = bert.get_config("tiny")
    # Fine-tuning inputs are longer than the 64-token pretraining pairs (paraphrase pairs need
    # ~100 tokens); the position table is sized for them.
    c.pretrain.model.max_length = 128
    c.pretrain_from = ""  # an existing pretraining workdir to use instead of pretraining here

    c.tasks = "sentiment_rt,paraphrase_bible"
    c.seeds = 3
    # Label budgets per task ("task=n,n,...;task=n"); 0 = every training example; a task not
    # listed uses all of them. paraphrase_bible: 8,000 of its 49,534 pairs keep a run under 2
    # minutes on 2 CPU cores.
    c.budgets = "paraphrase_bible=8000"
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
    c.finetune.train = ml_collections.ConfigDict()
    c.finetune.train.learning_rate = 5e-4
    c.finetune.train.batch_size = 32
    c.finetune.train.steps = 0  # 0 = the task's epochs
    c.finetune.train.min_steps = 300
    c.finetune.train.evals = 4

    if variant == "quick":
        c.seeds = 1
    elif variant == "full":
        # The quick comparison plus more seeds, label budgets and task-adaptive pretraining:
        # run it on the quickstart's workdir and every finished run is reused.
        c.budgets = "sentiment_rt=500,2000,0;paraphrase_bible=8000"
        c.tapt_tasks = "sentiment_rt"
    else:
        raise ValueError(f"unknown variant {variant!r}: use compare.py:quick or :full")
    return c
