"""What a user gives that reaches a generated script or manifest: checked, or quoted, in one place.

A name (a job, a slice, a zone, a partition, an image, …) must match a strict character set (a
``Rule``); any other value is refused in one line that names the flag, the value and the set.
Free text (the training command, paths, URLs) reaches a shell line only through ``shlex.join`` of
an argv, and a manifest only through ``yaml_text``, which writes every string double-quoted and
escaped, so no value can add a shell word, a YAML key or a YAML document.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata


@dataclasses.dataclass(frozen=True)
class Rule:
    """A strict character set for one kind of value, and how the refusal describes it."""
    pattern: str  # matched in full, ASCII only (no Unicode digits or letters)
    allowed: str  # completes "use ..." in the refusal

    def check(self, flag: str, value: str) -> str:
        """``value`` unchanged.

        Raises:
          ValueError: ``--flag='value': use <allowed>`` (one line) when it does not match.
        """
        if not isinstance(value, str) or not re.fullmatch(self.pattern, value, re.ASCII):
            raise ValueError(f"--{flag}={value!r}: use {self.allowed}")
        return value


_WORD = r"[A-Za-z0-9][A-Za-z0-9._-]*"
GKE_NAME = Rule(r"[a-z]([a-z0-9-]{0,38}[a-z0-9])?",
                "1-40 lowercase letters, digits and '-', starting with a letter (it names the "
                "JobSet, its pods and service)")
GCP_NAME = Rule(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?",
                "1-63 lowercase letters, digits and '-', starting with a letter and ending with "
                "a letter or digit")
ZONE = Rule(r"[a-z][a-z0-9-]*", "lowercase letters, digits and '-', starting with a letter, "
            "e.g. us-west4-a")
PROJECT = Rule(r"[a-z][a-z0-9.:-]*[a-z0-9]", "lowercase letters, digits, '-', '.' and ':', "
               "starting with a letter, e.g. my-project")
ACCELERATOR = Rule(r"[a-z0-9]+(-[a-z0-9]+)*", "lowercase letters, digits and '-', e.g. "
                   "v5litepod-16 or v4-32")
VERSION = Rule(_WORD, "letters, digits, '.', '_' and '-', starting with a letter or digit, e.g. "
               "v2-alpha-tpuv5-lite")
SLURM_NAME = Rule(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", "1-128 letters, digits, '.', '_' and "
                  "'-', starting with a letter or digit (it names the job and its script)")
PARTITION = Rule(rf"{_WORD}(,{_WORD})*", "letters, digits, '.', '_' and '-', starting with a "
                 "letter or digit (several partitions: joined by ',')")
OUTPUT = Rule(r"[A-Za-z0-9._%/-]+", "letters, digits and '.', '_', '%', '/', '-', e.g. "
              "slurm-%x-%j.out")
ACCOUNT = Rule(_WORD, "letters, digits, '.', '_' and '-', starting with a letter or digit")
LABEL = Rule(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?", "a node label value: 1-63 "
             "letters, digits, '.', '_' and '-', starting and ending with a letter or digit")
IMAGE = Rule(r"[a-z0-9][A-Za-z0-9._/:@-]*", "a container image of letters, digits and "
             "'.', '_', '/', ':', '@', '-', starting with a lowercase letter or digit, e.g. "
             "python:3.11")
PYTHON = Rule(r"[A-Za-z0-9_./+][A-Za-z0-9_./+-]*", "an interpreter's name or path of letters, "
              "digits and '.', '_', '/', '+', '-', not starting with '-', e.g. python3 or "
              "/opt/venv/bin/python")
REF = Rule(r"[A-Za-z0-9_][A-Za-z0-9._/+-]*", "a branch, tag or commit of letters, digits and "
           "'.', '_', '/', '+', '-', starting with a letter, digit or '_'")
_URL_CHARS = r"[A-Za-z0-9._~:/@%+=-]"
REPO = Rule(rf"(https?|ssh|git|file)://{_URL_CHARS}+|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:"
            rf"{_URL_CHARS}+", "a git URL (https://, ssh://, git://, file:// or USER@HOST:PATH) "
            "of letters, digits and '.', '_', '~', ':', '/', '@', '%', '+', '=', '-'")
_PATH_PART = r"[A-Za-z0-9._][A-Za-z0-9._+=-]*"
WHEEL = Rule(rf"(gs://|/)?({_PATH_PART}/)*[A-Za-z0-9_][A-Za-z0-9._+-]*\.whl",
             "a .whl path or gs:// URL of letters, digits and '.', '_', '+', '=', '-', '/', no "
             "part starting with '-', e.g. gs://BUCKET/pretrax-0.1.0-py3-none-any.whl")
JAX_EXTRA = Rule(r"[a-z0-9_,-]+", "a pip extra of jax, e.g. tpu or cuda12")
TOPOLOGY = Rule(r"[0-9]+(x[0-9]+){1,2}", "the slice's chip grid, e.g. --tpu_topology=4x4 (v5e, "
                "v6e) or 2x2x4 (v4, v5p)")
TIME = Rule(r"([0-9]+-)?[0-9]+(:[0-9][0-9]){0,2}",
            "Slurm's format, e.g. 24:00:00 or 2-00:00:00")


def check_text(label: str, value: str) -> str:
    """Free text (a path, a training command's argument): anything but control characters.

    ``label`` starts the refusal, e.g. ``--out_dir=``.

    Quoting keeps newlines and tabs in one shell word, but a pasted dry run would still carry
    them (and terminal escapes) to the user's terminal, and no path or flag needs them.

    Raises:
      ValueError: a control character (newline, tab, escape, NUL, …) or a lone surrogate.
    """
    if not isinstance(value, str) or any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
        raise ValueError(f"{label}{value!r}: use text without control characters (newline, tab, "
                         "escape, …)")
    return value


def check_range(flag: str, value: int, low: int, high: int | None = None) -> int:
    """``value`` unchanged.

    Raises:
      ValueError: ``--flag=N: use LOW or more`` / ``use LOW to HIGH`` when out of range.
    """
    if value < low or (high is not None and value > high):
        raise ValueError(f"--{flag}={value}: use " +
                         (f"{low} or more" if high is None else f"{low} to {high}"))
    return value


def yaml_text(data) -> str:
    """``data`` (dicts, lists, str, int, bool) as block YAML; every string double-quoted."""
    return "\n".join(_yaml_lines(data, 0)) + "\n"


def _yaml_lines(value, indent: int):
    pad = " " * indent
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                yield f"{pad}{_yaml_key(key)}:"
                yield from _yaml_lines(item, indent + 2)
            else:
                yield f"{pad}{_yaml_key(key)}: {yaml_scalar(item)}"
        return
    for item in value:  # a list: "- " takes the place of the item's first indent
        if isinstance(item, (dict, list)) and item:
            first, *rest = _yaml_lines(item, indent + 2)
            yield f"{pad}- {first[indent + 2:]}"
            yield from rest
        else:
            yield f"{pad}- {yaml_scalar(item)}"


def _yaml_key(key: str) -> str:
    plain = re.fullmatch(r"[A-Za-z][A-Za-z0-9._/-]*", key) and key.lower() not in (
        "y", "n", "yes", "no", "on", "off", "true", "false", "null")
    return key if plain else yaml_scalar(key)


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def yaml_scalar(value) -> str:
    """One YAML scalar: an int, a bool, or a string double-quoted with everything outside
    printable ASCII escaped (so no line break, document marker or key can come out of it)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (dict, list)):
        return "{}" if isinstance(value, dict) else "[]"
    if not isinstance(value, str):
        raise TypeError(f"no YAML scalar for {type(value).__name__}")
    chars = [_ESCAPES.get(c) or (c if " " <= c <= "~" else
                                 f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}")
             for c in value]
    return '"' + "".join(chars) + '"'
