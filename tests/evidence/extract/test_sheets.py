"""Sheets extractor: carrier CDR csv, phone-export xlsx/xls, contact lists, hostile inputs."""

from __future__ import annotations

import csv
import hashlib
import random
import time
import tracemalloc
import zipfile
from datetime import datetime
from pathlib import Path

import openpyxl
import pytest
import xlwt

from chrono.core.config import EvidenceConfig, ExtractionLimits, SheetsConfig
from chrono.evidence.extract.base import (
    ExtractContext,
    SourceFile,
    load_extractors,
    run_extractor,
)
from chrono.evidence.model import Artifact, Record

OWNER = "+1 555 521 5554"
COMMON_B: list[object] = ["Date", "Time", "Time Zone", "Direction", "Number", "Contact Name"]
CALL_HEADER_B: list[object] = [*COMMON_B, "Duration"]
SMS_HEADER_B: list[object] = [*COMMON_B, "Message"]


def source_file(path: Path, kind: str) -> SourceFile:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return SourceFile(
        path=path, sha256=digest.hexdigest(), size=path.stat().st_size, kind=kind, name=path.name
    )


def extract(path: Path, kind: str, out: Path, config: EvidenceConfig | None = None) -> Artifact:
    ctx = ExtractContext(config=config or EvidenceConfig(), artifact_dir=out / "artifact")
    return run_extractor(source_file(path, kind), ctx)


def write_csv(path: Path, rows: list[list[str]], encoding: str = "utf-8", **fmt: str) -> Path:
    with path.open("w", newline="", encoding=encoding) as fh:
        csv.writer(fh, **fmt).writerows(rows)  # type: ignore[arg-type]
    return path


def roles(record: Record) -> dict[str, tuple[str, str, str | None]]:
    return {p.role: (p.kind, p.value, p.name) for p in record.participants}


