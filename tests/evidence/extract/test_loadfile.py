"""Load-file extractor: generated Concordance volumes (DAT + OPT + TEXT/IMAGES/NATIVES)."""

from __future__ import annotations

import codecs
import hashlib
from pathlib import Path

import pytest

from chrono.core.config import EvidenceConfig, ExtractionLimits, SheetsConfig
from chrono.evidence.extract.base import ExtractContext, SourceFile, run_extractor
from chrono.evidence.extract.loadfile import detect_encoding, map_columns
from chrono.evidence.model import Artifact

Q = "\u00fe"  # þ
DC4 = "\x14"
PILCROW = "\u00b6"  # ¶
REG = "\u00ae"  # ®

HEADER = [
    "BEGBATES", "ENDBATES", "CUSTODIAN", "FROM", "TO", "CC", "SUBJECT", "DATESENT", "TIMESENT",
    "TIMEZONE", "DATECREATED", "MESSAGEID", "TEXTPATH", "NATIVEPATH",
]
ROWS = [
    ["ABC000001", "ABC000002", "Müller, Heinz", "", "", "", "", "", "", "", "03/04/2021", "",
     r"TEXT\0001\ABC000001.txt", ""],
    ["ABC000003", "ABC000003", "Roe, Jane", "Roe, Jane <Jane@Example.com>",
     'bob@example.com; "Doe, John" <john@example.com>', "Müller, Heinz", f"Quarterly{REG}numbers",
     "03/04/2021", "10:15 AM", "-0500", "", "<m1@example.com>", r"TEXT\0001\ABC000003.txt",
     r"NATIVES\0001\ABC000003.eml"],
    ["ABC000004", "ABC000004", "Roe, Jane", "bob@example.com", "jane@example.com", "", "Re: hi",
     "2021-03-05", "08:00:00", "America/New_York", "", "", r"..\..\..\etc\passwd", ""],
]
OPT = (
    "ABC000001,VOL001,IMAGES\\0001\\ABC000001.tif,Y,,,2\r\n"
    "ABC000002,VOL001,IMAGES\\0001\\ABC000002.tif,,,,\r\n"
    "ABC000003,VOL001,IMAGES\\0001\\ABC000003.tif,Y,,,1\r\n"
    "ABC000004,VOL001,IMAGES\\0001\\ABC000004.tif,Y,,,1\r\n"
)


def dat_text(header: list[str], rows: list[list[str]], sep: str = DC4) -> str:
    return "".join(sep.join(f"{Q}{v}{Q}" for v in row) + "\r\n" for row in [header, *rows])


def make_volume(root: Path, dat: str, encoding: str = "utf-8-sig") -> Path:
    vol = root / "VOL001"
    for folder in ("DATA", "TEXT/0001", "IMAGES/0001", "NATIVES/0001"):
        (vol / folder).mkdir(parents=True, exist_ok=True)
    (vol / "TEXT/0001/ABC000001.txt").write_text("Contract text\r\nline two", encoding="utf-8")
    (vol / "TEXT/0001/ABC000003.txt").write_bytes("Grüße vom Team".encode("cp1252"))
    for key in ("ABC000001", "ABC000002", "ABC000003"):  # ABC000004's image is missing
        (vol / f"IMAGES/0001/{key}.tif").write_bytes(b"II*\x00" + key.encode())
    (vol / "NATIVES/0001/ABC000003.eml").write_bytes(b"From: a@example.com\n\nhi\n")
    (vol / "DATA/VOL001.opt").write_text(OPT, encoding="ascii")
    path = vol / "DATA/VOL001.dat"
    if encoding == "utf-16-le":
        path.write_bytes(codecs.BOM_UTF16_LE + dat.encode("utf-16-le"))
    else:
        path.write_bytes(dat.encode(encoding))
    return path


def extract(path: Path, kind: str, out: Path, config: EvidenceConfig | None = None) -> Artifact:
    data = path.read_bytes()
    source = SourceFile(
        path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data), kind=kind,
        name=path.name,
    )
    ctx = ExtractContext(config=config or EvidenceConfig(), artifact_dir=out / "artifact")
    return run_extractor(source, ctx)


