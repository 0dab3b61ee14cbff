"""What pretraining buys: pretrain once, then fine-tune from it and from scratch, several seeds.

  python -m launch.compare --config=launch/configs/compare.py:full --workdir=workdirs/compare

writes WORKDIR/report.md, results.json and plots. Runs already finished are reused, so an
interrupted comparison continues where it stopped.

Variants: `quick` (the README's main job: the tiny BERT pretrained for 1,200 steps, 2 tasks, one
seed), `full` (the same tiny BERT pretrained 5x longer, then 3 seeds, label budgets and
task-adaptive pretraining on sentiment_rt; run it in its own workdir), `objectives` (the BERT
paper's objective ablation in miniature, launch/comparison/many.py: BERT MLM, BERT MLM+NSP, ALBERT
MLM+SOP, ALBERT MLM+order, GPT CLM and XLNet PLM, each 600 steps of 4,096 tokens (2.46M), each and
its architecture's scratch twin fine-tuned on five tasks, 1,000 training and 1,000 dev/test
examples each, 100 steps of 32, 3 seeds; GPT also scored zero- and 4-shot) and `objectives_smoke`
(the same path shrunk: 2 objectives, 4 steps, 2 tasks, 2 seeds).

Wall time of `objectives`, measured (2026-12-03, a clean clone on the 2-core machine, other
work beside it at low priority): 94.1 min in all: the six pretrainings trained for 22.2 min
(BERT 2.4 min each, ALBERT 3.5-3.6, XLNet 2.7, GPT 7.6), then GPT's zero/4-shot scoring and 144
fine-tuning runs of 17-71 s (68.7 min; QA runs the longest). Run again on the finished workdir,
the probes and the report took 4.3 min. Results: README "Which pretraining objective".

Measured for `objectives_smoke` (2026-12-02, the 2-core machine shared with a T5 fine-tuning and
other tests, load average 3-4): tests/launch/test_compare_many.py::test_objectives_smoke_end_to_end
took 6.0 min (4 pretraining steps each, 12 fine-tuning runs of 2 steps, GPT zero/2-shot scoring).
Its earlier form (20 pretraining steps, 6 fine-tuning steps, 200 dev/test examples) took 18.3 min
at load average 12-15; with whole dev/test splits (`--config.eval_examples=0`) 42.5 min: the
evaluation passes, not training, dominate short fine-tuning runs, hence `eval_examples`.

Measured for `full` on 2 CPU cores (2026-11-29; the machine was shared for part of the run): 101
min in all, of which pretraining 41.9 min (eval MLM loss 4.302, unigram 6.663; NSP 0.886). Test
accuracy over 3 seeds, pretrained vs scratch: paraphrase_bible 0.567 vs 0.538 at 500 labels and
0.645 vs 0.553 at 2,000 (both Δ > 2 std, 95% intervals above 0); sentiment_rt behind scratch at
500 / 2,000 / all labels (Δ −0.027 / −0.022 / −0.032, every interval spanning 0).
"""

import ml_collections

from launch.configs import albert, bert, gpt, t5, xlnet

# The objectives ablation: every run sees the same tokens, TOKENS_PER_STEP a step.
TOKENS_PER_STEP = 4096
OBJECTIVE_STEPS = 600  # × 4,096 = 2.46M tokens a run (the module docstring's wall time)
OBJECTIVE_TASKS = "sentiment_rt,topic_wordnet,nli_vitaminc,paraphrase_bible,qa_disflqa"


