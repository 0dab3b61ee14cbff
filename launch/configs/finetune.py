"""Fine-tune a pretrained encoder (or the same architecture from scratch) on a labelled task.

Run:

  python -m launch.finetune --config=launch/configs/finetune.py:sentiment_rt \
      --config.init_from=workdirs/bert_tiny --workdir=workdirs/sentiment_rt

`TASK` is an embedded task (sentiment_rt, topic_wordnet, nli_vitaminc, paraphrase_bible,
qa_disflqa), a seq2seq task (translation_bible_es_en, translation_bible_en_es,
summarization_debian_desc, qa_disflqa_generative, and the TFDS wmt14_translate/de-en,
cnn_dailymail, xsum: see `_seq2seq_config`), a TFDS task (glue/sst2, glue/mnli, glue/qqp,
glue/mrpc, glue/cola, glue/stsb, squad/v2.0; `--config.task.tfds_data_dir` says where they
are), or `file` for your own TSV/CSV/JSONL
(`--config.task.train_path=… --config.task.labels=negative,positive`).

Without `init_from` the model trains from scratch, as this config's model section states it (the
tiny BERT). With it, the model's architecture (every model field but dropout, dtype, scan_layers,
remat and pooling) and the tokenizer are the pretraining run's, as its config.json states them.
"""

import ml_collections
from ml_collections import config_dict

from data import seq2seq_tasks
from launch.configs import bert, optimizer_mesh, t5

# Per-task settings that differ from the defaults below.
_TASKS = {
    "sentiment_rt": dict(max_seq_length=64, epochs=2.0),
    "topic_wordnet": dict(max_seq_length=48, epochs=2.0),  # 99% of definitions fit
    "nli_vitaminc": dict(max_seq_length=128, epochs=2.0),
    # 96 tokens hold 90% of the verse pairs whole; longer ones are trimmed longest-first.
    "paraphrase_bible": dict(max_seq_length=96, epochs=1.0),
    "qa_disflqa": dict(max_seq_length=256, epochs=4.0),
    "glue/sst2": dict(max_seq_length=64, epochs=3.0),
    "glue/cola": dict(max_seq_length=64, epochs=3.0),
    "glue/mrpc": dict(max_seq_length=128, epochs=3.0),
    "glue/stsb": dict(max_seq_length=128, epochs=3.0),
    "glue/qqp": dict(max_seq_length=128, epochs=3.0),
    "glue/mnli": dict(max_seq_length=128, epochs=3.0),
    "squad/v2.0": dict(max_seq_length=384, epochs=2.0),
    "file": dict(max_seq_length=128, epochs=3.0),
}


