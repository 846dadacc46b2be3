"""The tree is the architecture: no import cycles, and the leaves import nothing of ours.

Imports are read from the source (every ``import`` statement, at module level or inside
functions, including ``TYPE_CHECKING`` blocks: each is a dependency someone has to
understand), so the test needs no import of the project and sees lazy imports too.
Importing ``a.b.c`` also runs ``a/__init__.py`` and ``a/b/__init__.py``, so those count,
except the packages the importing module itself lives in (they are already running).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("canonical", "codes", "mappings", "adapters", "gateway")
# what each folder may import of ours (the README's folder table)
ALLOWED = {
    "canonical": set(),
    "codes": set(),
    "mappings": {"canonical", "codes"},
    "adapters": {"canonical", "codes"},
    "gateway": {"canonical", "codes", "mappings", "adapters", "gateway"},
}
# deprecated aliases kept for vendors' adapters (CHANGELOG); they only re-export canonical
ALIASES = {"gateway.model", "gateway.errors"}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        # Cython sources are modules too (they import nothing of ours)
        for path in [*(ROOT / package).rglob("*.py"), *(ROOT / package).rglob("*.pyx")]:
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports, with the packages that importing them runs."""
    if path.suffix == ".pyx":
        return set()
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            submodules = {f"{module}.{alias.name}" for alias in node.names} & known
            # ``from package import submodule`` needs the submodule, not what the
            # package's __init__ defines
            targets.update(submodules or {module})
    own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    out: set[str] = set()
    for target in targets:
        parts = target.split(".")
        for i in range(1, len(parts) + 1):
            candidate = ".".join(parts[:i])
            if candidate in known and candidate != name and (
                    candidate not in own or candidate == target):
                out.add(candidate)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_project_has_no_import_cycle() -> None:
    cycles = _cycles(_graph())
    assert cycles == [], "import cycles:\n" + "\n".join(" ↔ ".join(c) for c in cycles)


def test_canonical_is_a_leaf() -> None:
    graph = _graph()
    leaves = {name: deps for name, deps in graph.items() if name.split(".")[0] == "canonical"}
    assert leaves, "canonical/ holds the model and the exception root"
    assert {name: deps for name, deps in leaves.items() if deps} == {}


def test_each_folder_imports_only_what_the_architecture_allows() -> None:
    wrong = sorted(
        f"{name} imports {dep}"
        for name, deps in _graph().items() if name not in ALIASES
        for dep in deps if dep.split(".")[0] not in ALLOWED[name.split(".")[0]]
        and dep.split(".")[0] != name.split(".")[0])
    assert wrong == []


def test_the_cycle_check_sees_a_cycle() -> None:
    # the detector itself: a graph with one cycle and one tail
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
