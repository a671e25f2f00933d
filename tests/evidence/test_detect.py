import zipfile
from pathlib import Path

import pytest
from openpyxl import Workbook

from chrono.evidence.detect import detect_kind


@pytest.mark.parametrize(
    ("rel", "kind"),
    [
        ("ocr_tesseract/phototest.tif", "tiff"),
        ("ocr_tesseract/phototest-rotated-L.png", "png"),
        ("pdf_pypdf/crazyones.pdf", "pdf"),
        ("email_mailparser/mail_test_2.eml", "eml"),
        ("email_hunnysoft_mime/m0001.txt", "eml"),
        ("archives_zip4j/strong_encrypted.zip", "zip"),
        ("archives_zipslip_snyk/zip-slip.tar", "tar"),
        ("cdr_bandicoot/manual/A.csv", "csv"),
        ("pdf_qpdf_malformed/bad1.pdf", "pdf"),
        ("email_hunnysoft_mime/files/winmail.dat", "png"),
    ],
)
def test_corpus_kinds(corpus: Path, rel: str, kind: str) -> None:
    assert detect_kind(corpus / rel) == kind


def test_kind_comes_from_content_not_name(tmp_path: Path) -> None:
    wb = Workbook()
    wb.active.append(["a", "b"])  # type: ignore[union-attr]
    wb.save(tmp_path / "calls.bin")
    assert detect_kind(tmp_path / "calls.bin") == "xlsx"
    with zipfile.ZipFile(tmp_path / "report.xlsx.txt", "w") as zf:
        zf.writestr("a.txt", "hello")
    assert detect_kind(tmp_path / "report.xlsx.txt") == "zip"
    (tmp_path / "mail").write_bytes(
        b"From: a@example.com\nTo: b@example.com\nSubject: hi\nDate: Mon, 3 Mar 2025 10:00:00 +0000"
        b"\n\nbody\n"
    )
    assert detect_kind(tmp_path / "mail") == "eml"
    (tmp_path / "box").write_bytes(b"From a@example.com Mon Mar 3 10:00:00 2025\n"
                                   b"From: a@example.com\nSubject: x\n\nbody\n")
    assert detect_kind(tmp_path / "box") == "mbox"
    (tmp_path / "load.dat").write_bytes("\ufeffþBEGBATESþ\x14þTEXTPATHþ\r\n".encode())
    assert detect_kind(tmp_path / "load.dat") == "dat"
    (tmp_path / "empty").write_bytes(b"")
    assert detect_kind(tmp_path / "empty") == "empty"
    (tmp_path / "notes").write_text("just some notes\nabout nothing\n")
    assert detect_kind(tmp_path / "notes") == "text"


def test_binary_noise_is_not_taken_for_a_load_file(tmp_path: Path) -> None:
    # Random bytes hold þ, 0x14 and ¶ somewhere in their first "line" about a third of the time.
    import random

    rng = random.Random(7)
    path = tmp_path / "noise.bin"
    kinds = set()
    for _ in range(200):
        path.write_bytes(rng.randbytes(3000))
        kinds.add(detect_kind(path))
    assert "dat" not in kinds
