"""``chrono persons``: list persons, merge or unmerge them by hand, and show the audit log."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from chrono.cli.errors import friendly_errors
from chrono.core.config import EvidenceConfig, IdentityConfig, load_config
from chrono.db import schema
from chrono.evidence.corrections import Correction, list_corrections, merge_persons, unmerge_person

app = typer.Typer(help="Persons found in the evidence: list them, correct them by hand "
                  "(merge, unmerge) and see who changed what.", no_args_is_help=True)

DbOption = Annotated[str, typer.Option(
    "--db", help="Database URL, e.g. sqlite:///out/chrono.db or postgresql://user@host/db.")]
ByOption = Annotated[str, typer.Option("--by", help="Who is making the change (recorded).")]
ConfigOption = Annotated[Path | None, typer.Option(
    "--config", help="chrono.yaml whose evidence settings (default_region, identity) the "
    "pipeline ran with.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON lines.")]
LimitOption = Annotated[int, typer.Option("--limit", min=1, help="How many to show.")]


def open_engine(db: str) -> Engine:
    engine = schema.make_engine(db)
    schema.ensure_schema(engine)
    return engine


def evidence_config(config: Path | None) -> EvidenceConfig:
    return load_config(config).evidence


def correction_dict(c: Correction) -> dict[str, Any]:
    return {"correction_id": c.correction_id, "at": c.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "by": c.by_user, "entity": c.entity, "action": c.action,
            "target_ids": c.target_ids, "identifier_groups": c.identifier_groups}


def print_audit(engine: Engine, entity: str, json_out: bool) -> None:
    rows = [correction_dict(c) for c in list_corrections(engine, entity)]
    if json_out:
        for row in rows:
            typer.echo(json.dumps(row, sort_keys=True))
        return
    table = Table(title=f"{entity} corrections")
    for col in ("#", "at", "by", "action", "ids", "identifiers"):
        table.add_column(col)
    for row in rows:
        table.add_row(str(row["correction_id"]), row["at"], row["by"], row["action"],
                      "\n".join(row["target_ids"]),
                      " / ".join(str(len(g)) for g in row["identifier_groups"]))
    Console().print(table)


def print_correction(c: Correction, summary: str) -> None:
    typer.echo(json.dumps(correction_dict(c), sort_keys=True))
    Console(stderr=True).print(f"[bold green]done[/] correction {c.correction_id}: {summary}")


def apply_correction(
    db: str, config: Path | None,
    correct: Callable[[Engine, IdentityConfig, str], Correction],
) -> Correction:
    """Run one manual correction (merge or unmerge, persons or devices) with the settings of
    ``config``, turning Chrono errors into readable ones."""
    with friendly_errors():
        cfg = evidence_config(config)
        engine = open_engine(db)
        try:
            return correct(engine, cfg.identity, cfg.default_region)
        finally:
            engine.dispose()
    raise AssertionError("unreachable: friendly_errors exits on an error")


@app.command("merge")
def merge_command(
    ids: Annotated[list[str], typer.Argument(
        metavar="ID", help="Two or more person ids (from `chrono persons list` or the export).")],
    by: ByOption,
    db: DbOption,
    config: ConfigOption = None,
) -> None:
    """Merge persons into one; later runs keep them together."""
    c = apply_correction(db, config, lambda engine, identity, region: merge_persons(
        engine, ids, by, identity, region))
    print_correction(c, f"{len(c.target_ids)} persons merged")


@app.command("unmerge")
def unmerge_command(
    person_id: Annotated[str, typer.Argument(metavar="ID", help="The person to split.")],
    by: ByOption,
    db: DbOption,
    config: ConfigOption = None,
) -> None:
    """Undo the manual merge that formed a person, or split it into its identifiers."""
    c = apply_correction(db, config, lambda engine, identity, region: unmerge_person(
        engine, person_id, by, identity, region))
    print_correction(c, f"person split into {len(c.identifier_groups)} groups")


@app.command("list")
def list_command(db: DbOption, limit: LimitOption = 50, json_out: JsonOption = False) -> None:
    """Persons with the most identifiers first: id, name, origin, identifier and device counts."""
    ps, pd = schema.persons, schema.person_devices
    with friendly_errors():
        engine = open_engine(db)
        devices = (select(pd.c.person_id, func.count().label("n")).group_by(pd.c.person_id)
                   .subquery())
        q = (select(ps.c.person_id, ps.c.name, ps.c.origin, ps.c.identifier_count,
                    func.coalesce(devices.c.n, 0).label("devices"))
             .outerjoin(devices, devices.c.person_id == ps.c.person_id)
             .order_by(ps.c.identifier_count.desc(), ps.c.person_id).limit(limit))
        with engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(q)]
        engine.dispose()
    if json_out:
        for row in rows:
            typer.echo(json.dumps(row, sort_keys=True))
        return
    table = Table(title="persons")
    for col in ("id", "name", "origin", "identifiers", "devices"):
        table.add_column(col, no_wrap=col == "id")
    for row in rows:
        table.add_row(row["person_id"], row["name"] or "", row["origin"],
                      str(row["identifier_count"]), str(row["devices"]))
    Console().print(table)


@app.command("audit")
def audit_command(db: DbOption, json_out: JsonOption = False) -> None:
    """Every manual person correction, oldest first: when, who, what."""
    with friendly_errors():
        engine = open_engine(db)
        print_audit(engine, "person", json_out)
        engine.dispose()