def objective_runs(steps: int, names: str = "") -> ml_collections.ConfigDict:
    """The objectives ablation's pretraining runs (name → config), each ``steps`` steps of
    ``TOKENS_PER_STEP`` tokens (64 × 64, GPT 32 × 128) from the CPU-sized tiny configs; ``names``
    (comma-separated) keeps only those, "" all six."""
    runs = {"bert_mlm": bert.get_config("tiny"), "bert_mlm_nsp": bert.get_config("tiny"),
            "albert_sop": albert.get_config("tiny"),
            "albert_order": albert.get_config("tiny_order"),
            "gpt_clm": gpt.get_config("tiny"), "xlnet_plm": xlnet.get_config("tiny")}
    runs["bert_mlm"].objectives.nsp = 0.0
    # Order accuracy that means order: passages start and end mid-sentence (no capital or full
    # stop marks the first or last segment).
    runs["albert_order"].data.order_mid_sentence = True
    keep = [n.strip() for n in names.split(",") if n.strip()] or list(runs)
    unknown = sorted(set(keep) - set(runs))
    if unknown:
        raise ValueError(f"unknown objective runs {unknown}; known: {sorted(runs)}")
    out = ml_collections.ConfigDict()
    for name in keep:
        c = runs[name]
        c.train.batch_size = TOKENS_PER_STEP // c.data.max_seq_length
        c.train.steps = steps
        c.train.warmup_steps = max(1, steps // 12)
        c.train.eval_every = c.train.checkpoint_every = max(1, steps // 2)
        c.train.log_every = max(1, min(c.train.log_every, steps // 4))
        out[name] = c
    return out


def get_config(variant: str = "quick") -> ml_collections.ConfigDict:
    """`quick` or `full`; `seq2seq` or `seq2seq_smoke` (`_seq2seq_config`)."""
    if variant in ("seq2seq", "seq2seq_smoke"):
        return _seq2seq_config(variant)
    c = ml_collections.ConfigDict()
    c.pretrain = bert.get_config("tiny")
    c.pretrain_from = ""  # an existing pretraining workdir to use instead of pretraining here
    # Several initialisations instead (launch/comparison/many.py): pretraining runs made here
    # (name → config, under WORKDIR/pretrain/<name>) and existing workdirs ("name=DIR,…":
    # pretraining runs of any family, launch.convert outputs); each ranked against its
    # architecture's from-scratch twin. Either set: pretrain / pretrain_from are not used.
    c.pretrain_runs = ml_collections.ConfigDict()
    c.inits = ""
    c.title = ""
    c.train_examples = 0  # training examples per task not in `budgets`; 0 = all
    c.eval_examples = 0  # dev and test examples per task (the same subset every run); 0 = all
    # GPT initialisations: k-shot prompts scored zero-shot on the classification tasks (launch/
    # comparison/zeroshot.py), calibrated and not, as an intrinsic measure; "" = none.
    c.zeroshot_shots = ""
    c.zeroshot_examples = 200  # test examples scored per task
    # Several initialisations: ridge probes of each (and of each scratch twin at random init) on
    # the classification tasks, fitted on this many training examples and scored on the
    # eval_examples subsets (launch/comparison/probes.py), for the report's correlations; 0 = none.
    c.probe_examples = 1000

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
    # XLNet fine-tunes on its own rows, "a <sep> b <sep> <cls>" ("auto"); "bert" forces
    # "[CLS] a [SEP] b [SEP]" for every family.
    c.finetune.data.layout = "auto"
    c.finetune.train = ml_collections.ConfigDict()
    c.finetune.train.learning_rate = 5e-4
    c.finetune.train.batch_size = 32
    c.finetune.train.steps = 0  # 0 = the task's epochs
    c.finetune.train.min_steps = 300
    c.finetune.train.evals = 4

    if variant == "quick":
        c.seeds = 1
    elif variant in ("objectives", "objectives_smoke"):
        _objectives(c, smoke=variant == "objectives_smoke")
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
        raise ValueError(f"unknown variant {variant!r}: use compare.py:quick, :full, "
                         ":objectives or :objectives_smoke")
    return c


def _objectives(c: ml_collections.ConfigDict, smoke: bool) -> None:
    """The objectives ablation (the README's "Which pretraining objective?"): six pretrainings
    at matched tokens, each and its architecture's scratch twin fine-tuned on five tasks."""
    c.title = "Which pretraining objective? Fine-tuned at matched pretraining tokens"
    c.pretrain_runs = objective_runs(OBJECTIVE_STEPS)
    c.tasks, c.budgets, c.seeds = OBJECTIVE_TASKS, "", 3
    c.train_examples, c.eval_examples = 1000, 1000
    c.finetune.train.steps = 100
    c.finetune.train.evals = 2
    c.zeroshot_shots = "0,4"
    c.finetune.data.doc_stride, c.finetune.data.max_query_length = 32, 24  # QA in 64 tokens
    if smoke:  # the path end to end in minutes: 2 objectives, 4 steps, 2 tasks, 2 seeds
        c.pretrain_runs = objective_runs(4, "bert_mlm,gpt_clm")
        for run in c.pretrain_runs.values():
            run.train.eval_batches = 2
        c.tasks, c.seeds, c.train_examples = "sentiment_rt,qa_disflqa", 2, 32
        c.eval_examples = 48
        c.finetune.train.steps, c.finetune.train.batch_size, c.finetune.train.evals = 2, 8, 1
        c.zeroshot_shots, c.zeroshot_examples, c.probe_examples = "0,2", 8, 32


# t5.py:tiny span corruption (batch 64 of 64 source + 14 target tokens): 1,500 steps took 7.5
# min on the idle 2-core machine (3.4 steps/s late in the run; 2026-12-03) and 50 min on a
# machine busy with other jobs (2026-12-02): within the 45 min budget unless the machine is shared.
SEQ2SEQ_PRETRAIN_STEPS = 1500


def _seq2seq_config(variant: str) -> ml_collections.ConfigDict:
    """T5 pretrained by span corruption on the monolingual es+en Bible vs the same T5 from
    scratch, on es→en translation at 2,000 pairs and at all 27,174, 3 seeds; test BLEU/chrF
    beside the copy-the-source baseline (the report's context). `seq2seq_smoke`: a few steps
    and examples of the same pipeline (tests/launch/test_compare_seq2seq.py)."""
    c = get_config("quick")  # every field the comparison reads, then the seq2seq values
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
    # Greedy decoding of a half-trained model runs every row to max_target_length (128): all
    # 1,624 dev verses is ~170 s per evaluation here (13.4 s per 128 measured), most of a
    # 2,000-pair run. 256 of them pick the best checkpoint; test is scored whole.
    c.finetune.decode = ml_collections.ConfigDict({"max_dev_examples": 256})
    # Verses average 31 tokens (p99 68) in the es-en tokenizer: 96 + 96 truncates ~10 of the
    # 27,174 training pairs and 1 of the 1,629 test sources, at 3/4 of the default 128 + 128.
    c.finetune.data = ml_collections.ConfigDict({"max_seq_length": 96, "max_target_length": 96})
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