def style_b_workbook(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for title, rows in sheets.items():
        sheet = workbook.create_sheet(title)
        for row in rows:
            sheet.append(row)
    workbook.save(path)
    return path


def style_b_rows(header: list[object], data: list[list[object]]) -> list[list[object]]:
    return [["Device Owner Number", OWNER], ["Owner Name", "Jane Doe"], [], header, *data]


# --- Style A: carrier CDR csv in UTC -------------------------------------------------------


def test_style_a_carrier_cdr_calls(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "cdr.csv", [
        ["Date/Time (UTC)", "Calling Number", "Called Number", "Duration (s)", "Call Type"],
        ["2025-03-03 14:05:09", "+1 (555) 521-5554", "555-201-7788", "65", "Voice"],
        ["2025-03-09 07:30:00", "555-201-7788", "+1 (555) 521-5554", "0", "Voice"],
        ["", "", "", "", ""],
        ["2025-03-10 23:59:59", "+1 (555) 521-5554", "5552017788", "3600", "Voice"],
    ])
    artifact = extract(path, "csv", tmp_path, EvidenceConfig(
        sheets=SheetsConfig(default_timezone="America/New_York")
    ))
    assert artifact.status == "processed", artifact.reason
    assert artifact.metadata["layouts"] == ["call_log"]
    assert artifact.metadata["records"] == 3
    first, second, third = artifact.records
    assert first.type == "call"
    # Rows are numbered as a spreadsheet program shows them: the header is row 1.
    assert (first.locator, first.row) == ("row:2", 2)
    # The header says UTC: it wins over the configured default zone.
    assert first.start == "2025-03-03T14:05:09+00:00"
    assert first.duration_s == 65
    assert first.direction == "unknown"  # "Voice" is the call type, not a direction
    assert roles(first) == {
        "caller": ("phone", "+1 (555) 521-5554", None),
        "callee": ("phone", "555-201-7788", None),
    }
    assert second.start == "2025-03-09T07:30:00+00:00"
    assert roles(second)["caller"][1] == "555-201-7788"
    # The blank row keeps its number: locators do not shift.
    assert (third.locator, third.duration_s) == ("row:5", 3600)
    assert "2025-03-03 14:05:09" in artifact.text
    assert artifact.warnings == []


def test_style_a_sms_export(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "sms.csv", [
        ["Date/Time (UTC)", "From", "To", "Message"],
        ["2025-03-03 14:06:00", "+1 (555) 521-5554", "555-201-7788", "Running late, 10 min"],
        ["2025-03-03 14:07:30", "555-201-7788", "+1 (555) 521-5554", "ok"],
    ])
    artifact = extract(path, "csv", tmp_path)
    assert artifact.metadata["layouts"] == ["message_export"]
    first, second = artifact.records
    assert (first.type, first.body) == ("message", "Running late, 10 min")
    assert first.start == "2025-03-03T14:06:00+00:00"
    assert roles(first) == {
        "sender": ("phone", "+1 (555) 521-5554", None),
        "recipient": ("phone", "555-201-7788", None),
    }
    assert roles(second)["sender"][1] == "555-201-7788"


# --- Style B: phone export xlsx in local time ----------------------------------------------


def test_style_b_phone_export_xlsx(tmp_path: Path) -> None:
    path = style_b_workbook(tmp_path / "export.xlsx", {
        "Calls": style_b_rows(CALL_HEADER_B, [
            ["03/03/2025", "9:05:09 AM", "America/New_York", "Incoming", "+1 555 201 7788",
             "Bob Roe", 65],
            ["03/10/2025", "9:05:09 AM", "America/New_York", "Outgoing", "+1 555 201 7788",
             "Bob Roe", 12],
            ["07/01/2025", "11:30:00 PM", "Europe/London", "Missed", "+44 20 7946 0018", "", 0],
        ]),
        "Messages": style_b_rows(SMS_HEADER_B, [
            ["03/03/2025", "9:06:00 AM", "America/New_York", "Outgoing", "+1 555 201 7788",
             "Bob Roe", "See you at 10"],
        ]),
    })
    artifact = extract(path, "xlsx", tmp_path)
    assert artifact.status == "processed", artifact.reason
    assert artifact.metadata["sheets"] == 2
    assert artifact.metadata["layouts"] == ["call_log", "message_export"]
    incoming, outgoing, missed, message = artifact.records

    # Preamble (2 rows), blank row and header come first: the first call is row 5.
    assert incoming.locator == "sheet:1:row:5"
    assert incoming.start == "2025-03-03T09:05:09-05:00"  # EST
    assert incoming.timezone == "America/New_York"
    assert incoming.direction == "incoming"
    assert roles(incoming) == {
        "caller": ("phone", "+1 555 201 7788", "Bob Roe"),
        "callee": ("phone", OWNER, "Jane Doe"),
    }
    # One week later New York is on daylight time.
    assert outgoing.start == "2025-03-10T09:05:09-04:00"
    assert roles(outgoing) == {
        "callee": ("phone", "+1 555 201 7788", "Bob Roe"),
        "caller": ("phone", OWNER, "Jane Doe"),
    }
    assert outgoing.duration_s == 12
    assert missed.start == "2025-07-01T23:30:00+01:00"  # BST
    assert missed.direction == "missed"
    assert roles(missed)["caller"] == ("phone", "+44 20 7946 0018", None)

    assert message.locator == "sheet:2:row:5"
    assert (message.type, message.body, message.page) == ("message", "See you at 10", 2)
    assert roles(message) == {
        "recipient": ("phone", "+1 555 201 7788", "Bob Roe"),
        "sender": ("phone", OWNER, "Jane Doe"),
    }
    assert [p.number for p in artifact.pages] == [1, 2]
    assert "Device Owner Number" in artifact.pages[0].text


def test_xlsx_datetime_cells_and_preamble_zone(tmp_path: Path) -> None:
    path = style_b_workbook(tmp_path / "typed.xlsx", {
        "Log": [
            ["Owner", "Jane Doe"],
            ["Time Zone", "America/Chicago"],
            ["Start Time", "Direction", "Number", "Duration"],
            [datetime(2025, 3, 3, 9, 5, 9), "Outgoing", 15555215554, 65.0],
        ],
    })
    artifact = extract(path, "xlsx", tmp_path)
    (record,) = artifact.records
    assert record.start == "2025-03-03T09:05:09-06:00"
    assert record.timezone == "America/Chicago"
    # A numeric cell is shown as the number, not as a float.
    assert roles(record) == {
        "callee": ("phone", "15555215554", None),
        "caller": ("name", "Jane Doe", None),  # owner known by name only
    }


def test_xls_written_by_xlwt(tmp_path: Path) -> None:
    book = xlwt.Workbook()
    sheet = book.add_sheet("Calls")
    rows = style_b_rows(CALL_HEADER_B, [
        ["03/03/2025", "9:05:09 AM", "America/New_York", "Incoming", "+1 555 201 7788",
         "Bob Roe", 65],
    ])
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            sheet.write(r, c, value)
    stamp = xlwt.easyxf(num_format_str="YYYY-MM-DD hh:mm:ss")
    extra = book.add_sheet("Typed")
    for c, value in enumerate(["Timestamp", "Direction", "Number", "Duration"]):
        extra.write(0, c, value)
    extra.write(1, 0, datetime(2025, 8, 1, 18, 0, 0), stamp)
    extra.write(1, 1, "Outgoing")
    extra.write(1, 2, "+1 555 201 7788")
    extra.write(1, 3, 30)
    path = tmp_path / "export.xls"
    book.save(str(path))

    artifact = extract(path, "xls", tmp_path)
    assert artifact.status == "processed", artifact.reason
    assert artifact.metadata["layouts"] == ["call_log", "call_log"]
    first, second = artifact.records
    assert first.start == "2025-03-03T09:05:09-05:00"
    assert roles(first)["callee"] == ("phone", OWNER, "Jane Doe")
    # The second sheet has no preamble: the workbook's owner carries over; default zone UTC.
    assert (second.locator, second.start) == ("sheet:2:row:2", "2025-08-01T18:00:00+00:00")
    assert roles(second)["caller"] == ("phone", OWNER, "Jane Doe")


# --- other layouts and options -------------------------------------------------------------


def test_contact_list(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "contacts.csv", [
        ["Name", "Phone", "Email"],
        ["Bob Roe", "+1 555 201 7788", "bob@example.com"],
        ["Ann Lee", "", "ann@example.org"],
        ["", "", ""],
    ])
    artifact = extract(path, "csv", tmp_path)
    assert artifact.metadata["layouts"] == ["contact_list"]
    bob, ann = artifact.records
    assert (bob.type, bob.locator, bob.start) == ("contact", "row:2", None)
    assert [(p.role, p.kind, p.value, p.name) for p in bob.participants] == [
        ("participant", "phone", "+1 555 201 7788", "Bob Roe"),
        ("participant", "email", "bob@example.com", "Bob Roe"),
    ]
    assert [(p.kind, p.value) for p in ann.participants] == [("email", "ann@example.org")]


def test_timezone_column_offsets_and_dayfirst(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "log.tsv", [
        ["Date", "Time", "TZ", "Direction", "Number", "Duration"],
        ["04/03/2025", "14:00", "UTC-5", "in", "555-201-7788", "1:05"],
        ["04/03/2025", "14:00", "+05:30", "out", "555-201-7788", "0:01:05"],
        ["2025-03-04T14:00:00+02:00", "", "UTC-5", "out", "555-201-7788", "65 s"],
        ["04/03/2025", "14:00", "Mars/Olympus", "out", "555-201-7788", "x"],
    ], delimiter="\t")
    config = EvidenceConfig(sheets=SheetsConfig(dayfirst=True, default_timezone="Europe/Paris"))
    artifact = extract(path, "csv", tmp_path, config)
    starts = [r.start for r in artifact.records]
    assert starts == [
        "2025-03-04T14:00:00-05:00",
        "2025-03-04T14:00:00+05:30",
        "2025-03-04T14:00:00+02:00",  # the offset in the cell wins
        "2025-03-04T14:00:00+01:00",  # unknown zone: the configured default (CET)
    ]
    assert [r.duration_s for r in artifact.records] == [65, 65, 65, None]
    assert "timezone_unknown" in artifact.warnings


def test_cp1252_csv_with_accented_names(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "contacts.csv", [
        ["Name", "Phone", "Email"],
        ["José Müller", "+34 600 123 456", "jose@example.com"],
        ["Françoise Lefèvre", "+33 6 12 34 56 78", "fl@example.fr"],
        ["Renée Ångström", "+46 70 123 45 67", "renee@example.se"],
    ], encoding="cp1252")
    artifact = extract(path, "csv", tmp_path)
    assert artifact.status == "processed", artifact.reason
    names = [r.participants[0].name for r in artifact.records]
    assert names == ["José Müller", "Françoise Lefèvre", "Renée Ångström"]


def test_utf16_with_bom_and_nul_bytes(tmp_path: Path) -> None:
    text = "Name,Phone\r\nBob\x00 Roe,555-201-7788\r\n"
    path = tmp_path / "contacts.csv"
    path.write_bytes(text.encode("utf-16"))
    artifact = extract(path, "csv", tmp_path)
    assert artifact.metadata["encoding"] == "utf-16"
    (record,) = artifact.records
    assert record.participants[0].name == "Bob Roe"


def test_unknown_layout_keeps_text(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "readings.csv", [
        ["Sensor", "Reading"], ["t1", "21.5"], ["t2", "22.0"],
    ])
    artifact = extract(path, "csv", tmp_path)
    assert artifact.status == "processed"
    assert artifact.records == []
    assert artifact.metadata["layouts"] == ["unknown"]
    assert artifact.warnings == ["sheet_layout_unknown"]
    assert artifact.text == "Sensor\tReading\nt1\t21.5\nt2\t22.0"


def test_unparsed_time_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "cdr.csv", [
        ["Timestamp", "From", "To", "Duration"],
        ["yesterday-ish", "555-201-7788", "555-521-5554", "5"],
    ])
    artifact = extract(path, "csv", tmp_path)
    (record,) = artifact.records
    assert record.start is None
    assert artifact.warnings == ["time_unparsed"]


