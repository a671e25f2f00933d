"""``chrono devices``: list devices, merge or unmerge them by hand, and show the audit log."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from chrono.cli.errors import friendly_errors
from chrono.cli.persons import (
    ByOption,
    ConfigOption,
    DbOption,
    JsonOption,
    LimitOption,
    apply_correction,
    open_engine,
    print_audit,
    print_correction,
)
from chrono.db import schema
from chrono.evidence.corrections import merge_devices, unmerge_device

app = typer.Typer(help="Devices (phone numbers, addresses, handles, IMEIs) after cleanup: list "
                  "them, correct them by hand (merge, unmerge) and see who changed what.",
                  no_args_is_help=True)


@app.command("merge")
def merge_command(
    ids: Annotated[list[str], typer.Argument(
        metavar="ID", help="Two or more device ids; the first one is kept, the others point "
        "at it (merged_into).")],
    by: ByOption,
    db: DbOption,
    config: ConfigOption = None,
) -> None:
    """Merge devices into the first one named; later runs keep them merged."""
    c = apply_correction(db, config, lambda engine, identity, region: merge_devices(
        engine, ids, by, identity, region))
    print_correction(c, f"{len(c.target_ids)} devices merged")


@app.command("unmerge")
def unmerge_command(
    device_id: Annotated[str, typer.Argument(metavar="ID", help="The device to split.")],
    by: ByOption,
    db: DbOption,
    config: ConfigOption = None,
) -> None:
    """Dissolve the manual merge a device is part of, or split it into its identifiers."""
    c = apply_correction(db, config, lambda engine, identity, region: unmerge_device(
        engine, device_id, by, identity, region))
    print_correction(c, f"device split into {len(c.identifier_groups)} groups")


@app.command("list")
def list_command(db: DbOption, limit: LimitOption = 50, json_out: JsonOption = False) -> None:
    """Devices with the most identifiers first: id, kind, value, merged_into, person count."""
    d, pd = schema.devices, schema.person_devices
    with friendly_errors():
        engine = open_engine(db)
        persons = (select(pd.c.device_id, func.count().label("n")).group_by(pd.c.device_id)
                   .subquery())
        q = (select(d.c.device_id, d.c.kind, d.c.value, d.c.merged_into, d.c.identifier_count,
                    func.coalesce(persons.c.n, 0).label("persons"))
             .outerjoin(persons, persons.c.device_id == d.c.device_id)
             .order_by(d.c.identifier_count.desc(), d.c.device_id).limit(limit))
        with engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(q)]
        engine.dispose()
    if json_out:
        for row in rows:
            typer.echo(json.dumps(row, sort_keys=True))
        return
    table = Table(title="devices")
    for col in ("id", "kind", "value", "merged into", "identifiers", "persons"):
        table.add_column(col, no_wrap=col == "id")
    for row in rows:
        table.add_row(row["device_id"], row["kind"], row["value"], row["merged_into"] or "",
                      str(row["identifier_count"]), str(row["persons"]))
    Console().print(table)


@app.command("audit")
def audit_command(db: DbOption, json_out: JsonOption = False) -> None:
    """Every manual device correction, oldest first: when, who, what."""
    with friendly_errors():
        engine = open_engine(db)
        print_audit(engine, "device", json_out)
        engine.dispose()