@pytest.mark.parametrize(
    ("encoding", "sep"),
    [("utf-8-sig", DC4), ("utf-16-le", DC4), ("cp1252", PILCROW)],
)
def test_volume_rows(tmp_path: Path, encoding: str, sep: str) -> None:
    dat = make_volume(tmp_path, dat_text(HEADER, ROWS, sep), encoding)
    artifact = extract(dat, "dat", tmp_path)
    assert artifact.status == "processed", artifact.detail
    doc, mail, reply = artifact.records
    vol = (tmp_path / "VOL001").resolve()

    assert (doc.type, doc.locator, doc.row, doc.bates) == ("document", "row:1", 1, "ABC000001")
    assert doc.start == "2021-03-04T00:00:00" and doc.timezone is None
    assert doc.body == "Contract text\r\nline two"
    assert doc.participants == []
    assert doc.attributes["custodian"] == "Müller, Heinz"
    assert doc.attributes["image_paths"] == [
        "IMAGES/0001/ABC000001.tif", "IMAGES/0001/ABC000002.tif",
    ]
    assert doc.attributes["page_count"] == 2
    assert doc.attributes["endbates"] == "ABC000002"

    assert (mail.type, mail.bates, mail.row) == ("email", "ABC000003", 2)
    assert [(p.role, p.kind, p.value, p.name) for p in mail.participants] == [
        ("from", "email", "jane@example.com", "Roe, Jane"),
        ("to", "email", "bob@example.com", None),
        ("to", "email", "john@example.com", "Doe, John"),
        ("cc", "name", "Müller, Heinz", None),
    ]
    assert mail.subject == "Quarterly\nnumbers"
    assert mail.start == "2021-03-04T10:15:00-05:00" and mail.timezone is None
    assert mail.message_id == "<m1@example.com>"
    assert mail.body == "Grüße vom Team"
    assert mail.attributes["native_path"] == "NATIVES/0001/ABC000003.eml"
    assert mail.attributes["text_path"] == "TEXT/0001/ABC000003.txt"

    assert reply.type == "email"
    assert reply.start == "2021-03-05T08:00:00" and reply.timezone == "America/New_York"
    assert reply.body is None  # ..\..\..\etc\passwd refused

    assert artifact.metadata["member_paths"] == sorted(
        (vol / p).as_posix() for p in (
            "TEXT/0001/ABC000001.txt", "TEXT/0001/ABC000003.txt", "IMAGES/0001/ABC000001.tif",
            "IMAGES/0001/ABC000002.tif", "IMAGES/0001/ABC000003.tif",
        )
    )
    assert artifact.metadata["natives"] == [(vol / "NATIVES/0001/ABC000003.eml").as_posix()]
    assert sorted(artifact.warnings) == ["loadfile_missing_member", "path_outside_volume"]
    assert [p.number for p in artifact.pages] == [1, 2, 3]
    assert artifact.pages[0].text == doc.body


def test_bad_row_is_padded_and_kept(tmp_path: Path) -> None:
    rows = [ROWS[0], ["ABC000009", "ABC000009", "Short row"]]
    dat = make_volume(tmp_path, dat_text(HEADER, rows))
    artifact = extract(dat, "dat", tmp_path)
    assert [r.bates for r in artifact.records] == ["ABC000001", "ABC000009"]
    assert artifact.records[1].attributes["custodian"] == "Short row"
    assert "dat_bad_row" in artifact.warnings


def test_long_fields_and_text_files_are_truncated(tmp_path: Path) -> None:
    big = "x" * (2 * 1024 * 1024)
    dat = make_volume(tmp_path, dat_text(["BEGBATES", "EXTRACTEDTEXT"], [["ABC000001", big]]))
    artifact = extract(dat, "dat", tmp_path)
    assert artifact.status == "processed"
    assert len(artifact.records[0].body or "") == 1024 * 1024
    assert artifact.warnings == ["field_truncated"]
    assert artifact.metadata["warning_counts"] == {"field_truncated": 1}

    (tmp_path / "VOL001/TEXT/0001/ABC000001.txt").write_text("y" * 20_000)
    config = EvidenceConfig(limits=ExtractionLimits(max_field_bytes=1000))
    dat.write_bytes(dat_text(["BEGBATES", "TEXTPATH"], [["ABC000001", r"TEXT\0001\ABC000001.txt"]])
                    .encode("utf-8"))
    artifact = extract(dat, "dat", tmp_path / "small", config=config)
    assert len(artifact.records[0].body or "") == 16_000
    assert artifact.warnings == ["field_truncated"]


