"""Reading a checkpoint directory's files: JSON configs and safetensors weights, never pickle."""

from __future__ import annotations

import json
import os

import numpy as np

WEIGHTS, INDEX = "model.safetensors", "model.safetensors.index.json"
TF_CONFIG, TF_CHECKPOINT = "bert_config.json", "bert_model.ckpt"
PICKLED = (".bin", ".pt", ".pth", ".pkl", ".ckpt")

def _fix_pickled(path: str, directory: str) -> str:
    return (f"{path} is a pickled PyTorch file; pretrax reads only safetensors (unpickling can run "
            "arbitrary code). Convert it once where you trust it: python -c \"from transformers "
            f"import AutoModelForPreTraining as M; M.from_pretrained('{directory}')"
            f".save_pretrained('{directory}', safe_serialization=True)\"")


def read_json(path: str) -> dict:
    """A JSON file as a dict.

    Raises:
      FileNotFoundError / ValueError: naming the file.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: --from_hf needs a directory saved by "
                                "transformers' save_pretrained (config.json + model.safetensors) "
                                "or Google's TF BERT release (bert_config.json + "
                                "bert_model.ckpt.*)")
    with open(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} line {e.lineno}: not valid JSON ({e.msg})") from None


def read_safetensors(directory: str) -> dict[str, np.ndarray]:
    """The state dict of ``directory`` (one ``model.safetensors``, or the shards of its index).

    Raises:
      ValueError: when only pickled weights are there (with the command that converts them).
      FileNotFoundError: when there are no weights at all.
    """
    from safetensors.numpy import load_file
    if os.path.exists(os.path.join(directory, WEIGHTS)):
        return load_file(os.path.join(directory, WEIGHTS))
    if os.path.exists(os.path.join(directory, INDEX)):
        shards = sorted(set(read_json(os.path.join(directory, INDEX))["weight_map"].values()))
        return {k: v for s in shards for k, v in load_file(os.path.join(directory, s)).items()}
    pickled = sorted(f for f in os.listdir(directory) if f.endswith(PICKLED))
    if pickled:
        raise ValueError(_fix_pickled(os.path.join(directory, pickled[0]), directory))
    raise FileNotFoundError(f"no {WEIGHTS} in {directory}: save the model with transformers' "
                            "save_pretrained(DIR, safe_serialization=True)")
