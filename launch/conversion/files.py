"""Reading a checkpoint directory's files: JSON configs and safetensors weights, never pickle."""

from __future__ import annotations

import json
import os

import numpy as np

WEIGHTS, INDEX = "model.safetensors", "model.safetensors.index.json"
TF_CONFIG, TF_CHECKPOINT = "bert_config.json", "bert_model.ckpt"
PICKLED = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
_RESAVE = "save the model again with transformers' save_pretrained(DIR, safe_serialization=True)"


def _fix_pickled(path: str, directory: str) -> str:
    return (f"{path} is a pickled PyTorch file; pretrax reads only safetensors (unpickling can run "
            "arbitrary code). Convert it once where you trust it: python -c \"from transformers "
            f"import AutoModelForPreTraining as M; M.from_pretrained('{directory}')"
            f".save_pretrained('{directory}', safe_serialization=True)\"")


def read_json(path: str) -> dict:
    """A JSON file holding one object, as a dict.

    Raises:
      FileNotFoundError / ValueError: naming the file (not JSON, not UTF-8, not an object).
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: --from_hf needs a directory saved by "
                                "transformers' save_pretrained (config.json + model.safetensors) "
                                "or Google's TF BERT release (bert_config.json + "
                                "bert_model.ckpt.*)")
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} line {e.lineno}: not valid JSON ({e.msg})") from None
    except (UnicodeDecodeError, OSError) as e:
        raise ValueError(f"{path}: cannot be read as JSON text ({e}); {_RESAVE}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: a JSON {type(value).__name__}, not an object of settings; "
                         f"{_RESAVE}")
    return value


def confined(directory: str, name, source: str) -> str:
    """The path of the file ``name`` (as an index lists it) inside ``directory``.

    A name that is not a plain relative path, or a file whose real path (symlinks resolved) lies
    outside ``directory``, is refused, so an index cannot make pretrax read other files. The one
    exception is the Hugging Face hub cache, whose ``snapshots/REV/`` files link to the same
    repository's ``blobs/``.

    Raises:
      ValueError: naming ``source`` (the index), the name and the fix.
    """
    if not isinstance(name, str) or not name or os.path.isabs(name) or "\\" in name or (
            ".." in name.split("/")):
        raise ValueError(f"{source}: shard {repr(name)[:80]} is not a file name inside "
                         f"{directory} (no absolute path, no '..'), as an index names the "
                         f"shards next to it; {_RESAVE}")
    root = os.path.realpath(directory)
    target = os.path.realpath(os.path.join(root, name))
    allowed = [root]
    if os.path.basename(os.path.dirname(root)) == "snapshots":
        allowed.append(os.path.join(os.path.dirname(os.path.dirname(root)), "blobs"))
    if not any(os.path.commonpath([target, a]) == a for a in allowed):
        raise ValueError(f"{source}: {name} is a link to {target}, outside {directory}; pretrax "
                         "reads weights only from the directory itself: copy the file there")
    return target


def _load(path: str, directory: str) -> dict[str, np.ndarray]:
    """One safetensors file (checked by the library: header size, JSON, offsets)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found (listed in {os.path.join(directory, INDEX)}); "
                                f"download the missing shard, or {_RESAVE}")
    try:
        return load_file(path)
    except (SafetensorError, OSError) as e:
        why = str(e).removeprefix("Error while deserializing header: ")
        raise ValueError(f"{path}: not a readable safetensors file ({why}); it is damaged or "
                         f"not safetensors: download it again, or {_RESAVE}") from None


def _shards(directory: str) -> list[str]:
    """The shard files that ``directory``'s index lists, each confined to ``directory``."""
    index = os.path.join(directory, INDEX)
    weight_map = read_json(index).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise ValueError(f"{index}: no \"weight_map\" object of weight name → shard file; "
                         f"{_RESAVE}")
    return sorted({confined(directory, name, index) for name in weight_map.values()})


def read_safetensors(directory: str) -> dict[str, np.ndarray]:
    """The state dict of ``directory`` (one ``model.safetensors``, or the shards of its index).

    Raises:
      ValueError: when only pickled weights are there (with the command that converts them), an
        index lists a file outside ``directory``, or a file is not valid safetensors.
      FileNotFoundError: when there are no weights at all, or a listed shard is missing.
    """
    if os.path.exists(os.path.join(directory, WEIGHTS)):
        return _load(confined(directory, WEIGHTS, os.path.join(directory, WEIGHTS)), directory)
    if os.path.exists(os.path.join(directory, INDEX)):
        return {k: v for path in _shards(directory) for k, v in _load(path, directory).items()}
    pickled = sorted(f for f in os.listdir(directory) if f.endswith(PICKLED))
    if pickled:
        raise ValueError(_fix_pickled(os.path.join(directory, pickled[0]), directory))
    raise FileNotFoundError(f"no {WEIGHTS} in {directory}: save the model with transformers' "
                            "save_pretrained(DIR, safe_serialization=True)")