# --- limits and hostile input --------------------------------------------------------------


def test_too_many_rows(tmp_path: Path) -> None:
    rows = [["Timestamp", "Number", "Duration"]] + [
        ["2025-03-03 10:00", "555-201-7788", "5"] for _ in range(10)
    ]
    path = write_csv(tmp_path / "cdr.csv", rows)
    config = EvidenceConfig(limits=ExtractionLimits(max_rows=5))
    artifact = extract(path, "csv", tmp_path, config)
    assert (artifact.status, artifact.reason) == ("failed", "limit_rows")
    xlsx = style_b_workbook(tmp_path / "cdr.xlsx", {"Calls": rows})  # type: ignore[dict-item]
    artifact = extract(xlsx, "xlsx", tmp_path, config)
    assert (artifact.status, artifact.reason) == ("failed", "limit_rows")


@pytest.mark.parametrize("field_has_newlines", [False, True])
def test_twenty_megabyte_field_fails_fast_in_bounded_memory(
    tmp_path: Path, field_has_newlines: bool
) -> None:
    chunk = b"x" * 99 + (b"\n" if field_has_newlines else b"x")
    path = tmp_path / "big.csv"
    path.write_bytes(b"Timestamp,From,To,Message\n2025-03-03,1,2,\"" + chunk * 200_000 + b'"\n')
    assert path.stat().st_size > 20_000_000
    source = source_file(path, "csv")
    ctx = ExtractContext(config=EvidenceConfig(), artifact_dir=tmp_path / "artifact")
    load_extractors()  # imports allocate too: keep them out of the measurement
    tracemalloc.start()
    started = time.perf_counter()
    try:
        artifact = run_extractor(source, ctx)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (artifact.status, artifact.reason) == ("failed", "limit_field")
    assert time.perf_counter() - started < 10
    assert peak < 16 * 1024 * 1024, peak  # the 20 MB field is never held whole


