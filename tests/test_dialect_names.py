"""Differences between systems live in the dialect tables: no module outside them compares a
dialect's name (``dialect == "sqlite"``, ``backend in ("postgresql", "mysql")``, or ``in`` a
module-level tuple of names). The scan reads every module of the package with :mod:`ast`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "arrowmapper"

#: the names of the systems (the spellings a URI scheme or a SQLAlchemy backend may use too)
NAMES = frozenset({"postgresql", "postgres", "sqlite", "mysql", "mssql", "oracle", "mariadb"})

#: where the differences are held, as tables: the only modules that may name a dialect freely
TABLES = frozenset({"sources/dialects.py", "targets/dialects.py", "sql/dialects.py"})

_OPS = (ast.Eq, ast.NotEq, ast.In, ast.NotIn, ast.Is, ast.IsNot)


def _names_in(node: ast.expr, named: dict[str, bool]) -> bool:
    """Whether ``node`` is a dialect name, a literal collection holding one, or a module-level
    name bound to such a collection."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str) and node.value.lower() in NAMES
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return any(_names_in(e, named) for e in node.elts)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args:
        # frozenset(("sqlite", ...)), set([...]), tuple(...)
        return node.func.id in ("frozenset", "set", "tuple") and _names_in(node.args[0], named)
    if isinstance(node, ast.Name | ast.Attribute):
        name = node.id if isinstance(node, ast.Name) else node.attr
        return named.get(name, False)
    return False


def _module_collections(tree: ast.Module) -> dict[str, bool]:
    """Module-level names bound to a literal collection of dialect names (``SNAPSHOT_SOURCES
    = ("postgresql",)``): ``x in SNAPSHOT_SOURCES`` is a comparison of names too."""
    out: dict[str, bool] = {}
    for stmt in tree.body:
        targets: list[ast.expr] = []
        value: ast.expr | None = None
        if isinstance(stmt, ast.Assign):
            targets, value = list(stmt.targets), stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            targets, value = [stmt.target], stmt.value
        if value is None or isinstance(value, ast.Constant):
            continue
        if _names_in(value, {}):
            out.update({t.id: True for t in targets if isinstance(t, ast.Name)})
    return out


def name_comparisons(
    source: str, filename: str = "<string>", imported: dict[str, bool] | None = None
) -> list[str]:
    """``file:line: code`` of every comparison of a dialect name in ``source``; ``imported``:
    collections of names other modules bind (a module may import one)."""
    tree = ast.parse(source, filename)
    named = {**(imported or {}), **_module_collections(tree)}
    found = []
    for node in ast.walk(tree):
        hit = False
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            hit = any(isinstance(op, _OPS) for op in node.ops) and any(
                _names_in(side, named) for side in sides
            )
        elif isinstance(node, ast.MatchValue):
            hit = _names_in(node.value, named)
        if hit:
            line = source.splitlines()[node.lineno - 1].strip()  # type: ignore[attr-defined]
            found.append(f"{filename}:{node.lineno}: {line}")  # type: ignore[attr-defined]
    return found


def _modules() -> list[Path]:
    return sorted(
        p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).as_posix() not in TABLES
    )


@pytest.mark.parametrize(
    "code",
    [
        'if dialect == "sqlite": pass',
        'ok = "postgresql" != ep.dialect',
        'ok = backend in ("postgresql", "mysql")',
        'ok = d not in ["oracle"]',
        'SNAP = ("postgresql",)\nok = src.dialect not in SNAP',
        'ok = x.dialect in frozenset({"mssql"})',
        'match d:\n    case "mariadb":\n        pass',
    ],
)
def test_the_scan_finds_a_comparison_of_names(code: str) -> None:
    assert len(name_comparisons(code)) == 1


@pytest.mark.parametrize(
    "code",
    [
        'TABLE = {"postgresql": 1, "sqlite": 2}\nrow = TABLE[d]',
        'quote_ident(name, "postgresql")',
        'if kind == "rowid": pass',
        "if source_dialect(d).snapshots: pass",
    ],
)
def test_the_scan_lets_tables_and_lookups_pass(code: str) -> None:
    assert name_comparisons(code) == []


def test_the_scan_follows_a_collection_another_module_binds() -> None:
    found = name_comparisons("ok = d in SNAP", imported={"SNAP": True})
    assert found == ["<string>:1: ok = d in SNAP"]


def test_the_tables_are_where_they_are_said_to_be() -> None:
    for table in TABLES:
        assert (PACKAGE / table).is_file(), table


def test_no_module_compares_a_dialect_name() -> None:
    shared: dict[str, bool] = {}
    for path in _modules():
        shared.update(_module_collections(ast.parse(path.read_text())))
    found = []
    for path in _modules():
        rel = path.relative_to(PACKAGE).as_posix()
        found += name_comparisons(path.read_text(), rel, shared)
    assert found == [], "dialect names compared outside the tables:\n" + "\n".join(found)
