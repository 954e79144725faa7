"""The package's layout, read from its source: no import circle anywhere (function-level and
``TYPE_CHECKING`` imports count), and no function longer than 60 lines of code (its docstring
aside) but the declarative tables (the command line's parser)."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "pyrovae"
#: the longest a function may be, in lines of code (its docstring is documentation)
MAX_FUNCTION_LINES = 60
#: declarative tables, exempt from the length rule
TABLES = {"pyrovae.cli.parser.build_parser"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def import_graph() -> dict[str, set[str]]:
    """Module -> the pyrovae modules it imports anywhere in its code: ``from pkg import sub``
    is an edge to the submodule ``pkg.sub`` when there is one, else to ``pkg``."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                edges |= {alias.name for alias in node.names if alias.name in modules}
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(name, path.name == "__init__.py", node)
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    if sub in modules:
                        edges.add(sub)
                    elif target in modules:
                        edges.add(target)
        graph[name] = edges - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` as a list of nodes (first == last), or ``None``."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for succ in sorted(graph.get(node, ())):
            if state.get(succ) == 1:
                return [*stack[stack.index(succ) :], succ]
            if succ not in state and (cycle := visit(succ)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_module_of_the_package_imports_itself_through_others():
    graph = import_graph()
    assert graph["pyrovae.models.vae"] >= {"pyrovae.models.vae_base"}  # the graph is read
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def _code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """The lines of a function, decorators and docstring aside."""
    lines = (node.end_lineno or node.lineno) - node.lineno + 1
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        if isinstance(first.value.value, str):
            lines -= (first.end_lineno or first.lineno) - first.lineno + 1
    return lines


def test_functions_are_short_but_the_declarative_tables():
    long = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = _code_lines(node)
                qualified = f"{name}.{node.name}"
                if lines > MAX_FUNCTION_LINES and qualified not in TABLES:
                    long.append(f"{qualified} ({lines} lines)")
    assert not long, long