def test_undecodable_bytes_are_bad_encoding(tmp_path: Path) -> None:
    noise = random.Random(7).randbytes(20_000)
    path = tmp_path / "noise.csv"
    # A header line and \xff\xfe pairs that are not at the start, so they are no BOM.
    path.write_bytes(b"Name,Phone\n" + noise.replace(b"\n", b"\xff\xfe"))
    artifact = extract(path, "csv", tmp_path)
    assert (artifact.status, artifact.reason) == ("failed", "bad_encoding")
    assert artifact.records == [] and artifact.pages == []


def test_binary_control_characters_are_bad_encoding(tmp_path: Path) -> None:
    # Valid UTF-8 (all bytes < 0x80) but mostly control characters: binary, not text.
    path = tmp_path / "binary.csv"
    path.write_bytes(bytes(range(0, 32)) * 500)
    artifact = extract(path, "csv", tmp_path)
    assert (artifact.status, artifact.reason) == ("failed", "bad_encoding")


def _rewrite_member(path: Path, name: str, data: bytes) -> None:
    with zipfile.ZipFile(path) as source:
        members = {i.filename: source.read(i) for i in source.infolist()}
    members[name] = data
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for member, content in members.items():
            target.writestr(member, content)


def test_xxe_xlsx_is_refused_and_leaks_nothing(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-MARKER-8c1f")
    path = style_b_workbook(tmp_path / "xxe.xlsx", {
        "Calls": [["From", "To", "Duration"], ["PLACEHOLDER", "555-201-7788", 5]],
    })
    sheet = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<!DOCTYPE worksheet [<!ENTITY host SYSTEM "file:///etc/hostname">'
        f'<!ENTITY mark SYSTEM "file://{secret}">]>\n'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        '<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>From</t></is></c>'
        '<c r="B1" t="inlineStr"><is><t>To</t></is></c></row>'
        '<row r="2"><c r="A2" t="inlineStr"><is><t>&host;&mark;</t></is></c>'
        '<c r="B2" t="inlineStr"><is><t>555</t></is></c></row></sheetData></worksheet>'
    )
    _rewrite_member(path, "xl/worksheets/sheet1.xml", sheet.encode())
    artifact = extract(path, "xlsx", tmp_path)
    assert (artifact.status, artifact.reason) == ("failed", "xml_entities")
    dumped = artifact.model_dump_json()
    assert "SECRET-MARKER" not in dumped
    hostname = Path("/etc/hostname").read_text().strip() if Path("/etc/hostname").exists() else ""
    if len(hostname) >= 2:
        assert hostname not in dumped
    assert not any((tmp_path / "artifact").rglob("*"))  # nothing written either


def test_entity_in_shared_strings_is_refused(tmp_path: Path) -> None:
    path = style_b_workbook(tmp_path / "lol.xlsx", {"S": [["From", "To"], ["1", "2"]]})
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE sst [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;">]>'
        '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        "<si><t>&b;</t></si></sst>"
    )
    _rewrite_member(path, "xl/sharedStrings.xml", laughs.encode())
    artifact = extract(path, "xlsx", tmp_path)
    assert (artifact.status, artifact.reason) == ("failed", "xml_entities")


def test_utf16_doctype_in_sheet_xml_is_refused(tmp_path: Path) -> None:
    path = style_b_workbook(tmp_path / "x.xlsx", {"S": [["From", "To"], ["1", "2"]]})
    with zipfile.ZipFile(path) as archive:
        sheet = archive.read("xl/worksheets/sheet1.xml").decode()
    assert sheet.startswith("<worksheet")
    sheet = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY a "aaaa">]>' + sheet
    _rewrite_member(path, "xl/worksheets/sheet1.xml", sheet.encode("utf-16"))
    artifact = extract(path, "xlsx", tmp_path)
    assert (artifact.status, artifact.reason) == ("failed", "xml_entities")


