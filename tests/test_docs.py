"""Every python, bash and sql block in README.md and docs/*.md runs, in order, against a real
PostgreSQL with a fresh ``shop`` schema (renamed per test) holding ``shop.orders``.

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
    pg.execute(
        """CREATE TABLE orders AS
           SELECT g::bigint AS order_id, (g % 97 + (g % 7) * 1000)::int AS customer_id,
                  (ARRAY['paid', 'open', 'refunded'])[g % 3 + 1] AS status,
                  (g * 1.37)::numeric(12, 2) AS net,
                  TIMESTAMPTZ '2026-01-01 00:00+00' + g * INTERVAL '7 minutes' AS created_at
           FROM generate_series(1, 20000) g"""
    )
    pg.execute("ALTER TABLE orders ADD PRIMARY KEY (order_id)")
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
