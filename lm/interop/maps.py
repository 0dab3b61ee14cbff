"""The shared machinery of the Hugging Face maps: reshapes between PyTorch and pretrax layouts, and
one table of ``(our path, their name, kind)`` rules per family that drives both directions.

Pure NumPy: no torch, no file I/O. Our paths are ``/``-joined parameter-tree keys
(``encoder/layers_0/attention/query/kernel``); their names are state-dict keys.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping

import numpy as np

from lm.config import TransformerConfig

Rule = tuple[str, str, str]  # (our path, their state-dict name, kind of reshape)
Reshape = Callable[[np.ndarray, TransformerConfig], np.ndarray]


def _heads(c: TransformerConfig) -> tuple[int, int]:
    return c.num_heads, c.kv_dim


# kind → (theirs → ours, ours → theirs). torch.nn.Linear stores [out, in], as our kernels do
# (attention's split into (H, K): query [H, K, D], out [D, H, K]); GPT-2's Conv1D stores [in, out].
KINDS: dict[str, tuple[Reshape, Reshape]] = {
    "same": (lambda x, c: x, lambda x, c: x),
    "linear": (lambda x, c: x, lambda x, c: x),
    "linear_in_heads": (lambda x, c: x.reshape(*_heads(c), x.shape[1]),
                        lambda x, c: x.reshape(-1, x.shape[-1])),
    "linear_out_heads": (lambda x, c: x.reshape(x.shape[0], *_heads(c)),
                         lambda x, c: x.reshape(x.shape[0], -1)),
    "conv": (lambda x, c: x.T, lambda x, c: x.T),
    "conv_in_heads": (lambda x, c: x.T.reshape(*_heads(c), x.shape[0]),
                      lambda x, c: x.reshape(-1, x.shape[-1]).T),
    "conv_out_heads": (lambda x, c: x.T.reshape(x.shape[1], *_heads(c)),
                       lambda x, c: x.reshape(x.shape[0], -1).T),
    "bias_heads": (lambda x, c: x.reshape(_heads(c)), lambda x, c: x.reshape(-1)),
    "heads_last": (lambda x, c: x.transpose(1, 2, 0), lambda x, c: x.transpose(2, 0, 1)),
    "flat": (lambda x, c: x.reshape(-1), lambda x, c: x.reshape(1, 1, -1)),
}


def as_float32(x) -> np.ndarray:
    """A float32 NumPy copy of an array or of a torch tensor (no torch import needed)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().float().numpy()
    return np.asarray(x, np.float32)


def _set(tree: dict, path: str, value) -> None:
    *parents, leaf = path.split("/")
    for key in parents:
        tree = tree.setdefault(key, {})
    tree[leaf] = value


def _get(tree: Mapping, path: str):
    for key in path.split("/"):
        tree = tree[key]
    return tree


def unflatten(flat: Mapping[str, object]) -> dict:
    """The nested tree of ``{"a/b/c": leaf}`` (the inverse of ``flatten``)."""
    tree: dict = {}
    for path, value in flat.items():
        _set(tree, path, value)
    return tree


