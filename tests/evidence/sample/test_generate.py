"""The sample production generator: determinism, truth consistency, hostile files, canaries.

The truth is checked against the files by reading them back with independent parsers (email,
mailbox, csv, openpyxl, zipfile/pyzipper): every event source must exist and show the event's
instant and participants.
"""

from __future__ import annotations

import csv
import email
import email.policy
import hashlib
import io
import json
import mailbox
import re
import struct
import tarfile
import zipfile
from datetime import UTC, datetime
from email.utils import parseaddr, parsedate_to_datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import openpyxl
import phonenumbers
import py7zr
import pypdfium2 as pdfium
import pytest
import pyzipper
from PIL import Image

from chrono.core.errors import ConfigError
from chrono.evidence.sample import generate_production, plan_production
from chrono.evidence.sample.scans import PAGE_SIZE, ScanPage, layout, render

E164 = re.compile(r"^\+[1-9]\d{7,14}$")


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("small")
    summary = generate_production(out, size="small", seed=7)
    assert summary.production_dir == out / "production"
    return out, json.loads((out / "truth.json").read_text(encoding="utf-8"))


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_same_seed_gives_byte_identical_output(small, tmp_path):
    out, _ = small
    calls: list[tuple[int, int]] = []
    generate_production(tmp_path, size="small", seed=7, progress=lambda d, n: calls.append((d, n)))
    assert _hashes(tmp_path) == _hashes(out)
    assert calls and calls[-1][0] == calls[-1][1] == len(_files(tmp_path / "production"))


def test_other_seed_gives_other_output(small, tmp_path):
    out, _ = small
    generate_production(tmp_path, size="small", seed=8)
    assert _hashes(tmp_path)["truth.json"] != _hashes(out)["truth.json"]


def test_refuses_a_non_empty_production_folder(small):
    out, _ = small
    with pytest.raises(ConfigError, match="not empty"):
        generate_production(out, size="small", seed=7)


def test_layout_and_counts_match_truth(small):
    out, truth = small
    assert sorted(p.name for p in out.iterdir()) == ["passwords.txt", "production", "truth.json"]
    files = _files(out / "production")
    assert truth["files"] == len(files)
    assert 80 <= len(files) <= 200
    assert (out / "production" / "VOL001" / "DATA" / "VOL001.dat").is_file()
    ids = [e["id"] for e in truth["events"]]
    assert len(ids) == len(set(ids))
    assert all(e["sources"] for e in truth["events"])
    types = {e["type"] for e in truth["events"]}
    assert types == {"email", "call", "message"}
    multi = {e["id"] for e in truth["events"] if len(e["sources"]) > 1}
    assert {d["event"] for d in truth["duplicates"]} == multi
    scanned = sum(d["pages"] for d in truth["documents"] if d.get("scanned"))
    assert 10 <= scanned <= 16
    assert truth["default_timezone"] == "UTC"
    for start in (e["start"] for e in truth["events"]):
        assert re.fullmatch(r"2025-\d\d-\d\dT\d\d:\d\d:\d\dZ", start)


def test_participants_are_normalised(small):
    _, truth = small
    person_ids = {p["id"] for p in truth["persons"]}
    for event in truth["events"]:
        roles = {p["role"] for p in event["participants"]}
        if event["type"] == "email":
            assert "from" in roles and "to" in roles
            assert len([p for p in event["participants"] if p["role"] in ("to", "cc")]) <= 4
        elif event["type"] == "call":
            assert roles == {"caller", "callee"}
        else:
            assert roles == {"sender", "recipient"}
        for p in event["participants"]:
            if p["kind"] == "email":
                assert p["value"] == p["value"].lower() and "@" in p["value"]
            else:
                assert p["kind"] == "phone" and E164.match(p["value"])
                parsed = phonenumbers.parse(p["value"])
                assert phonenumbers.format_number(
                    parsed, phonenumbers.PhoneNumberFormat.E164) == p["value"]
            assert p["person"] is None or p["person"] in person_ids
    for person in truth["persons"]:
        assert all(E164.match(n) for n in person["phones"])
        assert all(e == e.lower() for e in person["emails"])
    assert {d["owner"] for d in truth["devices"]} <= person_ids


