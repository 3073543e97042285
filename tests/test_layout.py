"""The package's shape: one public face, no import cycles, backends that depend on their base.

The ``__all__`` tests follow httpx's ``tests/test_exported_members.py``. The import graph is
read from the source (every ``import`` statement, those inside functions included; only
``if TYPE_CHECKING:`` blocks are left out, since they never run), so a cycle hidden behind a
lazy import still fails here.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import types
import typing
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import history_store

PACKAGE = Path(history_store.__file__).resolve().parent
ROOT = PACKAGE.parent

PUBLIC_NAMES = {
    "ContextBudget",
    "ContextBudgetExceededError",
    "Summarizer",
    "TokenCounter",
    "Summary",
    "window",
    "compact",
    "WindowView",
    "WindowItem",
    "Window",
    "HistoryStore",
    "HistorySession",
    "HistoryStoreError",
    "ConfigurationError",
    "DatabaseBusyError",
    "DatabaseNotFoundError",
    "DatabaseUnavailableError",
    "ImportFormatError",
    "InvalidArgumentError",
    "InvalidItemError",
    "InvalidSessionIdError",
    "ReadOnlyQueryError",
    "SchemaOutOfDateError",
    "ServerManagedStateError",
    "SessionNotFoundError",
    "StoreClosedError",
    "SessionExistsError",
    "CopyConflictError",
    "CopyVerificationError",
    "ImportConflictError",
    "OutputExistsError",
    "DatabasePermissionError",
    "StorageFullError",
    "UnsafeRoleError",
    "QueryTimeoutError",
    "Runner",
    "default_store",
    "session_used",
    "install",
    "uninstall",
    "installed",
    "strict_model",
    "StrictModel",
    "StrictModelProvider",
    "is_chat_completions",
    "declare_chat_completions",
    "conversation",
    "sessions",
    "show",
    "search",
    "sql",
    "stats",
    "turns",
    "export",
    "import_",
    "delete",
    "prune",
    "meta",
    "chat",
    "migrate_from_sdk",
    "export_to_sdk",
    "copy_database",
    "SessionPage",
    "SessionInfo",
    "ItemRow",
    "TurnInfo",
    "SearchHit",
    "QueryResult",
    "Stats",
    "TransferSummary",
    "PruneResult",
    "ChatSummary",
    "SdkImportReport",
    "SdkSessionReport",
    "SdkExportReport",
    "CopyReport",
    "__version__",
}


def test_all_is_the_set_of_public_names() -> None:
    assert set(history_store.__all__) == PUBLIC_NAMES
    assert len(history_store.__all__) == len(PUBLIC_NAMES)  # no name listed twice
    defined = {
        name
        for name, value in vars(history_store).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert defined == PUBLIC_NAMES - {"__version__"}


def test_every_public_name_reports_the_package_as_its_module() -> None:
    for name in history_store.__all__:
        if name.startswith("__"):
            continue
        assert getattr(history_store, name).__module__ == "history_store", name


def _dataclasses_in(annotation: Any) -> Iterator[type]:
    """Every dataclass a value of type ``annotation`` can be or hold, fields included."""
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        yield annotation
        for hint in typing.get_type_hints(annotation).values():
            yield from _dataclasses_in(hint)
    for argument in typing.get_args(annotation):
        yield from _dataclasses_in(argument)


def test_every_type_a_public_function_returns_is_public() -> None:
    """A typed caller can name what it gets back: ``history_store.SessionPage``, ..."""
    returned = {
        kind
        for name in history_store.__all__
        if inspect.isfunction(function := getattr(history_store, name))
        for kind in _dataclasses_in(typing.get_type_hints(function).get("return"))
    }
    assert {kind.__name__ for kind in returned} >= {"SessionPage", "SessionInfo", "CopyReport"}
    for kind in returned:
        assert getattr(history_store, kind.__name__, None) is kind, kind.__name__
    # Their annotations still resolve once __module__ names the package.
    assert typing.get_type_hints(history_store.Stats)["first_activity"] == datetime | None


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {
    _module_name(path): path
    for path in PACKAGE.rglob("*.py")
    if "_migrations" not in path.parts and path.name != "__main__.py"
}


def _is_type_checking_block(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    stack = [tree]
    while stack:
        node = stack.pop()
        if _is_type_checking_block(node):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _imported_modules(module: str) -> set[str]:
    """The package's modules that ``module`` imports (a name imported from a package counts
    as that submodule when there is one, else as the package's ``__init__``)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in MODULES)
            continue
        if node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        if source not in MODULES:
            continue
        for alias in node.names:
            submodule = f"{source}.{alias.name}"
            found.add(submodule if submodule in MODULES else source)
    found.discard(module)
    return found


GRAPH = {module: _imported_modules(module) for module in MODULES}


def _cycles() -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(GRAPH[module]):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    return groups


def test_the_import_graph_is_read_from_the_source() -> None:
    snippet = ast.parse(
        "import a\nif TYPE_CHECKING:\n    import typing_only\ndef f():\n    from .lazy import g\n"
    )
    found = [
        node.names[0].name if isinstance(node, ast.Import) else node.module
        for node in _import_nodes(snippet)
    ]
    assert sorted(found) == ["a", "lazy"]  # lazy imports count; type-checking ones do not
    assert "history_store.session" in GRAPH["history_store.store"]
    assert "history_store.backends.base" in GRAPH["history_store.session"]


def test_no_import_cycles_lazy_imports_included() -> None:
    assert _cycles() == []


# What a backend may import from the package: its base, the SQLite backend its full-text
# index, and the package's private helpers below every layer.
_BACKEND_MAY_IMPORT = {
    "history_store.backends.base",
    "history_store.backends.sqlite_fts",
    "history_store._engine",
    "history_store._loop_resources",
    "history_store._time",
    "history_store.errors",
    "history_store.tables",
}


def test_each_backend_depends_only_on_its_base() -> None:
    for module, imported in GRAPH.items():
        if module.startswith("history_store.backends."):
            assert imported <= _BACKEND_MAY_IMPORT, (module, imported - _BACKEND_MAY_IMPORT)
    # The contract names the errors its methods raise, and imports nothing else.
    assert GRAPH["history_store.backends.base"] <= {"history_store.errors"}


def test_every_module_without_an_underscore_is_documented() -> None:
    """A module without a leading underscore holds a public name or a documented path:
    docs/architecture.md names each one."""
    architecture = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for module, path in MODULES.items():
        relative = path.relative_to(PACKAGE).as_posix()
        if any(part.startswith("_") for part in relative.split("/")[:-1]):
            continue
        if path.name.startswith("_") and path.name != "__init__.py":
            continue
        shown = relative if path.name != "__init__.py" else relative.rpartition("/")[0] + "/"
        if shown == "/":
            continue
        assert f"`{shown}`" in architecture, module
