"""Google's original TF BERT release (``bert_config.json`` + ``bert_model.ckpt.*``, the variable
names of google-research/bert's ``modeling.py`` and ``run_pretraining.py``) → pretrax parameters.

Read with ``tf.train.load_checkpoint`` (tensors only, nothing executed). The variable names become
transformers' ``BertForPreTraining`` names, so ``lm.interop.bert`` does the rest. That code's
``gelu`` is the tanh approximation, so ``hidden_act: "gelu"`` becomes ``gelu_tanh`` here.
"""

from __future__ import annotations

import os
import re

import numpy as np

from launch.conversion.files import read_json
from lm.interop import bert

CONFIG, CHECKPOINT = "bert_config.json", "bert_model.ckpt"
# Optimizer slots and counters that are in pretraining checkpoints but are not weights.
_SKIP = re.compile(r"(adam_[mv]|global_step|bad_steps|good_steps|loss_scale)")
_RENAMES = (("cls/predictions/output_bias", "cls/predictions/bias"),
            ("cls/seq_relationship/output_weights", "cls/seq_relationship/weight"),
            ("cls/seq_relationship/output_bias", "cls/seq_relationship/bias"))


def hf_name(tf_name: str) -> tuple[str, bool]:
    """(transformers name, whether the value is transposed) of a google-research/bert variable."""
    name = tf_name
    for old, new in _RENAMES:
        name = name.replace(old, new)
    name = re.sub(r"layer_(\d+)", r"layer/\1", name)
    transpose = name.endswith("/kernel")
    name = re.sub(r"/(kernel)$", "/weight", name)
    name = re.sub(r"/gamma$", "/weight", name)
    name = re.sub(r"/beta$", "/bias", name)
    if name.endswith("_embeddings"):
        name += "/weight"
    return name.replace("/", "."), transpose


def read(directory: str):
    """``(lm.interop.bert, TransformerConfig, lm.interop.maps.Loaded)`` of a TF BERT checkpoint
    directory (a pretraining checkpoint holds every part; a fine-tuned one its encoder).

    Raises:
      FileNotFoundError: without ``bert_config.json``.
      ValueError: naming a malformed setting of bert_config.json, checkpoint files that cannot
        be read, or the weights the checkpoint lacks.
    """
    import tensorflow as tf

    source = os.path.join(directory, CONFIG)
    hf = {"model_type": "bert", **read_json(source)}
    config = bert.config_from_hf(hf, source)
    if hf.get("hidden_act", "gelu") == "gelu":
        config = config.replace(activation="gelu_tanh")
    try:
        reader = tf.train.load_checkpoint(os.path.join(directory, CHECKPOINT))
        state = {}
        for tf_name in reader.get_variable_to_shape_map():
            if _SKIP.search(tf_name):
                continue
            name, transpose = hf_name(tf_name)
            value = np.asarray(reader.get_tensor(tf_name), np.float32)
            state[name] = value.T if transpose else value
    except (tf.errors.OpError, ValueError) as e:  # a truncated or garbled .index/.data file
        why = (getattr(e, "message", "") or str(e)).strip().splitlines()[0][:200]
        raise ValueError(f"{os.path.join(directory, CHECKPOINT)}.*: not a readable TensorFlow "
                         f"checkpoint ({why}); download Google's release again") from None
    return bert, config, bert.load(state, config, os.path.join(directory, CHECKPOINT))
