"""Every module of the package imports in an install made from pyproject.toml's dependencies alone.

Checked statically (no venv to build): every third-party module the package imports at module
level must come from a distribution the main dependencies declare (``import regex`` with no
``regex`` there is the bug a clean install met while the test extra hid it). Imports inside a
function may name an optional distribution, which must then be one the extras declare or one of
the few the code names as optional (with its own error message when missing).
"""

import ast
import functools
import importlib.metadata
import pathlib
import re
import sys

import pytest
from packaging.requirements import Requirement

REPO = pathlib.Path(__file__).resolve().parents[1]
FIRST_PARTY = ("lm", "objectives", "data", "launch")
# Imported only where a user chose them (a guarded import, a one-line error without it), and not
# installed by the test extra: module -> the extra that declares its distribution.
OPTIONAL = {"wandb": "wandb",  # launch/train/writers.py (--config.train.writers=…,wandb)
            "lm_eval": "lm-eval"}  # launch/comparison/lm_eval_adapter.py


def _project() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _names(requirements: list[str]) -> set[str]:
    """The distributions of the requirements that apply on this machine (markers evaluated)."""
    out = set()
    for text in requirements:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            out.add(_normal(req.name))
    return out


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imports(path: pathlib.Path) -> tuple[set[str], set[str]]:
    """(top-level names imported at module level, those imported inside a function)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    in_function = {id(n) for f in ast.walk(tree)
                   if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in ast.walk(f)}
    module, local = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top not in sys.stdlib_module_names and top not in (*FIRST_PARTY, "__future__"):
                (local if id(node) in in_function else module).add(top)
    return module, local


def _modules() -> list[pathlib.Path]:
    return sorted(p for pkg in FIRST_PARTY for p in (REPO / pkg).rglob("*.py"))


@functools.cache
def _distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def _providers(top: str) -> set[str]:
    """The installed distributions that provide the top-level module ``top``."""
    return {_normal(d) for d in _distributions().get(top, [])}


def test_every_module_level_import_is_a_declared_dependency():
    declared = _names(_project()["dependencies"])
    undeclared = {}
    for path in _modules():
        for top in _imports(path)[0]:
            if not _providers(top) & declared:
                undeclared.setdefault(top, []).append(str(path.relative_to(REPO)))
    assert not undeclared, (
        f"imported at module level but not in pyproject.toml's dependencies (the distributions "
        f"providing them here: { {t: sorted(_providers(t)) for t in undeclared} }): {undeclared}")


def test_every_function_level_import_is_declared_or_named_optional():
    project = _project()
    declared = _names(project["dependencies"]) | {
        name for extra in project["optional-dependencies"].values() for name in _names(extra)}
    unknown, optional_seen = {}, set()
    for path in _modules():
        for top in _imports(path)[1]:
            optional_seen |= {top} & set(OPTIONAL)
            if top not in OPTIONAL and not _providers(top) & declared:
                unknown.setdefault(top, []).append(str(path.relative_to(REPO)))
    assert not unknown, f"imported but neither declared (dependencies, extras) nor OPTIONAL: " \
                        f"{unknown}"
    assert optional_seen == set(OPTIONAL)  # no stale entry: each is imported where it says
    extras = project["optional-dependencies"]
    for module, extra in OPTIONAL.items():  # declared, in its own extra, not installed by default
        assert _normal(module) in _names(extras.get(extra, [])), f"{module}: not in {extra!r}"
        assert _normal(module) not in _names(project["dependencies"])


def test_the_check_sees_a_missing_dependency(tmp_path):
    """The scan would have caught the regex bug: an import no declared distribution provides."""
    module = tmp_path / "m.py"
    module.write_text("import numpy\nimport regex\n\ndef f():\n    import torch\n")
    assert _imports(module) == ({"numpy", "regex"}, {"torch"})
    declared = _names([r for r in _project()["dependencies"] if not r.startswith("regex")])
    assert _providers("numpy") & declared and not _providers("regex") & declared


def test_markers_pick_the_tensorflow_wheel_of_this_platform():
    names = _names(_project()["dependencies"])
    assert len({"tensorflow", "tensorflow-cpu"} & names) == 1
