"""The package's shape: parts as subpackages, no import cycle, small modules."""

from __future__ import annotations

import ast
from pathlib import Path

import coroscope

PACKAGE = Path(coroscope.__file__).resolve().parent
SOURCE = PACKAGE.parent
MAX_LINES = 520  # "about 500"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every coroscope module ``name`` imports, at any depth of its code (lazy imports
    included), except under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "coroscope":
                    found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                if not is_package:
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target.split(".")[0] != "coroscope":
                return
            submodules = {f"{target}.{a.name}" for a in node.names} & modules.keys()
            if len(submodules) < len(node.names):  # names defined by the module itself
                found.add(target)
            found.update(submodules)  # `from . import _x` imports the module _x
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(name)
    return {m for m in found if m in modules}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle a depth-first walk meets, each as the path that closes it."""
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            walk(node)
    return cycles


class TestLayout:
    """What a newcomer sees in src/coroscope/."""

    def test_the_parts_are_subpackages(self) -> None:
        """capture, values, delivery, sinks, diagnostics and tools are packages."""
        for part in ("capture", "values", "delivery", "sinks", "diagnostics", "tools"):
            assert (PACKAGE / part / "__init__.py").is_file(), part

    def test_no_import_cycle(self) -> None:
        """No module imports, however indirectly or lazily, one that imports it back."""
        assert _cycles(_graph()) == []

    def test_the_checker_sees_cycles(self) -> None:
        """The checker finds a planted cycle, and resolves relative and lazy imports."""
        assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
        graph = _graph()
        assert "coroscope.capture._chain" in graph["coroscope.capture._callbacks"]
        assert "coroscope._schema" in graph["coroscope.delivery._events"]
        assert "coroscope.tools._logread" in graph["coroscope.tools._report_cli"]

    def test_tools_import_only_the_schema(self) -> None:
        """The offline tools depend on nothing of the runtime but the record schema."""
        for name, imported in _graph().items():
            if name.startswith("coroscope.tools"):
                outside = {
                    m
                    for m in imported
                    if not m.startswith("coroscope.tools") and m != "coroscope._schema"
                }
                assert outside == set(), name

    def test_modules_are_small(self) -> None:
        """No module is much over 500 lines."""
        long = {
            name: n
            for name, path in _modules().items()
            if (n := len(path.read_text().splitlines())) > MAX_LINES
        }
        assert long == {}