def _utc(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _addresses(msg: email.message.Message) -> tuple[str, set[str]]:
    sender = parseaddr(str(msg["From"]))[1].lower()
    others = set()
    for header in ("To", "Cc", "Bcc"):
        for part in str(msg.get(header, "")).split(","):
            if part.strip():
                others.add(parseaddr(part)[1].lower())
    return sender, others


def _check_email(msg: email.message.Message, event: dict[str, Any]) -> None:
    assert parsedate_to_datetime(str(msg["Date"])).astimezone(UTC) == _utc(event["start"])
    sender, others = _addresses(msg)
    values: dict[str, set[str]] = {}
    for p in event["participants"]:
        values.setdefault(p["role"], set()).add(p["value"])
    assert values["from"] == {sender}
    assert values.get("to", set()) | values.get("cc", set()) | values.get("bcc", set()) == others


def _open_nested(out: Path, source: str, passwords: list[str]) -> tuple[bytes, list[str]]:
    """Bytes of the innermost file a source names (through archives and attachments), plus the
    locators that remain (row/page/msg/bates)."""
    path, *locators = source.split("#")
    data = (out / path).read_bytes()
    rest = []
    for loc in locators:
        kind, _, name = loc.partition(":")
        if kind == "entry":
            data = _archive_entry(data, path, name, passwords)
            path = name
        elif kind == "attachment":
            msg = email.message_from_bytes(data, policy=email.policy.default)
            part = next(p for p in msg.walk() if p.get_filename() == name)
            if part.get_content_type() == "message/rfc822":
                inner = part.get_payload(0)
                assert isinstance(inner, email.message.Message)
                data = inner.as_bytes()
            else:
                payload = part.get_payload(decode=True)
                assert isinstance(payload, bytes)
                data = payload
            path = name
        elif kind == "msg":
            box = mailbox.mbox(str(out / source.split("#")[0]), create=False)
            data = box.get_bytes(list(box.keys())[int(name)])
            box.close()
        else:
            rest.append(loc)
    return data, rest


def _archive_entry(data: bytes, path: str, name: str, passwords: list[str]) -> bytes:
    if path.endswith(".7z"):
        with py7zr.SevenZipFile(io.BytesIO(data)) as archive:
            return archive.read([name])[name].read()
    if path.endswith(".tgz"):
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            member = tar.extractfile(name)
            assert member is not None
            return member.read()
    with pyzipper.AESZipFile(io.BytesIO(data)) as zf:
        info = zf.getinfo(name)
        if info.flag_bits & 0x1:
            for password in passwords:
                zf.setpassword(password.encode())
                try:
                    return zf.read(name)
                except RuntimeError:
                    continue
            raise AssertionError(f"no listed password opens {path}")
        return zf.read(name)


def _sheet_rows(path: str, data: bytes) -> list[list[str]]:
    if path.endswith(".xlsx"):
        sheet = openpyxl.load_workbook(io.BytesIO(data), read_only=True).worksheets[0]
        return [["" if v is None else str(v) for v in row] for row in sheet.iter_rows(
            values_only=True)]
    return list(csv.reader(io.StringIO(data.decode("utf-8"))))


def _as_e164(text: str) -> str:
    return phonenumbers.format_number(phonenumbers.parse(text, "US"),
                                      phonenumbers.PhoneNumberFormat.E164)


def _dat_rows(data: bytes) -> dict[str, dict[str, str]]:
    lines = data.decode("utf-8-sig").split("\r\n")
    header = [f.strip("\u00fe") for f in lines[0].split("\u0014")]
    rows = {}
    for line in lines[1:]:
        if line:
            row = dict(zip(header, (f.strip("\u00fe") for f in line.split("\u0014")),
                           strict=True))
            rows[row["BEGBATES"]] = row
    return rows


def test_every_source_exists_and_shows_its_event(small):
    out, truth = small
    passwords = (out / "passwords.txt").read_text(encoding="utf-8").split()
    checked = {"email": 0, "row": 0, "bates": 0, "page": 0}
    # A skewed phone export shows its call SKEW seconds off the truth (the CDR's) time.
    skewed = {t["sources"][1]: t["skew_s"] for t in truth["traps"]["clock_skew"]}
    for event in truth["events"]:
        start = _utc(event["start"])
        phones = {p["value"] for p in event["participants"] if p["kind"] == "phone"}
        for source in event["sources"]:
            assert (out / source.split("#")[0]).is_file(), source
            data, rest = _open_nested(out, source, passwords)
            if not rest and event["type"] == "email" and not source.endswith(
                    (".jpg", ".pdf")):
                _check_email(email.message_from_bytes(data, policy=email.policy.default), event)
                checked["email"] += 1
            for loc in rest:
                kind, _, value = loc.partition(":")
                if kind == "row":
                    row = _sheet_rows(source.split("#")[0], data)[int(value) - 1]
                    if "Time Zone" in _sheet_rows(source.split("#")[0], data)[3]:
                        local = datetime.strptime(f"{row[0]} {row[1]}", "%m/%d/%Y %I:%M:%S %p")
                        seen = local.replace(tzinfo=ZoneInfo(row[2])).astimezone(UTC)
                        assert _as_e164(row[4]) in phones
                    else:
                        seen = datetime.strptime(row[0], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
                        assert {_as_e164(row[1]), _as_e164(row[2])} == phones
                    assert (seen - start).total_seconds() == skewed.get(source, 0), source
                    checked["row"] += 1
                elif kind == "bates":
                    dat = _dat_rows(data)[value]
                    local = datetime.strptime(f"{dat['DATESENT']} {dat['TIMESENT']}",
                                              "%m/%d/%Y %H:%M:%S")
                    zone = UTC if dat["TIMEZONE"] == "UTC" else datetime.strptime(
                        dat["TIMEZONE"].replace(":", ""), "%z").tzinfo
                    assert local.replace(tzinfo=zone) == start
                    checked["bates"] += 1
                elif kind == "page" and source.split("#")[0].endswith(".pdf"):
                    pdf = pdfium.PdfDocument(data)
                    assert int(value) <= len(pdf)
                    text = pdf[int(value) - 1].get_textpage().get_text_range()
                    if text.strip():  # born-digital printed email: header shows UTC minutes
                        hour = start.strftime("%I:%M %p").lstrip("0")
                        assert f"{start.day}, 2025 {hour}" in text
                    checked["page"] += 1
    assert all(count > 0 for count in checked.values()), checked


def test_documents_and_hostile_files_exist(small):
    out, truth = small
    for doc in truth["documents"]:
        assert (out / doc["path"].split("#")[0]).is_file(), doc["path"]
        for image in doc.get("images", []):
            assert (out / image).is_file()
    hostile = {Path(h["path"]).name: h for h in truth["hostile"]}
    assert len(hostile) == 9
    assert hostile["shared-files.zip"]["expected"] == "processed"
    assert hostile["shared-files.zip"]["refused_entries"] == 1
    assert all(h["expected"] == "failed" for n, h in hostile.items() if n != "shared-files.zip")
    base = out / Path(hostile["empty.txt"]["path"])
    assert base.stat().st_size == 0
    bomb = (out / hostile["diagram.png"]["path"]).read_bytes()
    assert len(bomb) < 10_000 and struct.unpack(">II", bomb[16:24]) == (50_000, 50_000)
    big = (out / hostile["export-dump.csv"]["path"]).stat().st_size
    assert 2 * 1024 * 1024 <= big < 3 * 1024 * 1024
    with zipfile.ZipFile(out / hostile["shared-files.zip"]["path"]) as zf:
        assert "../../evil.txt" in zf.namelist()
    with pytest.raises(UnicodeDecodeError):
        (out / hostile["calls-broken.csv"]["path"]).read_bytes().decode("utf-8")
    xlsx = zipfile.ZipFile(out / hostile["rates.xlsx"]["path"])
    assert b"<!DOCTYPE" in xlsx.read("xl/worksheets/sheet1.xml")
    passwords = (out / "passwords.txt").read_text(encoding="utf-8").split()
    with pyzipper.AESZipFile(out / hostile["vault.zip"]["path"]) as zf:
        name = zf.namelist()[0]
        for password in passwords:
            zf.setpassword(password.encode())
            with pytest.raises(RuntimeError):
                zf.read(name)
    truncated = (out / hostile["final-report.pdf"]["path"]).read_bytes()
    assert truncated.startswith(b"%PDF") and b"%%EOF" not in truncated


def test_scanned_pages_are_300dpi_images(small):
    out, truth = small
    scans = [d for d in truth["documents"] if d.get("scanned") and d["type"] in ("tiff", "jpeg")]
    assert {d["type"] for d in scans} == {"tiff", "jpeg"}
    for doc in scans:
        with Image.open(out / doc["path"]) as image:
            assert image.size == PAGE_SIZE
            assert round(image.info["dpi"][0]) == 300
            assert getattr(image, "n_frames", 1) == doc["pages"]
    pdfs = [d for d in truth["documents"] if d.get("scanned") and d["type"] == "pdf"]
    for doc in pdfs:
        pdf = pdfium.PdfDocument(out / doc["path"])
        assert len(pdf) == doc["pages"]
        assert not pdf[0].get_textpage().get_text_range().strip()  # image only
    assert sum(sum(d["redactions"]) for d in scans + pdfs) > 0


def test_redaction_boxes_cover_only_body_words():
    lines, header_count = layout(["From: A <a@example.com>", "Subject: Budget"],
                                 "Please review the revised figures today")
    body_line = header_count + 1
    page = ScanPage("test-page", lines, header_count, 0.0, [(body_line, 1)])
    pixels = np.asarray(render(page).convert("L"))

    def longest_dark_run(y: int) -> int:
        best = run = 0
        for value in pixels[y, 200:1400:2]:
            run = run + 1 if value < 60 else 0
            best = max(best, run)
        return best

    # A box over "review" is a solid run of ~150 px; glyph strokes are far shorter.
    dark_rows = [y for y in range(0, 1200, 4) if longest_dark_run(y) > 50]
    assert dark_rows, "expected a solid black box"
    first_body_y = 250 + body_line * 68
    assert min(dark_rows) >= first_body_y - 10


def test_canaries_appear_in_plain_files(small):
    out, truth = small
    blobs = [p.read_bytes() for p in _files(out / "production")
             if p.suffix in (".eml", ".csv", ".mbox", ".txt", ".dat")]
    assert "Zebulon Quickfire" in truth["canaries"]
    for canary in truth["canaries"]:
        assert sum(canary.encode() in blob for blob in blobs) >= 1, canary
    assert sum(b"zeb.canary@canary-mail.test" in blob for blob in blobs) >= 2


def test_archives_hold_their_listed_entries(small):
    out, truth = small
    entries = [s for e in truth["events"] for s in e["sources"] if "#entry:" in s]
    assert any(s.count("#entry:") == 2 for s in entries)  # the nested zip
    aes = [s for s in entries if "secure-export.zip" in s]
    assert len(aes) == 3
    with pyzipper.AESZipFile(out / aes[0].split("#")[0]) as zf:
        assert all(info.flag_bits & 0x1 for info in zf.infolist())
    docs = [d["path"] for d in truth["documents"]]
    assert any(".7z#entry:" in d for d in docs) and any(".tgz#entry:" in d for d in docs)


def test_medium_plan_has_2000_files_and_about_250_scanned_pages():
    plan = plan_production("medium", seed=7)
    paths = [f.path for f in plan.files]
    assert len(paths) == len(set(paths)) >= 2000
    assert plan.truth["files"] == len(paths)
    assert 200 <= plan.scanned_pages <= 300
    assert len(plan.truth["events"]) > 2000
    assert {Path(h["path"]).name for h in plan.truth["hostile"]} >= {"export-dump.csv"}
    big = next(h for h in plan.truth["hostile"] if h["path"].endswith("export-dump.csv"))
    assert big["field_bytes"] == 10 * 1024 * 1024
    custodians = [p for p in plan.truth["persons"] if p["custodian"]]
    assert len(custodians) >= 10
    assert {p["timezone"] for p in custodians} >= {"Europe/London"}


def test_plans_are_deterministic():
    first = plan_production("small", seed=3)
    second = plan_production("small", seed=3)
    assert first.truth == second.truth
    assert [f.path for f in first.files] == [f.path for f in second.files]


@pytest.mark.slow
def test_medium_generation_writes_2000_files(tmp_path):
    summary = generate_production(tmp_path, size="medium", seed=7)
    files = _files(tmp_path / "production")
    truth = json.loads((tmp_path / "truth.json").read_text(encoding="utf-8"))
    assert summary.files == truth["files"] == len(files) >= 2000
    assert 200 <= summary.scanned_pages <= 300
    dump = next(h for h in truth["hostile"] if h["path"].endswith("export-dump.csv"))
    assert (tmp_path / dump["path"]).stat().st_size > 10 * 1024 * 1024