def test_oversized_xlsx_member_is_refused(tmp_path: Path) -> None:
    rows: list[list[object]] = [["From", "To", "Duration"]]
    rows += [["555-201-7788", "555-521-5554", 5]] * 30_000
    path = style_b_workbook(tmp_path / "big.xlsx", {"Calls": rows})
    assert path.stat().st_size < 1_000_000
    config = EvidenceConfig(limits=ExtractionLimits(max_file_bytes=1_000_000))
    artifact = extract(path, "xlsx", tmp_path, config)
    assert (artifact.status, artifact.reason) == ("failed", "limit_size")


def test_not_a_workbook_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "fake.xlsx"
    path.write_bytes(b"PK\x03\x04 this is not really a zip")
    assert extract(path, "xlsx", tmp_path).reason == "corrupt"
    path = tmp_path / "fake.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600)
    assert extract(path, "xls", tmp_path).reason == "corrupt"


def test_semicolon_csv_with_preamble_bom_and_multiline_messages(tmp_path: Path) -> None:
    rows = [
        ["Device Owner Number", OWNER],
        ["Time Zone", "Europe/London"],
        [],
        ["Date", "Time", "Direction", "Number", "Contact Name", "Message"],
        ["03/03/2025", "9:05:09 AM", "Received", "+44 20 7946 0018", "Ann", "line one\nline two"],
        ["06/01/2025", "21:00", "Sent", "+44 20 7946 0018", "Ann", "summer; time"],
    ]
    path = write_csv(tmp_path / "sms.csv", rows, encoding="utf-8-sig", delimiter=";")
    artifact = extract(path, "csv", tmp_path)
    assert artifact.metadata["encoding"] == "utf-8-sig"
    assert artifact.metadata["layouts"] == ["message_export"]
    first, second = artifact.records
    assert first.body == "line one\nline two"
    assert first.start == "2025-03-03T09:05:09+00:00"  # GMT in winter
    assert roles(first) == {
        "sender": ("phone", "+44 20 7946 0018", "Ann"),
        "recipient": ("phone", OWNER, None),
    }
    assert (second.body, second.start) == ("summer; time", "2025-06-01T21:00:00+01:00")
    assert roles(second)["sender"] == ("phone", OWNER, None)


def test_type_column_holding_call_and_sms_kinds(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "mixed.csv", [
        ["Date/Time (UTC)", "From", "To", "Type"],
        ["2025-03-03 14:05:09", "555-521-5554", "555-201-7788", "Voice"],
        ["2025-03-03 14:06:09", "555-201-7788", "555-521-5554", "SMS"],
    ])
    artifact = extract(path, "csv", tmp_path)
    assert artifact.metadata["layouts"] == ["call_log"]
    assert [(r.type, r.direction) for r in artifact.records] == [
        ("call", "unknown"), ("message", "unknown"),
    ]
    assert roles(artifact.records[1])["sender"][1] == "555-201-7788"


def test_datetime_cell_in_a_date_column_keeps_its_time(tmp_path: Path) -> None:
    path = style_b_workbook(tmp_path / "d.xlsx", {
        "Calls": [["Date", "Number", "Direction", "Duration"],
                  [datetime(2025, 3, 3, 9, 5, 9), "555-201-7788", "Incoming", 5]],
    })
    (record,) = extract(path, "xlsx", tmp_path).records
    assert record.start == "2025-03-03T09:05:09+00:00"
