"""Security: nothing pretrax loads can run code. No pickle (or pickle-based loader) anywhere in
the packages, no eval/exec, numpy arrays only with allow_pickle=False; configs from a workdir
are JSON (launch/train/workdir.py)."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("lm", "objectives", "data", "launch")

# Modules whose loading runs code from the file (pickle and its relatives).
_CODE_LOADING_MODULES = {"pickle", "cPickle", "_pickle", "cloudpickle", "dill", "shelve",
                         "marshal", "joblib"}
# Builtins that run strings as code.
_CODE_RUNNING_BUILTINS = {"eval", "exec", "compile", "__import__"}
# module.function calls that unpickle (or run YAML tags).
_UNSAFE_CALLS = {("torch", "load"), ("yaml", "load"), ("yaml", "unsafe_load"),
                 ("yaml", "full_load"), ("pd", "read_pickle"), ("pandas", "read_pickle"),
                 ("np", "load"), ("numpy", "load")}


def _call_name(node: ast.Call) -> tuple[str, str] | None:
    """``("np", "load")`` for ``np.load(...)``; None for other shapes of call."""
    f = node.func
    if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
        return f.value.id, f.attr
    return None


def _allows_pickle(node: ast.Call) -> bool:
    """True unless the call passes ``allow_pickle=False`` literally."""
    for kw in node.keywords:
        if kw.arg == "allow_pickle":
            return not (isinstance(kw.value, ast.Constant) and kw.value.value is False)
    return True


def findings(source: str, filename: str = "<source>") -> list[str]:
    """Every way ``source`` could run code while loading data, as ``file:line: what``."""
    out = []
    for node in ast.walk(ast.parse(source, filename)):
        where = f"{filename}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            out += [f"{where}: import {a.name}" for a in node.names
                    if a.name.split(".")[0] in _CODE_LOADING_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in _CODE_LOADING_MODULES:
                out.append(f"{where}: from {node.module} import …")
        elif isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name) and node.func.id in _CODE_RUNNING_BUILTINS:
                out.append(f"{where}: {node.func.id}(…)")
            name = _call_name(node)
            if name in {("np", "load"), ("numpy", "load")}:
                if _allows_pickle(node):
                    out.append(f"{where}: {'.'.join(name)}(…) without allow_pickle=False")
            elif name in _UNSAFE_CALLS or (name and name[0] in _CODE_LOADING_MODULES):
                out.append(f"{where}: {'.'.join(name)}(…)")
            elif isinstance(node.func, ast.Attribute) and node.func.attr == "read_pickle":
                out.append(f"{where}: ….read_pickle(…)")
        elif isinstance(node, ast.keyword) and node.arg == "allow_pickle":
            if not (isinstance(node.value, ast.Constant) and node.value.value is False):
                out.append(f"{where}: allow_pickle={ast.unparse(node.value)}")
    return sorted(set(out))


@pytest.mark.parametrize("snippet", [
    "import pickle",
    "import cloudpickle as cp",
    "from pickle import loads",
    "import dill",
    "pickle.load(open(p, 'rb'))",
    "x = torch.load(path, map_location='cpu')",
    "np.load(path)",
    "numpy.load(path, allow_pickle=True)",
    "np.load(path, allow_pickle=flag)",
    "np.savez(p, x=1); np.load(p, mmap_mode='r', allow_pickle=True)",
    "eval(text)",
    "exec(open(path).read())",
    "code = compile(src, 'f', 'exec')",
    "yaml.load(f)",
    "cfg = yaml.full_load(f)",
    "df = pd.read_pickle(p)",
    "df = frame.read_pickle(p)",
    "__import__(name)",
    "marshal.loads(blob)",
])
def test_the_scan_catches(snippet):
    assert findings(snippet), f"the scan missed: {snippet}"


@pytest.mark.parametrize("snippet", [
    "np.load(path, allow_pickle=False)",
    "yaml.safe_load(f)",
    "pattern = re.compile('x')",
    "model.eval()",
    "state = _evaluate(fn, params)",
    "msg = 'never torch.load or pickle.load a file you did not make'",
    "json.load(f)",
    "ast.literal_eval(text)",
])
def test_the_scan_passes_safe_code(snippet):
    assert findings(snippet) == []


def test_no_package_loads_with_pickle_or_runs_strings():
    problems = []
    files = [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]
    assert len(files) > 50, "the scan must see the packages"
    for path in files:
        problems += findings(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert problems == [], "code-running loaders in the packages:\n" + "\n".join(problems)
