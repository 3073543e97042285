"""Find SQL built from runtime data in Python source (used by ``tests/test_security.py``).

A finding is SQL text assembled with an f-string, ``%`` or ``+`` or ``.format()`` whose
interpolated parts are not static code: anything other than module-level names (constants,
table names), attributes of them, and loop variables over literal tuples. It is reported
when the text is passed straight to an SQL entry point (``text()``, ``execute()``,
``exec_driver_sql()``, ...) or when its literal parts look like an SQL statement wherever it
is built (so building the string first and executing it later is caught too). Values must be
bound parameters instead; user-given identifiers have no place in SQL text at all.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

SQL_SINKS = frozenset(
    {
        "text",
        "sql_text",
        "literal_column",
        "execute",
        "exec_driver_sql",
        "executemany",
        "executescript",
    }
)
SQL_SHAPE = re.compile(
    r"\b(SELECT\b[\s\S]*\bFROM|INSERT\s+INTO|UPDATE\s+\S+\s+SET|DELETE\s+FROM|"
    r"(DROP|CREATE|ALTER)\s+(TABLE|VIEW|TRIGGER|INDEX|SCHEMA)|PRAGMA\s+\w|BEGIN\s+\w|"
    r"WHERE\s+\w|ORDER\s+BY|ATTACH\s|VACUUM)"
)


def _module_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
    return names


def _literal_loop_names(function: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(function):
        if (
            isinstance(node, (ast.For, ast.AsyncFor))
            and isinstance(node.target, ast.Name)
            and isinstance(node.iter, (ast.Tuple, ast.List))
            and all(isinstance(e, ast.Constant) for e in node.iter.elts)
        ):
            names.add(node.target.id)
    return names


def _local_names(function: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(function):
        if isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


class _Scanner:
    def __init__(self, tree: ast.Module, filename: str) -> None:
        self.module_names = _module_names(tree)
        self.filename = filename
        self.findings: list[str] = []

    def static(self, expression: ast.AST, local: set[str], loop: set[str]) -> bool:
        """True if ``expression`` can only be code, never runtime data."""
        for node in ast.walk(expression):
            if isinstance(node, (ast.Call, ast.Subscript, ast.Await)):
                return False
            if isinstance(node, ast.Name):
                if node.id in loop:
                    continue
                if node.id in local or node.id not in self.module_names:
                    return False
        return True

    def pieces(self, node: ast.AST) -> tuple[str, list[ast.AST]] | None:
        """Literal text and interpolated expressions of a string built from parts."""
        if isinstance(node, ast.JoinedStr):
            text = "".join(
                v.value
                for v in node.values
                if isinstance(v, ast.Constant) and isinstance(v.value, str)
            )
            return text, [v.value for v in node.values if isinstance(v, ast.FormattedValue)]
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)):
            left, right = self.pieces(node.left), self.pieces(node.right)
            parts = []
            text = ""
            for side, piece in ((node.left, left), (node.right, right)):
                if piece is not None:
                    text += piece[0]
                    parts += piece[1]
                elif isinstance(side, ast.Constant) and isinstance(side.value, str):
                    text += side.value
                else:
                    parts.append(side)
            return text, parts
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "format"
            and isinstance(node.func.value, ast.Constant)
            and isinstance(node.func.value.value, str)
        ):
            return node.func.value.value, [*node.args, *(k.value for k in node.keywords)]
        return None

    def check(self, node: ast.AST, local: set[str], loop: set[str], *, sink: bool) -> None:
        piece = self.pieces(node)
        if piece is None:
            return
        text, parts = piece
        if not (sink or SQL_SHAPE.search(text)):
            return
        for part in parts:
            if not self.static(part, local, loop):
                self.findings.append(
                    f"{self.filename}:{node.lineno}: SQL built from {ast.unparse(part)!r}"
                )

    def scan(self, scope: ast.AST, local: set[str], loop: set[str]) -> None:
        for node in ast.iter_child_nodes(scope):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                self.scan(node, local | _local_names(node), loop | _literal_loop_names(node))
                continue
            if isinstance(node, ast.Call):
                name = (
                    node.func.attr
                    if isinstance(node.func, ast.Attribute)
                    else getattr(node.func, "id", None)
                )
                if name in SQL_SINKS and node.args:
                    self.check(node.args[0], local, loop, sink=True)
            if isinstance(node, (ast.JoinedStr, ast.BinOp, ast.Call)):
                self.check(node, local, loop, sink=False)
            self.scan(node, local, loop)


def find_sql_built_from_data(source: str, filename: str = "<source>") -> list[str]:
    """Every place in ``source`` that builds SQL text from runtime data."""
    tree = ast.parse(source, filename)
    scanner = _Scanner(tree, filename)
    scanner.scan(tree, set(), set())
    return sorted(set(scanner.findings))


def scan_files(paths: Iterator[str]) -> list[str]:
    findings = []
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            findings += find_sql_built_from_data(handle.read(), path)
    return findings