def test_path_spellings_case_and_volume_prefix(tmp_path: Path) -> None:
    rows = [
        ["A1", r".\TEXT\0001\ABC000001.txt"],
        ["A2", r"VOL001\TEXT\0001\ABC000001.txt"],
        ["A3", "text/0001/abc000001.TXT"],
        ["A4", r"D:\VOL001\TEXT\0001\ABC000001.txt"],
        ["A5", r"TEXT\0001\NOPE.txt"],
    ]
    dat = make_volume(tmp_path, dat_text(["BEGDOC", "TEXT_PATH"], rows))
    artifact = extract(dat, "dat", tmp_path)
    bodies = [r.body for r in artifact.records]
    assert bodies == ["Contract text\r\nline two"] * 4 + [None]
    assert artifact.warnings == ["loadfile_missing_member"]


def test_symlink_out_of_volume_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read")
    dat_content = dat_text(["BEGBATES", "TEXTPATH"], [["A1", "TEXT/link.txt"]])
    dat = make_volume(tmp_path / "in", dat_content)
    (dat.parent.parent / "TEXT/link.txt").symlink_to(secret)
    artifact = extract(dat, "dat", tmp_path)
    assert artifact.records[0].body is None
    assert artifact.warnings == ["path_outside_volume"]
    assert artifact.metadata["member_paths"] == []


def test_dayfirst_config_and_bad_values(tmp_path: Path) -> None:
    header = ["BEGBATES", "DATE_CREATED", "TIME ZONE"]
    rows = [["A1", "03/04/2021", "+05:30"], ["A2", "not a date", ""], ["A3", "03/04/2021", "Mars"]]
    dat = make_volume(tmp_path, dat_text(header, rows))
    config = EvidenceConfig(sheets=SheetsConfig(dayfirst=True))
    artifact = extract(dat, "dat", tmp_path, config=config)
    starts = [(r.start, r.timezone) for r in artifact.records]
    assert starts == [
        ("2021-04-03T00:00:00+05:30", None), (None, None), ("2021-04-03T00:00:00", None),
    ]
    assert sorted(artifact.warnings) == ["dat_bad_date", "dat_bad_timezone"]


def test_only_opt_in_folder_is_used_and_standalone_opt(tmp_path: Path) -> None:
    dat = make_volume(tmp_path, dat_text(["BEGBATES"], [["ABC000003"]]))
    opt = dat.with_name("VOL001.opt").rename(dat.with_name("IMAGES_LOAD.OPT"))
    artifact = extract(dat, "dat", tmp_path)
    assert artifact.records[0].attributes["image_paths"] == ["IMAGES/0001/ABC000003.tif"]
    assert artifact.records[0].attributes["page_count"] == 1

    standalone = extract(opt, "opt", tmp_path / "opt")
    assert standalone.status == "processed"
    assert standalone.records == []
    assert (standalone.metadata["images"], standalone.metadata["documents"]) == (4, 3)


def test_not_a_loadfile_fails(tmp_path: Path) -> None:
    path = tmp_path / "x.dat"
    path.write_bytes(b"just,some,csv\n1,2,3\n")
    assert extract(path, "dat", tmp_path).reason == "corrupt_loadfile"
    opt = tmp_path / "x.opt"
    opt.write_bytes(b"\x00\x01\x02")
    assert extract(opt, "opt", tmp_path / "o").reason == "corrupt_loadfile"


def test_detect_encoding_and_column_names() -> None:
    assert detect_encoding(codecs.BOM_UTF16_BE + "þ".encode("utf-16-be")) == "utf-16"
    assert detect_encoding("þA\x14þ".encode()) == "utf-8"
    sample = f"{Q}BEGBATES{Q}{PILCROW}{Q}CUSTODIAN{Q}\r\n{Q}A{Q}{PILCROW}{Q}Müller{Q}"
    encoding = detect_encoding(
        sample.encode("cp1252"), accept=lambda text: Q in text and PILCROW in text
    )
    assert sample.encode("cp1252").decode(encoding) == sample
    assert map_columns(["Beg Bates", "BEG_ATTACH", "Email From", "Message-ID"]) == {
        "bates": 0, "begattach": 1, "from": 2, "message_id": 3,
    }
