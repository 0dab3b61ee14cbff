"""Hugging Face interop: pure maps between transformers' configs and state dicts and ours.

One module per family (``bert``, ``gpt2``, ``albert``, ``xlnet``, ``t5``), each with
``config_from_hf``, ``config_to_hf``, ``params_from_hf``, ``params_to_hf``, ``load`` (the parts of
any of the family's head layouts, ``maps.load_parts``) and the names ``MODEL_TYPE`` (transformers'
``model_type``), ``ARCH`` (our ``lm.models`` architecture), ``HF_ARCHITECTURE`` (the class an
export is), ``ARCHITECTURES`` (the layouts an import reads), ``PARTS`` and ``NAME``. NumPy only;
reading and writing files is ``launch.conversion.huggingface``'s job.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType

from lm.interop import albert, bert, gpt2, t5, xlnet

FAMILIES: dict[str, ModuleType] = {m.MODEL_TYPE: m for m in (bert, gpt2, albert, xlnet, t5)}


def family_for_hf(hf_config: Mapping, source: str = "config.json") -> ModuleType:
    """The family module of a transformers config dict (by its ``model_type``).

    Raises:
      ValueError: naming the model_type when pretrax has no map for it.
    """
    if not isinstance(hf_config, Mapping):
        raise ValueError(f"{source}: a JSON {type(hf_config).__name__}, not an object of "
                         "settings; save the model again with transformers' save_pretrained")
    model_type = hf_config.get("model_type")
    if model_type is None:
        raise ValueError(f"{source}: no model_type; add the model's, one of {sorted(FAMILIES)} "
                         "(transformers' save_pretrained writes it)")
    if not isinstance(model_type, str) or model_type not in FAMILIES:
        named = hf_config.get("architectures")
        named = (f" ({', '.join(map(str, named))[:80]})" if isinstance(named, list) and named
                 else "")
        raise ValueError(f"{source}: model_type={repr(model_type)[:60]}{named} is not one "
                         f"pretrax converts; supported: {sorted(FAMILIES)} ({supported()})")
    return FAMILIES[model_type]


def supported() -> str:
    """The checkpoint classes pretrax converts, by family, for messages."""
    return "; ".join(f"{m.NAME}: {', '.join(m.ARCHITECTURES)}" for m in FAMILIES.values())


def family_for_arch(arch: str) -> ModuleType:
    """The family module of one of our architectures (``bert``, ``gpt``, ``albert``, ``xlnet``,
    ``t5``).

    Raises:
      ValueError: for an architecture without a transformers counterpart.
    """
    for module in FAMILIES.values():
        if module.ARCH == arch:
            return module
    raise ValueError(f"model.arch={arch!r} has no Hugging Face export; supported: "
                     f"{sorted(m.ARCH for m in FAMILIES.values())}")
