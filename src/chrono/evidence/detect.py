"""Detects a file's kind from its content (magic bytes and structure), never from its name.

Kinds are the strings extractors register for: pdf, tiff, jpeg, png, gif, bmp, zip, 7z, tar,
gzip, bzip2, xz, rar, xlsx, docx, xls, msg, eml, mbox, csv, dat, opt, text, empty, unknown.
The file name is used only to break ties between text formats that share a structure (an Opticon
.opt and a headerless CSV look alike).
"""

from __future__ import annotations

import re
import tarfile
import zipfile
from pathlib import Path

import olefile

HEAD_BYTES = 8192

_MAGIC: list[tuple[bytes, int, str]] = [
    (b"%PDF-", -1, "pdf"),
    (b"II*\x00", 0, "tiff"),
    (b"MM\x00*", 0, "tiff"),
    (b"\xff\xd8\xff", 0, "jpeg"),
    (b"\x89PNG\r\n\x1a\n", 0, "png"),
    (b"GIF87a", 0, "gif"),
    (b"GIF89a", 0, "gif"),
    (b"BM", 0, "bmp"),
    (b"7z\xbc\xaf\x27\x1c", 0, "7z"),
    (b"Rar!\x1a\x07", 0, "rar"),
    (b"\x1f\x8b", 0, "gzip"),
    (b"BZh", 0, "bzip2"),
    (b"\xfd7zXZ\x00", 0, "xz"),
]

_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_SIGS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_HEADER_LINE = re.compile(rb"^[A-Za-z][A-Za-z0-9-]{1,40}:[ \t]", re.MULTILINE)
_MAIL_HEADERS = (b"from:", b"to:", b"subject:", b"date:", b"message-id:", b"received:",
                 b"mime-version:", b"return-path:", b"delivered-to:", b"x-")


def detect_kind(path: Path) -> str:
    """Return the kind of the file at ``path``."""
    with path.open("rb") as fh:
        head = fh.read(HEAD_BYTES)
    if not head:
        return "empty"
    for magic, offset, kind in _MAGIC:
        if offset == -1:
            if magic in head[:1024]:
                return kind
        elif head.startswith(magic, offset):
            if kind == "bmp" and len(head) < 26:
                continue
            return kind
    if head.startswith(_ZIP_SIGS):
        return _zip_kind(path)
    if head.startswith(_OLE):
        return _ole_kind(path)
    if len(head) > 262 and head[257:262] == b"ustar":
        return "tar"
    return _text_kind(path, head)


def _zip_kind(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist()[:2000])
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError):
        return "zip"  # a broken zip is still a zip: the archive extractor reports why
    if "[Content_Types].xml" in names:
        if any(n.startswith("xl/") for n in names):
            return "xlsx"
        if any(n.startswith("word/") for n in names):
            return "docx"
    return "zip"


def _ole_kind(path: Path) -> str:
    try:
        with olefile.OleFileIO(str(path)) as ole:
            streams = {"/".join(s).lower() for s in ole.listdir(streams=True, storages=True)}
    except Exception:
        return "unknown"
    if any(s.startswith("__substg1.0_") for s in streams) or "__properties_version1.0" in streams:
        return "msg"
    if "workbook" in streams or "book" in streams:
        return "xls"
    return "unknown"


def _is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except (OSError, ValueError):
        return False


_CLAIMED_BINARY = {
    ".pdf": "pdf", ".tif": "tiff", ".tiff": "tiff", ".jpg": "jpeg", ".jpeg": "jpeg",
    ".png": "png", ".zip": "zip", ".7z": "7z", ".xlsx": "xlsx", ".xls": "xls", ".msg": "msg",
    ".docx": "docx", ".gif": "gif",
}


def _text_kind(path: Path, head: bytes) -> str:
    claimed = _CLAIMED_BINARY.get(path.suffix.lower())
    if claimed is not None:
        # Text content behind a binary format's name is a damaged file of that format: its
        # extractor reports why, instead of the file passing as a text document.
        return claimed
    sample = head.lstrip(b"\xef\xbb\xbf")
    if sample.startswith((b"\xff\xfe", b"\xfe\xff")):
        decoded = sample[2:].decode("utf-16-le" if sample[:2] == b"\xff\xfe" else "utf-16-be",
                                    errors="ignore")
        sample = decoded.encode("utf-8", errors="ignore")
    first_line = sample.split(b"\n", 1)[0]
    # Concordance: a header line opening with þ (0xFE in cp1252, C3 BE in UTF-8) quotes, with
    # 0x14 / ¶ separators; binary noise holding those bytes somewhere is not one.
    if first_line.lstrip().startswith((b"\xc3\xbe", b"\xfe")) and b"\x00" not in first_line and (
        b"\x14" in first_line or b"\xc2\xb6" in first_line or b"\xb6" in first_line
    ):
        return "dat"
    if sample.startswith(b"From ") and _HEADER_LINE.search(sample):
        return "mbox"
    if _looks_like_email(sample):
        return "eml"
    if b"\x00" in sample:
        return "unknown"
    if path.suffix.lower() == ".opt" and re.match(rb"^[^,\r\n]+,[^,\r\n]*,[^,\r\n]+,", sample):
        return "opt"
    if _looks_like_csv(sample) or (
        path.suffix.lower() in (".csv", ".tsv") and (b"," in sample or b"\t" in sample)
    ):
        return "csv"
    if _is_tar(path):
        return "tar"
    return "text"


def _looks_like_email(sample: bytes) -> bool:
    block = sample.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    lines = [ln for ln in block.splitlines() if ln and not ln[:1].isspace()]
    if len(lines) < 2:
        return False
    header_like = [ln for ln in lines if _HEADER_LINE.match(ln + b" ")]
    known = sum(1 for ln in header_like if ln.lower().startswith(_MAIL_HEADERS))
    return len(header_like) >= 0.8 * len(lines) and known >= 2


def _looks_like_csv(sample: bytes) -> bool:
    """Most lines share one non-zero count of a delimiter (a preamble may differ)."""
    lines = [ln for ln in sample.splitlines()[:30] if ln.strip()]
    if len(lines) > 2:
        lines = lines[:-1]  # the sample may cut the last line short
    if len(lines) < 2:
        return False
    for delim in (b",", b"\t", b";", b"|"):
        counts = [ln.count(delim) for ln in lines]
        common = max(set(counts), key=counts.count)
        if common >= 1 and counts.count(common) >= max(2, 0.6 * len(lines)):
            return True
    return False
