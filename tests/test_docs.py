"""Every python, bash and sql block in README.md and docs/*.md runs, in order, against a real
PostgreSQL with a fresh, empty ``shop`` schema (renamed per test): a doc creates the data it
uses (``arrowmapper demo --sample-data``), as a reader on a fresh machine would.

A block preceded by ``<!-- no-test: reason -->`` is skipped (installing packages, say); one
preceded by ``<!-- file: name -->`` is written to that file in the working directory instead of
being run, for the blocks after it to use.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PG

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DOC_URI = "postgresql://postgres@127.0.0.1:5432/test"
RUN = ("python", "bash", "sql")
BLOCK = re.compile(
    r"(?:<!--\s*(?P<tag>no-test|file):\s*(?P<arg>[^>]*?)\s*-->\s*\n)?"
    r"^```(?P<lang>[\w-]*)\n(?P<body>.*?)^```",
    re.M | re.S,
)


def blocks(path: Path) -> list[tuple[str, str, str | None, str | None]]:
    return [(m["lang"], m["body"], m["tag"], m["arg"]) for m in BLOCK.finditer(path.read_text())]


def _run(cmd: list[str], cwd: Path, what: str) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": f"{cwd}{os.pathsep}{ROOT}",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"{what} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"


@pytest.mark.parametrize("doc", DOCS, ids=[p.name for p in DOCS])
def test_every_example_runs(doc: Path, pg: PG, tmp_path: Path) -> None:
    ran = 0
    for i, (lang, body, tag, arg) in enumerate(blocks(doc)):
        text = re.sub(r"\bshop\b", pg.schema, body).replace(DOC_URI, pg.uri)
        if tag == "file":
            (tmp_path / str(arg)).write_text(text)
            continue
        if tag == "no-test" or lang not in RUN:
            continue
        where = f"{doc.name} block {i} ({lang})"
        if lang == "python":
            script = tmp_path / f"block_{i}.py"
            script.write_text(text)
            _run([sys.executable, str(script)], tmp_path, where)
        elif lang == "bash":
            _run(["bash", "-euo", "pipefail", "-c", text], tmp_path, where)
        else:
            for statement in filter(str.strip, text.split(";")):
                pg.query(statement) if statement.lstrip().upper().startswith(
                    "SELECT"
                ) else pg.execute(statement)
        ran += 1
    if doc.name != "architecture.md" and doc.name != "benchmarks.md":
        assert ran, f"{doc.name} has no example that runs"


def test_sample_data_never_writes_over_a_users_table(pg: PG) -> None:
    from arrowmapper.cli import main

    pg.execute("CREATE TABLE orders (id int)")
    pg.execute("INSERT INTO orders VALUES (7)")
    assert main(["demo", "--sample-data", pg.uri, "--schema", pg.schema]) == 2
    assert pg.query(f"SELECT * FROM {pg.t('orders')}") == [(7,)]
    pg.execute("DROP TABLE orders")
    assert main(["demo", "--sample-data", pg.uri, "--schema", pg.schema, "--rows", "30"]) == 0
    assert pg.scalar(f"SELECT count(*) FROM {pg.t('orders')}") == 30
    assert main(["demo", "--sample-data", pg.uri, "--schema", pg.schema]) == 0  # kept
    assert pg.scalar(f"SELECT count(*) FROM {pg.t('orders')}") == 30
