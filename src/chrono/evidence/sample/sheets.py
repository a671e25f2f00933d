"""Call logs, message exports and contact lists as CSV and xlsx.

Two header styles: a carrier CDR in UTC (style A) and a phone export in local time with a
preamble naming the device owner (style B). xlsx files are written with openpyxl and re-packed
with fixed timestamps.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from openpyxl import Workbook

from chrono.evidence.sample.archives import normalize_zip

Row = Sequence[str | int]

CDR_CALL_HEADER = ["Date/Time (UTC)", "Calling Number", "Called Number", "Duration (s)",
                   "Call Type"]
CDR_SMS_HEADER = ["Date/Time (UTC)", "From", "To", "Message"]
EXPORT_CALL_HEADER = ["Date", "Time", "Time Zone", "Direction", "Number", "Contact Name",
                      "Duration"]
EXPORT_SMS_HEADER = ["Date", "Time", "Time Zone", "Direction", "Number", "Contact Name",
                     "Message"]
CONTACT_HEADER = ["Name", "Phone", "Email"]


def export_preamble(owner_number: str, owner_name: str) -> list[list[str | int]]:
    """The rows above a style-B header: owner number, owner name, a blank row."""
    return [["Device Owner Number", owner_number], ["Owner Name", owner_name], []]


def csv_bytes(rows: Sequence[Row]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    for row in rows:
        writer.writerow(row)
    return buf.getvalue().encode("utf-8")


def xlsx_bytes(rows: Sequence[Row], sheet_title: str = "Sheet1") -> bytes:
    """A one-sheet workbook with every cell a string or integer, as the rows give it."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = sheet_title
    for row in rows:
        sheet.append(list(row))
    buf = io.BytesIO()
    workbook.save(buf)
    return normalize_zip(buf.getvalue())
