"""Hugging Face interop: pure maps between transformers' configs and state dicts and ours.

One module per family (``bert``, ``gpt2``, ``albert``, ``xlnet``), each with ``config_from_hf``,
``config_to_hf``, ``params_from_hf``, ``params_to_hf`` and the names ``MODEL_TYPE`` (transformers'
``model_type``), ``ARCH`` (our ``lm.models`` architecture) and ``HF_ARCHITECTURE``. NumPy only;
reading and writing files is ``launch.conversion.huggingface``'s job.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType

from lm.interop import albert, bert, gpt2, xlnet

FAMILIES: dict[str, ModuleType] = {m.MODEL_TYPE: m for m in (bert, gpt2, albert, xlnet)}


def family_for_hf(hf_config: Mapping, source: str = "config.json") -> ModuleType:
    """The family module of a transformers config dict (by its ``model_type``).

    Raises:
      ValueError: naming the model_type when pretrax has no map for it.
    """
    model_type = hf_config.get("model_type")
    if model_type not in FAMILIES:
        raise ValueError(f"{source}: model_type={model_type!r} is not one pretrax converts; "
                         f"supported: {sorted(FAMILIES)}")
    return FAMILIES[model_type]


def family_for_arch(arch: str) -> ModuleType:
    """The family module of one of our architectures (``bert``, ``gpt``, ``albert``, ``xlnet``).

    Raises:
      ValueError: for an architecture without a transformers counterpart.
    """
    for module in FAMILIES.values():
        if module.ARCH == arch:
            return module
    raise ValueError(f"model.arch={arch!r} has no Hugging Face export; supported: "
                     f"{sorted(m.ARCH for m in FAMILIES.values())}")
