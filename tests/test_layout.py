"""The layout docs/DESIGN.md §1 promises: small files, no import circles, the packages' layering,
and only thin binaries at the top of launch/."""

import ast
import collections
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("lm", "objectives", "data", "launch")
MAX_LINES = 400
MAX_BINARY_LINES = 80
# launch/'s top level: the binaries, plus what they all share (start-up, flags, error lines).
NOT_BINARIES = {"__init__.py", "binary.py"}


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def _imports(path: pathlib.Path, modules: dict) -> set[str]:
    """Project modules ``path`` imports, at module level or inside functions alike."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                target = full if full in modules else node.module
                if target in modules:
                    found.add(target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in modules)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_no_file_over_the_size_limit():
    long = {str(p.relative_to(ROOT)): n for p in _modules().values()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"files over {MAX_LINES} lines (split them by responsibility): {long}"


def test_no_import_circles():
    modules = _modules()
    graph = collections.defaultdict(set)
    for name, path in modules.items():
        graph[name] = _imports(path, modules) - {name}
    assert _cycles(graph) == []


def test_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_layering():
    """lm/ and objectives/ are pure (no data/, launch/, TF, absl, optax); data/ never imports
    Flax or launch/."""
    modules = _modules()
    forbidden = {"lm": ("data", "launch", "objectives", "tensorflow", "absl", "optax"),
                 "objectives": ("data", "launch", "lm", "tensorflow", "absl", "optax"),
                 "data": ("lm", "launch", "objectives", "flax")}
    bad = []
    for name, path in modules.items():
        package = name.split(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            bad += [f"{name} imports {t}" for t in targets
                    if t.split(".")[0] in forbidden.get(package, ())]
    assert bad == []


def test_launch_top_level_holds_only_binaries():
    """Every module directly in launch/ (but binary.py) is an absl binary: it
    defines ``main`` and the console-script entry ``run``, and stays thin."""
    problems = []
    for path in sorted((ROOT / "launch").glob("*.py")):
        if path.name in NOT_BINARIES:
            continue
        tree = ast.parse(path.read_text())
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        if not {"main", "run"} <= defined:
            problems.append(f"{path.name} is not a binary (no main/run): move it into a package")
        if len(path.read_text().splitlines()) > MAX_BINARY_LINES:
            problems.append(f"{path.name} is over {MAX_BINARY_LINES} lines: move logic into its "
                            "package")
    assert problems == []
