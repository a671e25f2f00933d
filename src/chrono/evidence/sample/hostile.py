"""Hostile inputs for the sample production: files the pipeline must survive.

Each builder returns the file's bytes; the planner lists them in ``truth["hostile"]`` with the
expected outcome and a suggested reason code.
"""

from __future__ import annotations

import random
import struct
import zlib

from chrono.evidence.sample.archives import aes_zip_bytes, normalize_zip, zip_bytes
from chrono.evidence.sample.sheets import xlsx_bytes

BOMB_SIDE = 50_000


def truncated_pdf(valid_pdf: bytes) -> bytes:
    """The first part of a real PDF: header and a few objects, no page tree, no xref."""
    return valid_pdf[: min(400, len(valid_pdf) // 4)]


def random_bytes(rng: random.Random, size: int) -> bytes:
    """Bytes that are no known format (a fake ``.pdf``)."""
    return bytes(rng.randrange(256) for _ in range(size))


def png_bomb() -> bytes:
    """A tiny PNG whose header declares 50000x50000 pixels (2.5 gigapixels)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", BOMB_SIDE, BOMB_SIDE, 1, 0, 0, 0, 0)
    row = b"\x00" + b"\x00" * (BOMB_SIDE // 8)
    idat = zlib.compress(row * 64, 9)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
            + chunk(b"IEND", b""))


def zip_slip(good_name: str, good: bytes) -> bytes:
    """A zip with a path-traversal entry next to a harmless one."""
    return zip_bytes([("../../evil.txt", b"this entry must never be written\n"),
                      (good_name, good)])


def unknown_password_zip(entries: list[tuple[str, bytes]], password: str) -> bytes:
    return aes_zip_bytes(entries, password, salt_source="unknown-password")


def xxe_xlsx() -> bytes:
    """An xlsx whose sheet XML declares an external entity and uses it in a cell."""
    base = xlsx_bytes([["Date", "Note"], ["03/03/2025", "placeholder"]])
    sheet = (
        b'<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
        b'<!DOCTYPE worksheet [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
        b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        b"<sheetData>"
        b'<row r="1"><c r="A1" t="inlineStr"><is><t>Date</t></is></c>'
        b'<c r="B1" t="inlineStr"><is><t>Note</t></is></c></row>'
        b'<row r="2"><c r="A2" t="inlineStr"><is><t>03/03/2025</t></is></c>'
        b'<c r="B2" t="inlineStr"><is><t>&xxe;</t></is></c></row>'
        b"</sheetData></worksheet>"
    )
    return normalize_zip(base, rewrite={"xl/worksheets/sheet1.xml": sheet})


def huge_field_csv(field_bytes: int) -> bytes:
    """A CSV whose second row holds one quoted field of ``field_bytes`` bytes."""
    return (b"id,note\r\n1,\"" + b"A" * field_bytes + b"\"\r\n2,short\r\n")


def invalid_utf8_csv(rng: random.Random, size: int = 4096) -> bytes:
    """Bytes that decode as no text encoding: stray continuation bytes mixed with NULs."""
    junk = bytes(rng.choice((0x00, 0x80, 0x9F, 0xC0, 0xC1, 0xF5, 0xFE, 0xFF, 0x01, 0x1B))
                 for _ in range(size))
    return b"date,from,to\r\n" + junk
