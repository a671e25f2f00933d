"""Sheets extractor against real bandicoot call/text logs (computationalprivacy/bandicoot), and
against the phone files of the project's own sample production (checked with its truth)."""

from __future__ import annotations

import csv
import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chrono.core.config import EvidenceConfig
from chrono.evidence.extract.base import ExtractContext, SourceFile, run_extractor
from chrono.evidence.model import Artifact
from chrono.evidence.sample import plan_production
from chrono.evidence.timeparse import to_utc

BANDICOOT = "cdr_bandicoot"
ROLE_OF = {
    ("call", "in"): "caller", ("call", "out"): "callee",
    ("text", "in"): "sender", ("text", "out"): "recipient",
}


def extract(path: Path, out: Path, kind: str = "csv") -> Artifact:
    data = path.read_bytes()
    source = SourceFile(
        path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data), kind=kind,
        name=path.name,
    )
    return run_extractor(source, ExtractContext(config=EvidenceConfig(), artifact_dir=out))


def bandicoot_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def assert_matches_rows(artifact: Artifact, rows: list[dict[str, str]]) -> None:
    assert artifact.status == "processed", artifact.reason
    assert artifact.metadata["layouts"] == ["call_log"]
    assert len(artifact.records) == len(rows)
    # The header is row 1, so data rows are numbered from 2.
    for number, (record, row) in enumerate(zip(artifact.records, rows, strict=True), start=2):
        assert (record.locator, record.row) == (f"row:{number}", number)
        assert record.type == ("call" if row["interaction"] == "call" else "message")
        assert record.direction == ("incoming" if row["direction"] == "in" else "outgoing")
        # Bandicoot logs are naive UTC; the record carries the offset explicitly.
        assert record.start == row["datetime"].replace(" ", "T") + "+00:00"
        instant, offset = to_utc(record.start)
        assert offset == 0 and instant.tzinfo is not None
        (party,) = record.participants
        assert party.role == ROLE_OF[(row["interaction"], row["direction"])]
        # Correspondent ids are opaque ("A", "ego"): handles, not phone numbers.
        assert (party.kind, party.value) == ("handle", row["correspondent_id"])
        if record.type == "call":
            assert record.duration_s == float(row["call_duration"])


def test_manual_a_every_row_is_a_record(corpus: Path, tmp_path: Path) -> None:
    path = corpus / BANDICOOT / "manual" / "A.csv"
    rows = bandicoot_rows(path)
    assert len(rows) == 7
    artifact = extract(path, tmp_path)
    assert_matches_rows(artifact, rows)
    kinds = [r.type for r in artifact.records]
    # bandicoot's own ground truth (manual/A.json): 2 calls and 5 texts.
    assert (kinds.count("call"), kinds.count("message")) == (2, 5)
    assert artifact.records[0].duration_s == 137
    assert artifact.warnings == []


@pytest.mark.parametrize("name", ["A.csv", "B.csv", "F.csv", "H.csv", "ego.csv"])
def test_network_logs_parse(corpus: Path, tmp_path: Path, name: str) -> None:
    path = corpus / BANDICOOT / "network" / name
    rows = bandicoot_rows(path)
    assert rows
    assert_matches_rows(extract(path, tmp_path), rows)


def test_orange_format_without_header_is_kept_as_text(corpus: Path, tmp_path: Path) -> None:
    # The Orange D4D layout has no header row: nothing to map, so the file stays text.
    artifact = extract(corpus / BANDICOOT / "manual" / "A_orange.csv", tmp_path)
    assert artifact.status == "processed"
    assert artifact.records == []
    assert artifact.warnings == ["sheet_layout_unknown"]
    assert "2014-08-20 20:30:37" in artifact.text


# --- the project's own sample production ---------------------------------------------------


@pytest.mark.parametrize("seed", [5, 11])
def test_sample_generator_phone_files_match_truth(tmp_path: Path, seed: int) -> None:
    """Every call and message the sample generator puts in a sheet comes back exactly."""
    plan = plan_production("small", seed)
    sources: dict[str, dict[str, dict[str, Any]]] = {}
    for event in plan.truth["events"]:
        for source in event["sources"]:
            path, _, locator = source.partition("#")
            if path.endswith((".csv", ".xlsx")):
                sources.setdefault(path, {})[locator] = event
    assert len(sources) >= 8
    # The clock-skew trap: a phone export shows its call SKEW seconds off the truth (CDR) time.
    skewed = {t["sources"][1]: t["skew_s"] for t in plan.truth["traps"]["clock_skew"]}
    phone_files = [f for f in plan.files if f.path in sources or f.path.endswith("contacts.csv")]
    checked = 0
    for planned in phone_files:
        path = tmp_path / Path(planned.path).name
        path.write_bytes(planned.build())
        kind = "xlsx" if path.suffix == ".xlsx" else "csv"
        artifact = extract(path, tmp_path / "artifacts", kind=kind)
        assert artifact.status == "processed", (planned.path, artifact.reason)
        if planned.path.endswith("contacts.csv"):
            assert artifact.metadata["layouts"] == ["contact_list"]
            assert artifact.records and all(r.type == "contact" for r in artifact.records)
            continue
        records = {r.locator.removeprefix("sheet:1:"): r for r in artifact.records}
        assert len(records) == len(sources[planned.path]), planned.path
        for locator, event in sources[planned.path].items():
            record = records[locator]
            assert record.type == event["type"]
            assert record.start is not None
            instant, _ = to_utc(record.start)
            expected = datetime.strptime(event["start"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            skew = skewed.get(f"{planned.path}#{locator}", 0)
            assert (instant - expected).total_seconds() == skew, (planned.path, locator)
            seen = sorted((p.role, _digits(p.value)) for p in record.participants)
            want = sorted((p["role"], _digits(p["value"])) for p in event["participants"])
            assert seen == want, (planned.path, locator)
            checked += 1
    assert checked >= 40


def _digits(value: str) -> str:
    """Last ten digits: enough to compare '+1 (555) 521-5554' with '+15555215554'."""
    return "".join(ch for ch in value if ch.isdigit())[-10:]
