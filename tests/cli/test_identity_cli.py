"""`chrono persons` and `chrono devices`: merge, unmerge, list, audit, and `chrono export`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from chrono.cli.main import app
from chrono.db import schema
from chrono.evidence.devices import device_id
from tests.db.test_identity_db import (
    CANARY,
    CANARY_EMAIL,
    CANARY_PHONE,
    build_identity_db,
    person_of,
    run_identity,
)

runner = CliRunner()


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


def lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


@pytest.fixture
def db(tmp_path: Path, db_url: str) -> str:
    artifacts = build_identity_db(tmp_path, db_url)
    engine = schema.make_engine(db_url)
    run_identity(engine, artifacts)
    engine.dispose()
    return db_url


def _person(db: str, kind: str, value: str) -> str:
    engine = schema.make_engine(db)
    try:
        return person_of(engine, kind, value)
    finally:
        engine.dispose()


def test_help_texts() -> None:
    for group in ("persons", "devices"):
        result = invoke(group, "--help")
        assert result.exit_code == 0
        for command in ("merge", "unmerge", "list", "audit"):
            assert command in result.output
    merge_help = invoke("persons", "merge", "--help").output
    assert "--by" in merge_help and "--db" in merge_help


def test_persons_merge_unmerge_and_export(db: str) -> None:
    a = _person(db, "email", "chris.lee@acme.test")
    b = _person(db, "email", "clee2@acme.test")
    listed = lines(invoke("persons", "list", "--db", db, "--json").output)
    assert {a, b} <= {p["person_id"] for p in listed}

    merged = invoke("persons", "merge", a, b, "--by", "analyst", "--db", db)
    assert merged.exit_code == 0, merged.output
    correction = lines(merged.stdout)[0]
    assert correction["action"] == "merge" and correction["target_ids"] == [a, b]

    exported = lines(invoke("export", "persons", "--db", db).output)
    one = _person(db, "email", "chris.lee@acme.test")
    record = next(p for p in exported if p["id"] == one)
    assert {i["value"] for i in record["identifiers"]} == {"chris.lee@acme.test",
                                                            "clee2@acme.test"}
    assert record["origin"] == "manual" and record["merges"][0]["by"] == "analyst"
    assert record["devices"] and all("confidence" in d for d in record["devices"])

    unmerged = invoke("persons", "unmerge", one, "--by", "reviewer", "--db", db)
    assert unmerged.exit_code == 0, unmerged.output
    assert _person(db, "email", "chris.lee@acme.test") != _person(db, "email",
                                                                  "clee2@acme.test")
    audit = lines(invoke("persons", "audit", "--db", db, "--json").output)
    assert [(r["action"], r["by"]) for r in audit] == [("merge", "analyst"),
                                                       ("unmerge", "reviewer")]
    table = invoke("persons", "audit", "--db", db).output
    assert "analyst" in table and "reviewer" in table


def test_devices_merge_unmerge_and_export(db: str) -> None:
    phone, email = device_id("phone", CANARY_PHONE), device_id("email", CANARY_EMAIL)
    result = invoke("devices", "merge", phone, email, "--by", "analyst", "--db", db)
    assert result.exit_code == 0, result.output
    devices = {d["id"]: d for d in lines(invoke("export", "devices", "--db", db).output)}
    assert devices[email]["merged_into"] == phone
    assert devices[phone]["identifiers"][0]["reason"] == "possible_e164"
    listed = {d["device_id"]: d for d in lines(invoke("devices", "list", "--db", db,
                                                      "--json").output)}
    assert listed[email]["merged_into"] == phone
    assert invoke("devices", "unmerge", email, "--by", "analyst", "--db", db).exit_code == 0
    devices = {d["id"]: d for d in lines(invoke("export", "devices", "--db", db).output)}
    assert devices[email]["merged_into"] is None
    assert [r["action"] for r in lines(invoke("devices", "audit", "--db", db,
                                              "--json").output)] == ["merge", "unmerge"]
    csv_out = invoke("export", "devices", "--db", db, "--format", "csv").output
    assert csv_out.splitlines()[0].startswith("id,kind,value,merged_into,identifiers")


def test_errors_are_readable_and_carry_no_pii(db: str) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    zeb = _person(db, "phone", CANARY_PHONE)
    unknown = invoke("persons", "merge", zeb, missing, "--by", "analyst", "--db", db)
    assert unknown.exit_code == 2
    assert "person_unknown" in unknown.stderr and missing in unknown.stderr
    assert invoke("persons", "unmerge", zeb, "--by", "analyst", "--db", db).exit_code == 0
    single = _person(db, "phone", CANARY_PHONE)
    nothing = invoke("persons", "unmerge", single, "--by", "analyst", "--db", db)
    assert nothing.exit_code == 2 and "nothing_to_unmerge" in nothing.stderr
    no_user = invoke("devices", "merge", device_id("phone", CANARY_PHONE), missing, "--by", " ",
                     "--db", db)
    assert no_user.exit_code == 2 and "correction_user_missing" in no_user.stderr
    one = invoke("devices", "merge", device_id("phone", CANARY_PHONE), "--by", "a", "--db", db)
    assert one.exit_code == 2 and "merge_needs_two" in one.stderr
    for result in (unknown, nothing, no_user, one):
        for pii in (CANARY, CANARY_EMAIL, CANARY_PHONE, "Quickfire"):
            assert pii not in result.output
    assert invoke("persons", "audit", "--db", db, "--json").output.count("\n") == 1
