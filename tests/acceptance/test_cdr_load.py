"""The real bandicoot call and text logs (../shared/corpus/cdr_bandicoot) through ``chrono run``
into SQLite and PostgreSQL: calls and texts load, and running again adds no row anywhere."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from chrono.db import schema

BANDICOOT = "cdr_bandicoot"


def chrono(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "chrono.cli.main", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def table_counts(db_url: str) -> dict[str, int]:
    engine = schema.make_engine(db_url)
    try:
        with engine.connect() as conn:
            return {
                name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
                for name, table in schema.metadata.tables.items() if name != "runs"
            }
    finally:
        engine.dispose()


def expected_interactions(root: Path) -> tuple[int, int]:
    """Calls and texts in every bandicoot log of the copied folder, read with csv."""
    calls = texts = 0
    for path in sorted(root.rglob("*.csv")):
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        if not rows or "interaction" not in rows[0]:
            continue
        calls += sum(r["interaction"] == "call" for r in rows)
        texts += sum(r["interaction"] == "text" for r in rows)
    return calls, texts


def test_bandicoot_loads_and_reruns_add_nothing(corpus: Path, tmp_path: Path,
                                                db_url: str) -> None:
    source = tmp_path / "cdr"
    shutil.copytree(corpus / BANDICOOT / "network", source)
    art = tmp_path / "art"
    chrono("run", str(source), str(art), "--db", db_url, "--quiet", cwd=tmp_path)

    engine = schema.make_engine(db_url)
    e = schema.events
    with engine.connect() as conn:
        by_type = dict(conn.execute(select(e.c.type, func.count()).group_by(e.c.type)).all())
    engine.dispose()
    calls, texts = expected_interactions(source)
    # The same file may hold a row twice; events are per row, duplicates only marked.
    assert by_type.get("call") == calls and by_type.get("message") == texts

    first = table_counts(db_url)
    assert first["events"] == calls + texts and first["participants"] >= first["events"]
    chrono("run", str(source), str(art), "--db", db_url, "--quiet", cwd=tmp_path)
    chrono("run", str(source), str(art), "--db", db_url, "--quiet", "--overwrite-existing",
           cwd=tmp_path)
    assert table_counts(db_url) == first
