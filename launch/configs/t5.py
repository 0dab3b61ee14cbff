"""T5 v1.1 (encoder–decoder) pretraining configs: the model, field by field (lm/t5.py).

The model side is complete: `models.make_model("t5", modeling.model_config(cfg, …))` builds it,
`objectives/seq2seq.py` scores it, `lm/generation.py` decodes it (`generate_seq2seq`,
`beam_search_seq2seq`) and `launch.convert` converts it to and from transformers'
`T5ForConditionalGeneration`.

Inputs (data/seq2seq_pretraining.py): by default T5's span corruption (`data.denoising=
span_corruption`, 15% noise, mean span 3) over the monolingual Spanish and English Bible corpora
(data/corpora/seq2seq/, train verses only) with the joint es-en tokenizer and its 100 sentinels
(data/tokenizers/bible_es_en_8k.model); `--config.data.denoising=sentence_permutation` selects
BART's sentence permutation. `data.max_target_length=0` is the objective's own target length
(span corruption: T5's `random_spans_helper`, 14 for 64 source tokens; sentence permutation: the
source length).

  python -m launch.pretrain --config=launch/configs/t5.py:tiny --workdir=workdirs/t5_tiny

Variants: `tiny` (D=128, 2+2 layers, H=4, K=32, F=256; 64 source + 64 target tokens, float32,
unrolled: sized for a 2-core CPU), `small` and `base` (T5 v1.1's published shapes: D=512/768,
8+8 / 12+12 layers, H=6/12, K=64, F=1024/2048, 32 relative buckets up to distance 128; 512
source and 114 target tokens as T5's span corruption (15% noise, mean span 3) makes them; 128
rows a batch, 2^19 steps as T5 v1.1; AdamW at 1e-3 where T5 used Adafactor). Dropout is 0 in
pretraining, as T5 v1.1 found better; fine-tuning turns it back on (0.1). All but `tiny` compute
in bfloat16 with float32 parameters, layers scanned. `model.max_length` bounds no table (the
positions are relative): it is the longest source `data.max_seq_length` may ask for.

Measured train-step throughput on the 2-core CPU: docs/families.md#t5-v11-encoderdecoder.
"""

import importlib.resources

import ml_collections
from ml_collections import config_dict

from data import monolingual
from launch.configs import bert, optimizer_mesh

# The joint es-en SentencePiece model with T5's <extra_id_*> sentinels.
ES_EN_TOKENIZER = str(importlib.resources.files("data").joinpath("tokenizers",
                                                                   "bible_es_en_8k.model"))
# The monolingual corpora (one file a language; not aligned: no verse beside its translation).
ES_EN_CORPUS = ",".join(monolingual.corpus_paths()[lang] for lang in monolingual.LANGUAGES)

# name → (D, encoder layers, decoder layers, H, F), T5 v1.1's published shapes (K = 64).
_SHAPES = {"small": (512, 8, 8, 6, 1024), "base": (768, 12, 12, 12, 2048)}


def _base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.objectives = ml_collections.ConfigDict({"seq2seq": 1.0})  # name → weight
    c.init_from = ""
    c.init_step = config_dict.placeholder(int)

    # T5 v1.1-small here: pre-RMSNorm (eps 1e-6), gated tanh-GELU FFN, no biases, untied head.
    c.model = ml_collections.ConfigDict()
    c.model.arch = "t5"
    c.model.vocab_size = bert.EMBEDDED_VOCAB_SIZE
    c.model.hidden_size = 512
    c.model.num_layers = 8  # the encoder's
    c.model.num_decoder_layers = 8
    c.model.num_heads = 6
    c.model.head_dim = 64
    c.model.mlp_dim = 1024
    c.model.relative_buckets = 32
    c.model.relative_max_distance = 128
    c.model.max_length = 512  # no position table: the longest source data.max_seq_length allows
    c.model.type_vocab_size = 1  # unused (T5 has no token types)
    c.model.dropout_rate = 0.0
    c.model.attention_dropout_rate = 0.0
    c.model.activation = "gelu_tanh"  # the gate's (gated-gelu, transformers' gelu_new)
    c.model.norm_position = "pre"
    c.model.layer_norm_eps = 1e-6
    c.model.initializer_range = 0.02
    c.model.dtype = "bfloat16"
    c.model.scan_layers = True
    c.model.remat = "none"
    c.model.attention_impl = "auto"  # self-attention's relative bias keeps it on xla

    c.data = ml_collections.ConfigDict()
    c.data.corpus = ES_EN_CORPUS
    c.data.tokenizer = ES_EN_TOKENIZER
    c.data.tfds_data_dir = ""
    c.data.denoising = "span_corruption"  # or sentence_permutation
    c.data.noise_density = 0.15
    c.data.mean_noise_span_length = 3.0
    c.data.permutation_noise_density = 0.0  # sentence permutation: 0 = no infilling
    c.data.max_seq_length = 512  # source (encoder) tokens
    c.data.max_target_length = 114  # target (decoder) tokens; 0 = the objective's own
    c.data.eval_fraction = 0.02
    c.data.num_shards = 0

    c.train = ml_collections.ConfigDict()
    c.train.steps = 524_288
    c.train.batch_size = 128
    c.train.microbatches = 1
    c.train.learning_rate = 1e-3
    c.train.warmup_steps = 10_000
    optimizer_mesh.add_optimizer(c.train)
    optimizer_mesh.add_profiling(c.train)
    c.train.z_loss = 1e-4  # as t5x
    c.train.log_every = 100
    c.train.writers = "jsonl,tensorboard"
    c.train.eval_every = 5000
    c.train.eval_batches = 50
    c.train.checkpoint_every = 5000
    c.train.keep_checkpoints = 3

    optimizer_mesh.add_mesh(c)
    return c


def get_config(variant: str = "tiny") -> ml_collections.ConfigDict:
    """`tiny`, `small` or `base` (T5 v1.1's shapes)."""
    c = _base_config()
    if variant == "tiny":
        c.model.update(hidden_size=128, num_layers=2, num_decoder_layers=2, num_heads=4,
                       head_dim=32, mlp_dim=256, max_length=64)
        c.model.dtype = "float32"  # CPU: no bfloat16 units; unrolled layers run faster there
        c.model.scan_layers = False
        c.model.attention_impl = "xla"
        c.data.max_seq_length = 64
        c.data.max_target_length = 0  # span corruption: 14
        c.train.steps = 1000
        c.train.batch_size = 64
        # 3e-3 collapsed the encoder's outputs (99% of their variance in 8 of 128 directions at
        # step 200, 7 at 1,500) and fine-tuning from it never learnt to read the source; 3e-4:
        # rank99 120 at step 200, 111 at 1,500, with eval loss 4.337 where 3e-3 ended at 4.567
        # (`launch.evaluate --workdir=… --step=…`; docs/finetuning.md).
        c.train.learning_rate = 3e-4
        c.train.warmup_steps = 50
        c.train.log_every = 20
        c.train.eval_every = 250
        c.train.eval_batches = 20
        c.train.checkpoint_every = 250
    elif variant in _SHAPES:
        d, n_enc, n_dec, h, f = _SHAPES[variant]
        c.model.update(hidden_size=d, num_layers=n_enc, num_decoder_layers=n_dec, num_heads=h,
                       mlp_dim=f)
    else:
        raise ValueError(f"unknown variant {variant!r}: use t5.py:tiny, :small or :base")
    return c
