"""The code's layering: no import cycle among src/ modules (imports inside functions count too), and analysis
code imports no training code at module level."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str], top_level_only: bool = False) -> set[str]:
    """The src modules a file imports (`from src.x import y` counts src.x.y when that is a module)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name in modules}


def graph(top_level_only: bool = False) -> dict[str, set[str]]:
    files = {module_name(p): p for p in (ROOT / "src").rglob("*.py")}
    modules = set(files)
    edges = {name: imports(path, modules, top_level_only) - {name} for name, path in files.items()}
    for name in modules:  # importing a package's module runs the package's __init__ first: not an edge back
        for other in list(edges[name]):
            if name.startswith(other + "."):
                edges[name].discard(other)
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle_in_src():
    cycle = find_cycle(graph())
    assert cycle is None, " -> ".join(cycle)


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_analysis_code_imports_no_training_code_at_module_level():
    training = {
        "src.training_loop",
        "src.training",
        "src.modules",
        "src.models",
        "src.callbacks",
    }
    edges = graph(top_level_only=True)
    analysis_code = [m for m in edges if m == "src.results" or m.startswith(("src.analysis", "src.run."))]
    assert len(analysis_code) > 10
    for analysis in analysis_code:
        reachable, todo = set(), [analysis]
        while todo:
            for nxt in edges[todo.pop()] - reachable:
                reachable.add(nxt)
                todo.append(nxt)
        found = {m for m in reachable if any(m == t or m.startswith(t + ".") for t in training)}
        assert not found, f"{analysis} imports {found}"