def get_config(task: str = "sentiment_rt") -> ml_collections.ConfigDict:
    """The fine-tuning config for `task` (see the module docstring for the names)."""
    if task in seq2seq_tasks.SEQ2SEQ_TASKS:
        return _seq2seq_config(task)
    if task not in _TASKS:
        raise ValueError(f"unknown task {task!r}; use finetune.py:NAME with NAME one of "
                         f"{sorted(_TASKS)}")
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.init_from = ""  # a pretraining workdir; "" = from scratch
    c.init_step = config_dict.placeholder(int)  # that run's checkpoint step; None = its latest

    c.task = ml_collections.ConfigDict()
    c.task.name = task
    c.task.tfds_data_dir = ""
    c.task.train_path = ""
    c.task.dev_path = ""
    c.task.test_path = ""
    c.task.format = ""
    c.task.text_column = "text"
    c.task.text_b_column = ""
    c.task.label_column = "label"
    c.task.source_column = "source"  # seq2seq files (task.kind=seq2seq): input and output text
    c.task.target_column = "target"
    c.task.labels = ""
    c.task.kind = "classification"
    c.task.max_train_examples = 0  # a label budget; 0 = every training example
    c.task.max_eval_examples = 0  # dev and test subsets of that many (the same for every run)

    # The model trained from scratch: the tiny BERT of bert.py:tiny, with position rows for this
    # task's inputs. With init_from, every field but dropout_rate, attention_dropout_rate, dtype,
    # scan_layers, remat and pooling (what fine-tuning decides: launch/finetuning/setup.py:
    # FINETUNE_FIELDS) is replaced by the pretraining run's, as its config.json states it.
    c.model = ml_collections.ConfigDict()
    c.model.arch = "bert"
    c.model.vocab_size = bert.EMBEDDED_VOCAB_SIZE
    c.model.hidden_size = 128
    c.model.num_layers = 2
    c.model.num_heads = 2
    c.model.mlp_dim = 512
    c.model.max_length = _TASKS[task]["max_seq_length"]
    c.model.type_vocab_size = 2
    c.model.activation = "gelu"
    c.model.norm_position = "post"
    c.model.layer_norm_eps = 1e-12
    c.model.initializer_range = 0.02
    c.model.dropout_rate = 0.1
    c.model.attention_dropout_rate = 0.1
    c.model.dtype = "float32"
    c.model.scan_layers = False
    c.model.remat = "none"
    c.model.attention_impl = "xla"  # fine-tuning's own, like remat (FINETUNE_FIELDS)
    c.model.pooling = "pooler"  # pooler | cls | mean

    c.data = ml_collections.ConfigDict()
    c.data.tokenizer = "embedded"  # with init_from: the pretraining run's
    c.data.max_seq_length = _TASKS[task]["max_seq_length"]
    # Sentence-task rows: "auto" = the architecture's own (XLNet: a <sep> b <sep> <cls>, as it
    # pretrains; every other: [CLS] a [SEP] b [SEP]), or "bert" / "xlnet" to force one.
    c.data.layout = "auto"
    c.data.doc_stride = 128  # span QA: overlap of windows over a long context
    c.data.max_query_length = 64

    c.train = ml_collections.ConfigDict()
    c.train.epochs = _TASKS[task]["epochs"]
    c.train.steps = 0  # > 0 overrides epochs
    c.train.min_steps = 0  # small label budgets still get this many steps (more epochs)
    c.train.batch_size = 32
    c.train.microbatches = 1
    c.train.learning_rate = 1e-4
    c.train.warmup_fraction = 0.1
    c.train.layer_decay = 1.0  # layer-wise lr decay: layer i of N gets lr · decay^(N + 1 - i)
    optimizer_mesh.add_optimizer(c.train)
    c.train.log_every = 50
    c.train.writers = "jsonl,tensorboard"  # metrics.jsonl, TensorBoard; add ",wandb" for W&B
    c.train.evals = 8  # dev evaluations over the run (the learning curve); the best is kept
    c.train.keep_checkpoints = 1

    optimizer_mesh.add_mesh(c)
    return c


def _seq2seq_config(task: str) -> ml_collections.ConfigDict:
    """A seq2seq task (launch/finetuning/seq2seq.py): from scratch the tiny T5 of t5.py:tiny
    with the es-en tokenizer and dropout 0.1; with `init_from` a T5 pretraining run's model (or a
    GPT run's: prompt → continuation, the loss on target tokens only). Dev and test are scored
    on generated outputs (`decode.method`: greedy, or beam with `decode.beam_width`)."""
    c = get_config("file")
    c.task.name, c.task.kind = task, "seq2seq"
    pretraining = t5.get_config("tiny")
    c.model = pretraining.model
    c.model.dropout_rate = c.model.attention_dropout_rate = 0.1
    c.model.pooling = "none"  # fine-tuning's own field (FINETUNE_FIELDS); seq2seq has no pooling
    lengths = seq2seq_tasks.LENGTHS[task]
    c.data.tokenizer = t5.ES_EN_TOKENIZER
    c.data.max_seq_length = lengths["max_source_length"]  # source tokens (GPT: the prompt's)
    c.data.max_target_length = lengths["max_target_length"]
    c.model.max_length = c.data.max_seq_length
    c.train.epochs = 3.0
    c.train.learning_rate = 1e-3
    c.train.batch_size = 32
    c.train.evals = 4
    c.decode = ml_collections.ConfigDict()
    c.decode.method = "greedy"  # greedy | beam
    c.decode.beam_width = 4
    c.decode.length_penalty = 0.6  # GNMT's alpha (beam)
    c.decode.batch_size = 64
    c.decode.max_eval_examples = 0  # dev/test examples scored; 0 = all
    # Dev examples decoded at each evaluation (which picks the best checkpoint: greedy decoding
    # of a half-trained model runs to max_target_length); 0 = as max_eval_examples.
    c.decode.max_dev_examples = 0
    return c
