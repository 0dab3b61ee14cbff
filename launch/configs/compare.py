"""What pretraining buys: pretrain once, then fine-tune from it and from scratch, several seeds.

  python -m launch.compare --config=launch/configs/compare.py:full --workdir=workdirs/compare

writes WORKDIR/report.md, results.json and plots. Runs already finished are reused, so an
interrupted comparison continues where it stopped.

Variants: `quick` (the README's main job: the tiny BERT, 2 tasks, fewer seeds) and `full` (3
seeds, label budgets and task-adaptive pretraining on sentiment_rt).
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
    c.budgets = ""  # extra label budgets (e.g. "500,2000") for the tasks in budget_tasks
    c.budget_tasks = ""
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
    c.finetune.train.learning_rate = 1e-4
    c.finetune.train.batch_size = 32
    c.finetune.train.steps = 0  # 0 = the task's epochs
    c.finetune.train.min_steps = 400
    c.finetune.train.evals = 8

    if variant == "quick":
        c.seeds = 1
    elif variant == "full":
        # About 25 min of pretraining on 2 CPU cores: 128-token pairs, so that every position
        # a fine-tuning input uses has been trained.
        p = c.pretrain
        p.data.max_seq_length, p.data.max_predictions_per_seq = 128, 20
        p.train.batch_size, p.train.steps, p.train.warmup_steps = 32, 5000, 200
        p.train.eval_every, p.train.checkpoint_every = 1000, 500
        c.budgets = "500,2000"
        c.budget_tasks = "sentiment_rt"
        c.tapt_tasks = "sentiment_rt"
    else:
        raise ValueError(f"unknown variant {variant!r}: use compare.py:quick or :full")
    return c
