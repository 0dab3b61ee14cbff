"""BERT pretraining (masked LM + next-sentence prediction) on the embedded corpus.

Run (CPU-sized, the README's main job):

  python -m launch.pretrain --config=launch/configs/bert.py:tiny --workdir=workdirs/bert_tiny

Measured for `tiny` on a 2-core, 24 GiB machine (no accelerator), 2026-12-02, shared with other
jobs: 1,200 steps of 64 × 64 tokens in 5.7 min in the training loop, ending with eval MLM loss 5.887
against a unigram (context-free) baseline of 6.663, eval MLM accuracy 0.142 and eval NSP accuracy
0.809 on 2,304 held-out sentence pairs.

Variants: `tiny` (D=128, N=2, H=2, F=512, 64-token pairs), `base` and `large` (the BERT paper's
shapes: D=768/1024, N=12/24, H=12/16, F=3072/4096, 512 tokens, 256 sequences a batch, 1M steps,
lr 1e-4 with 10k warmup steps); all with the shipped tokenizer's 8,192-id vocabulary. Everything
can be overridden on the command line, e.g. `--config.train.steps=100`,
`--config.model.hidden_size=192 --config.model.num_heads=3`,
`--config.data.corpus=/path/to/*.txt.gz` or `--config.data.corpus=tfds:wikipedia/20230601.en:text`.
"""

import ml_collections
from ml_collections import config_dict

from launch.configs import optimizer_mesh

# The ids of the shipped SentencePiece model (data.tokenizer = "embedded").
EMBEDDED_VOCAB_SIZE = 8192


def _base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    # name → weight (0 = not used); e.g. --config.objectives.nsp=0 pretrains MLM alone.
    c.objectives = ml_collections.ConfigDict({"mlm": 1.0, "nsp": 1.0})
    # Continue from another run's parameters (e.g. task-adaptive pretraining on a task's text);
    # the optimizer and schedule start afresh. Used only when the workdir has no checkpoint.
    c.init_from = ""
    c.init_step = config_dict.placeholder(int)  # that run's checkpoint step; None = its latest

    # The model, field by field (BERT-base here; the variants below set their shapes).
    c.model = ml_collections.ConfigDict()
    c.model.arch = "bert"
    # Rows of the token embedding: the shipped tokenizer's ids. A data.tokenizer with more ids
    # needs --config.model.vocab_size=N (N ≥ its ids; the rows no id looks up stay unused).
    c.model.vocab_size = EMBEDDED_VOCAB_SIZE
    c.model.hidden_size = 768
    c.model.num_layers = 12
    c.model.num_heads = 12
    c.model.mlp_dim = 3072
    # Rows of the position table: the longest input the model accepts, in pretraining and in
    # fine-tuning (data.max_seq_length may be shorter, never longer).
    c.model.max_length = 512
    c.model.type_vocab_size = 2
    c.model.dropout_rate = 0.1
    c.model.attention_dropout_rate = 0.1
    c.model.activation = "gelu"
    c.model.norm_position = "post"
    c.model.layer_norm_eps = 1e-12
    c.model.initializer_range = 0.02
    # Accelerator compute (every variant but tiny): bfloat16 matmuls and activations, float32
    # parameters, optimizer state, softmax and losses; the layers scanned (one compiled layer).
    c.model.dtype = "bfloat16"
    c.model.scan_layers = True
    c.model.remat = "none"
    # auto: a fused kernel where the platform has one (TPU: splash; GPU: cuDNN) and attention
    # dropout is 0 (fused kernels have none), else xla. xla | dot_product | cudnn | flash | auto:
    # docs/performance.md. BERT keeps the paper's attention dropout 0.1, so xla unless it is 0.
    c.model.attention_impl = "auto"

    c.data = ml_collections.ConfigDict()
    c.data.corpus = "embedded"
    c.data.tokenizer = "embedded"
    c.data.tfds_data_dir = ""
    c.data.max_seq_length = 512
    c.data.max_predictions_per_seq = 76
    c.data.masked_lm_prob = 0.15
    c.data.short_seq_prob = 0.1
    c.data.nsp_random_prob = 0.5
    # MLM alone (--config.objectives.nsp=0) trains on SOP instances (data.sentence_order).
    c.data.sop_swap_prob = 0.5
    c.data.whole_word_masking = False
    c.data.eval_fraction = 0.02
    # Independent input streams; 0 = one per process. Fix it (e.g. to the largest host count you
    # will use) to get the same global batches whatever the number of hosts.
    c.data.num_shards = 0
    # Streamed corpora (stream:GLOB, prepared:DIR, mixtures): documents per chunk, the unit
    # that is tokenised and shuffled (docs/pretraining.md, "Corpora larger than memory").
    c.data.stream_chunk_documents = 4096

    c.train = ml_collections.ConfigDict()
    c.train.steps = 1_000_000
    c.train.batch_size = 256  # global, across all processes
    c.train.microbatches = 1  # gradient accumulation: the same update in smaller pieces
    c.train.learning_rate = 1e-4
    c.train.warmup_steps = 10_000
    optimizer_mesh.add_optimizer(c.train)
    optimizer_mesh.add_profiling(c.train)
    c.train.log_every = 100
    c.train.writers = "jsonl,tensorboard"  # metrics.jsonl, TensorBoard; add ",wandb" for W&B
    c.train.eval_every = 10_000
    c.train.eval_batches = 50
    c.train.checkpoint_every = 10_000
    c.train.keep_checkpoints = 3

    optimizer_mesh.add_mesh(c)
    return c


def get_config(variant: str = "tiny") -> ml_collections.ConfigDict:
    """`tiny`, `base` or `large`."""
    c = _base_config()
    if variant == "tiny":
        # Position rows for the 64-token pairs below, no more.
        c.model.update(hidden_size=128, num_layers=2, num_heads=2, mlp_dim=512, max_length=64)
        # About one pass over the corpus at this budget: dropout would only slow learning (and
        # costs ~20% of the step time on CPU).
        c.model.dropout_rate = 0.0
        c.model.attention_dropout_rate = 0.0
        c.model.dtype = "float32"  # CPU: no bfloat16 units; unrolled layers run faster there
        c.model.scan_layers = False
        c.model.attention_impl = "xla"
        # Pairs of 64 tokens, 64 a batch: the tokens (and MLM predictions) of 32 × 128, but twice
        # the sentence pairs, which NSP needs more than long context at this budget.
        c.data.max_seq_length = 64
        c.data.max_predictions_per_seq = 10
        c.data.eval_fraction = 0.03
        c.train.steps = 1200
        c.train.batch_size = 64
        c.train.learning_rate = 2e-3
        c.train.warmup_steps = 100
        c.train.log_every = 50
        c.train.eval_every = 300
        c.train.eval_batches = 50  # the held-out documents give 36 (2,304 pairs: NSP ±0.8%)
        c.train.checkpoint_every = 300
    elif variant == "large":
        c.model.update(hidden_size=1024, num_layers=24, num_heads=16, mlp_dim=4096)
    elif variant != "base":
        raise ValueError(f"unknown variant {variant!r}: use bert.py:tiny, :base or :large")
    return c
