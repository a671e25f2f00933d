"""Concordance DAT and Opticon OPT writers for the sample volume ``VOL001``.

DAT: UTF-8 with BOM, every field quoted with þ, fields separated by 0x14, ® for a newline inside
a field, CRLF between rows. Paths are relative to the volume root with backslashes.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

QUOTE = "\u00fe"
SEPARATOR = "\u0014"
NEWLINE = "\u00ae"
VOLUME = "VOL001"
PREFIX = "ABC"

DAT_FIELDS = ("BEGBATES", "ENDBATES", "BEGATTACH", "ENDATTACH", "CUSTODIAN", "FROM", "TO", "CC",
              "BCC", "SUBJECT", "DATESENT", "TIMESENT", "TIMEZONE", "FILENAME", "DOCTYPE",
              "DATECREATED", "TEXTPATH", "NATIVEPATH")


@dataclass
class DatRow:
    """One document of the volume, field for field in :data:`DAT_FIELDS` order."""

    begbates: str
    endbates: str
    begattach: str
    endattach: str
    custodian: str
    from_: str = ""
    to: str = ""
    cc: str = ""
    bcc: str = ""
    subject: str = ""
    datesent: str = ""
    timesent: str = ""
    timezone: str = ""
    filename: str = ""
    doctype: str = ""
    datecreated: str = ""
    textpath: str = ""
    nativepath: str = ""


def bates(number: int) -> str:
    return f"{PREFIX}{number:06d}"


def volume_path(*parts: str) -> str:
    """A path as DAT/OPT files write it: relative to the volume root, backslashes."""
    return "\\".join(parts)


def dat_bytes(rows: list[DatRow]) -> bytes:
    def line(values: list[str]) -> str:
        return SEPARATOR.join(
            QUOTE + v.replace("\r\n", "\n").replace("\n", NEWLINE) + QUOTE for v in values)

    lines = [line(list(DAT_FIELDS))]
    for row in rows:
        lines.append(line([getattr(row, f.name) for f in fields(row)]))
    return ("\r\n".join(lines) + "\r\n").encode("utf-8-sig")


def opt_bytes(documents: list[tuple[str, list[str]]]) -> bytes:
    """Opticon lines for (first bates, [image paths]) documents, one line per page."""
    lines = []
    for _, paths in documents:
        for i, path in enumerate(paths):
            key = path.rsplit("\\", 1)[-1].rsplit(".", 1)[0]
            lines.append(f"{key},{VOLUME},{path},{'Y' if i == 0 else ''},,,"
                         f"{len(paths) if i == 0 else ''}")
    return ("\r\n".join(lines) + "\r\n").encode("ascii")