def flatten(tree: Mapping, prefix: str = "") -> dict[str, np.ndarray]:
    """``{"a/b/c": leaf}`` of a nested parameter tree."""
    out = {}
    for k, v in tree.items():
        if isinstance(v, Mapping):
            out.update(flatten(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = v
    return out


def to_ours(rules: list[Rule], state_dict: Mapping, config: TransformerConfig,
            source: str = "the state dict") -> dict:
    """Our parameter tree (float32 NumPy) from their state dict.

    Raises:
      ValueError: naming every weight the rules need that ``state_dict`` lacks.
    """
    missing = sorted(theirs for _, theirs, _ in rules if theirs not in state_dict)
    if missing:
        raise ValueError(f"{source} lacks {len(missing)} weight(s) this config needs: "
                         f"{', '.join(missing[:8])}{' …' if len(missing) > 8 else ''}; is its "
                         "config.json the one it was saved with?")
    params: dict = {}
    for ours, theirs, kind in rules:
        _set(params, ours, KINDS[kind][0](as_float32(state_dict[theirs]), config))
    return params


@dataclasses.dataclass(frozen=True)
class Loaded:
    """What a checkpoint held of a pretraining model (``load_parts``).

    Attributes:
      params: our parameter tree of the parts it held (float32 NumPy).
      loaded: part name → how many of the checkpoint's tensors it read, in the model's order.
      missing: the parts it lacks (a ``BertModel`` has no MLM or NSP head), to initialise.
      unused: group (module name) → how many tensors of the checkpoint no part reads (another
        task's head, or an untied output layer our model ties to the token table).
    """
    params: dict
    loaded: dict[str, int]
    missing: tuple[str, ...]
    unused: dict[str, int]


def part_of(path: str, parts: list[tuple[str, str]]) -> str:
    """The name of the part with the longest path prefix that ``path`` starts with."""
    return max((len(prefix), name) for name, prefix in parts if path.startswith(prefix))[1]


def with_prefix(state_dict: Mapping, prefix: str) -> dict:
    """A bare model's state dict (``BertModel``: ``embeddings.…``) named as the models with heads
    save it (``bert.embeddings.…``); one that has ``prefix`` names already is returned as is."""
    if any(k.startswith(prefix) for k in state_dict):
        return dict(state_dict)
    return {prefix + k: v for k, v in state_dict.items()}


def load_parts(rules: list[Rule], checkpoint: Mapping, config: TransformerConfig,
               parts: list[tuple[str, str]], *, prefix: str = "",
               origin: Callable[[str], str] = lambda n: n,
               source: str = "the state dict") -> Loaded:
    """The parts of our model that a checkpoint's state dict holds whole, and those it lacks.

    Args:
      parts: ``(name, our path prefix)``, the longest prefix wins; the first part (the encoder)
        is required, the others (pooler, heads) may be absent.
      prefix: the base model's name in the models with heads (``bert.``), which a bare model's
        state dict lacks (``with_prefix``).
      origin: the checkpoint's name of a rule's tensor (GPT-2 splits one ``c_attn`` into three).

    Raises:
      ValueError: naming the weights a part lacks when it holds some of them (or the encoder
        lacks any), so a damaged checkpoint is never half-loaded.
    """
    state_dict = with_prefix(checkpoint, prefix)
    by_part: dict[str, list[Rule]] = {name: [] for name, _ in parts}
    for rule in rules:
        by_part[part_of(rule[0], parts)].append(rule)
    loaded, missing, used = {}, [], set()
    for i, (name, part_rules) in enumerate(item for item in by_part.items() if item[1]):
        absent = sorted(theirs for _, theirs, _ in part_rules if theirs not in state_dict)
        if len(absent) == len(part_rules) and i == 0:
            raise ValueError(f"{source} holds none of the {name}'s weights (e.g. {absent[0]}); "
                             f"its tensors are named like {min(checkpoint, default='(none)')}: "
                             "is its config.json the one it was saved with?")
        if len(absent) == len(part_rules):
            missing.append(name)
            continue
        if absent:
            raise ValueError(f"{source} lacks {len(absent)} weight(s) of the {name} this config "
                             f"needs: {', '.join(absent[:8])}{' …' if len(absent) > 8 else ''}; "
                             "is its config.json the one it was saved with?")
        loaded[name] = len({origin(theirs) for _, theirs, _ in part_rules})
        used |= {theirs for _, theirs, _ in part_rules}
    unused: dict[str, int] = {}
    for key in {origin(k) for k in state_dict if k not in used} - {origin(k) for k in used}:
        group = key.rsplit(".", 1)[0]
        unused[group] = unused.get(group, 0) + 1
    chosen = [r for r in rules if r[1] in used]
    return Loaded(to_ours(chosen, state_dict, config, source), loaded, tuple(missing),
                  dict(sorted(unused.items())))


def to_theirs(rules: list[Rule], params: Mapping, config: TransformerConfig
              ) -> dict[str, np.ndarray]:
    """Their state dict (contiguous float32 NumPy) from our parameter tree.

    Raises:
      ValueError: naming the first of our parameters that ``params`` lacks (e.g. a head the run
        did not train, which the transformers class needs).
    """
    out = {}
    for ours, theirs, kind in rules:
        try:
            value = as_float32(_get(params, ours))
        except KeyError:
            raise ValueError(f"the checkpoint has no parameter {ours}, which {theirs} needs: "
                             "export a run that trained that head") from None
        out[theirs] = np.ascontiguousarray(KINDS[kind][1](value, config))
    return out


def check_shapes(params: Mapping, expected: Mapping[str, tuple]) -> None:
    """Raises ValueError naming every parameter whose shape differs from ``expected``
    (path → shape or ShapeDtypeStruct, e.g. from ``jax.eval_shape`` of the model's init)."""
    got = {k: tuple(np.shape(v)) for k, v in flatten(params).items()}
    want = {k: tuple(getattr(s, "shape", s)) for k, s in expected.items()}
    problems = [f"{k}: converted {got.get(k, 'missing')}, model {s}"
                for k, s in sorted(want.items()) if got.get(k) != s]
    problems += [f"{k}: converted {got[k]}, not in the model" for k in sorted(set(got) -
                                                                             set(want))]
    if problems:
        raise ValueError("converted parameters do not fit the model: " + "; ".join(problems[:8]))


def activation_from_hf(name: str, key: str, source: str = "config.json") -> str:
    """Our activation for a transformers activation name (``hidden_act`` etc.).

    Raises:
      ValueError: for one our layers do not implement.
    """
    known = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
             "gelu_fast": "gelu_tanh", "relu": "relu"}
    if not isinstance(name, str) or name not in known:
        raise ValueError(f"{source}: {key}={_short(name)} is not supported; pretrax implements "
                         f"{sorted(known)}")
    return known[name]


ACTIVATION_TO_HF = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu"}


def require(hf: Mapping, expected: Mapping[str, object], family: str,
            source: str = "config.json") -> None:
    """Raises ValueError naming each setting of ``hf`` that differs from what our model computes."""
    bad = {k: hf[k] for k, v in expected.items() if k in hf and hf[k] != v}
    if bad:
        raise ValueError(f"{source}: {family} settings pretrax does not implement: "
                         + ", ".join(f"{k}={_short(v)} (supported: {expected[k]!r})"
                                     for k, v in bad.items()))


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


REQUIRED = object()  # a setting without a default


@dataclasses.dataclass(frozen=True)
class Settings:
    """A transformers config dict (``config.json``) read with checks: each value's type and
    range, before anything is built from it. Every refusal is one line naming ``source``, the
    key and the fix. A missing or ``null`` value takes the default, if there is one.

    Example::

        s = Settings(hf, "DIR/config.json", "BERT")
        TransformerConfig(vocab_size=s.count("vocab_size"), …)
    """
    hf: Mapping
    source: str
    family: str

    def __post_init__(self):
        if not isinstance(self.hf, Mapping):
            raise ValueError(f"{self.source}: a JSON {type(self.hf).__name__}, not an object of "
                             "settings; save the model again with transformers' save_pretrained")

    def _get(self, key: str, default, what: str):
        value = self.hf.get(key)
        if value is None and default is REQUIRED:
            raise ValueError(
                f"{self.source}: no {key}, which {self.family} configs need ({what}); add it, "
                "with the value the weights were saved with, or save the model again with "
                "transformers' save_pretrained")
        return value

    def _bad(self, key: str, what: str) -> ValueError:
        return ValueError(
            f"{self.source}: {key}={_short(self.hf[key])} is not {what}; set it to the value the "
            "weights were saved with (or save the model again with transformers' "
            "save_pretrained)")

    def count(self, key: str, default=REQUIRED) -> int:
        """A positive integer (a size: vocab_size, hidden_size, …)."""
        value = self._get(key, default, "a positive integer")
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self._bad(key, "a positive integer")
        return value

    def integer(self, key: str, default: int) -> int:
        """Any integer (e.g. XLNet's clamp_len, -1 = off)."""
        value = self._get(key, default, "an integer")
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise self._bad(key, "an integer")
        return default if value is None else value

    def token_id(self, key: str, default: int) -> int:
        """A token id (>= 0), ``default`` when missing or null."""
        value = self._get(key, default, "a token id")
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or
                                  value < 0):
            raise self._bad(key, "a token id (an integer >= 0)")
        return default if value is None else value

    def number(self, key: str, default: float, low: float, high: float, what: str) -> float:
        """A number in ``[low, high)``, described as ``what`` in a refusal."""
        value = self._get(key, default, what)
        if value is None:
            return default
        if (isinstance(value, bool) or not isinstance(value, int | float) or
                not low <= value < high):
            raise self._bad(key, what)
        return float(value)

    def rate(self, key: str, default: float) -> float:
        """A dropout probability, in [0, 1)."""
        return self.number(key, default, 0.0, 1.0, "a probability in [0, 1)")

    def scale(self, key: str, default: float) -> float:
        """A positive number (an epsilon, an initialiser's standard deviation)."""
        return self.number(key, default, 1e-300, math.inf, "a positive number")

    def activation(self, key: str, default: str) -> str:
        """Our activation for the transformers name under ``key``."""
        value = self._get(key, default, "an activation name")
        return activation_from_hf(default if value is None else value, key, self.source)

    def heads(self, width_key: str, heads_key: str) -> tuple[int, int]:
        """(width, heads), both positive and the width a multiple of the heads."""
        width, heads = self.count(width_key), self.count(heads_key)
        if width % heads:
            raise ValueError(f"{self.source}: {width_key}={width} is not a multiple of "
                             f"{heads_key}={heads}; set them to the values the weights were "
                             "saved with")
        return width, heads

    def require(self, expected: Mapping[str, object]) -> None:
        """``require`` for this config."""
        require(self.hf, expected, self.family, self.source)
