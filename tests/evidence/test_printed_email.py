"""Tests for recognising printed emails in page text (text layer and OCR)."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chrono.evidence.model import Record
from chrono.evidence.printed_email import MAX_BODY_CHARS, find_printed_email, parse_address_list

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
TESSDATA = Path("/usr/share/tesseract-ocr/5/tessdata")

OUTLOOK = """\
From: Jane Doe <jane.doe@example.com>
Sent: Monday, March 3, 2025 10:15 AM
To: Bob Roe <bob@example.org>; Carol Poe <carol@example.net>
Cc: Dan Smith <dan.smith@example.com>
Subject: Q1 budget review
Importance: High

Hi Bob,
Numbers attached.
"""


def people(record: Record, role: str) -> list[tuple[str, str, str | None]]:
    return [(p.kind, p.value, p.name) for p in record.participants if p.role == role]


def values(record: Record, role: str) -> list[str]:
    return [p.value for p in record.participants if p.role == role]


def parsed(text: str) -> Record:
    record = find_printed_email(text)
    assert record is not None, "expected a printed email"
    return record


# --- header styles ------------------------------------------------------------------------------


def test_outlook_header_gives_email_record() -> None:
    record = parsed(OUTLOOK)
    assert record.type == "email"
    assert record.locator == ""
    assert record.start == "2025-03-03T10:15:00"
    assert people(record, "from") == [("email", "jane.doe@example.com", "Jane Doe")]
    assert people(record, "to") == [
        ("email", "bob@example.org", "Bob Roe"),
        ("email", "carol@example.net", "Carol Poe"),
    ]
    assert people(record, "cc") == [("email", "dan.smith@example.com", "Dan Smith")]
    assert record.subject == "Q1 budget review"
    assert record.body == "Hi Bob,\nNumbers attached."
    assert record.attributes == {"printed": True, "header_style": "outlook", "quoted_headers": 0}


def test_outlook_mailto_and_bare_from_forms() -> None:
    mailto = OUTLOOK.replace(
        "From: Jane Doe <jane.doe@example.com>", "From: Jane Doe [mailto:Jane.Doe@Example.com]"
    )
    assert people(parsed(mailto), "from") == [("email", "jane.doe@example.com", "Jane Doe")]
    bare = OUTLOOK.replace("From: Jane Doe <jane.doe@example.com>", "From: jane.doe@example.com")
    assert people(parsed(bare), "from") == [("email", "jane.doe@example.com", None)]


def test_gmail_header_with_at_is_naive_and_gmail_style() -> None:
    text = """\
Gmail - Lunch plans

From: Jane Doe <jane.doe@example.com>
Date: Mon, Mar 3, 2025 at 10:15 AM
Subject: Lunch plans
To: Bob Roe <bob@example.org>, Carol Poe <carol@example.net>, dan@example.com

Want to get lunch?
"""
    record = parsed(text)
    assert record.start == "2025-03-03T10:15:00"
    assert record.attributes["header_style"] == "gmail"
    assert values(record, "to") == ["bob@example.org", "carol@example.net", "dan@example.com"]
    assert record.subject == "Lunch plans"
    assert record.body == "Want to get lunch?"


def test_rfc_date_keeps_its_offset() -> None:
    text = """\
From: Jane Doe <jane.doe@example.com>
Date: Mon, 3 Mar 2025 10:15:00 -0500 (EST)
To: bob@example.org
Subject: Offsets

Body.
"""
    record = parsed(text)
    assert record.start == "2025-03-03T10:15:00-05:00"
    assert record.attributes["header_style"] == "generic"


@pytest.mark.parametrize(
    ("printed", "iso"),
    [
        ("Monday, March 3, 2025 10:15 AM", "2025-03-03T10:15:00"),
        ("Tuesday, December 30, 2025 11:59 PM", "2025-12-30T23:59:00"),
        ("Mon, 3 Mar 2025 10:15:00 +0530", "2025-03-03T10:15:00+05:30"),
        ("Mon, 3 Mar 2025 10:15:00 GMT", "2025-03-03T10:15:00+00:00"),
        ("Sat, Oct 17, 2020 at 8:01 PM", "2020-10-17T20:01:00"),
        ("3/4/2025 9:05 AM", "2025-03-04T09:05:00"),
        ("Monday, March 3, 2025 1O:15 AM", "2025-03-03T10:15:00"),
        ("Monday, March 3, 2025 10.15 A.M.", "2025-03-03T10:15:00"),
        ("Monday, March 3, 2025", "2025-03-03"),
        ("Monday, March 3 10:15 AM", None),
        ("yesterday afternoon sometime", None),
    ],
)
def test_printed_dates(printed: str, iso: str | None) -> None:
    text = f"From: jane@example.com\nSent: {printed}\nTo: bob@example.org\nSubject: x\n\nBody"
    assert parsed(text).start == iso


def test_bcc_and_reply_to_roles() -> None:
    text = OUTLOOK.replace(
        "Subject:", "Bcc: Eve Fox <eve@example.com>\nReply-To: desk@example.com\nSubject:"
    )
    record = parsed(text)
    assert people(record, "bcc") == [("email", "eve@example.com", "Eve Fox")]
    assert people(record, "reply_to") == [("email", "desk@example.com", None)]


# --- recipient lists ----------------------------------------------------------------------------


def test_wrapped_recipient_lines_are_joined() -> None:
    text = """\
From: Jane Doe <jane.doe@example.com>
Sent: Monday, March 3, 2025 10:15 AM
To: Bob Roe <bob@example.org>; Carol Poe <carol@example.net>; Dan O'Neil
<dan.oneil@mail.example.co.uk>; Eve Fox <eve@example.com>;

Frank Li <frank.li@example.com>
Cc: Grace Hopper <grace.hop
per@navy.mil>; Henry Ford
Subject: Wrapped

Body starts here.
"""
    record = parsed(text)
    assert values(record, "to") == [
        "bob@example.org",
        "carol@example.net",
        "dan.oneil@mail.example.co.uk",
        "eve@example.com",
        "frank.li@example.com",
    ]
    assert people(record, "to")[2] == ("email", "dan.oneil@mail.example.co.uk", "Dan O'Neil")
    assert people(record, "cc") == [
        ("email", "grace.hopper@navy.mil", "Grace Hopper"),
        ("name", "Henry Ford", None),
    ]
    assert record.body == "Body starts here."


def test_names_only_recipients_become_name_participants() -> None:
    text = """\
From: Jane Doe
Sent: Monday, March 3, 2025 10:15 AM
To: Roe, Bob; Poe, Carol; Dan Smith
Cc: Legal Team
Subject: Names only

Body
"""
    record = parsed(text)
    assert people(record, "from") == [("name", "Jane Doe", None)]
    assert people(record, "to") == [
        ("name", "Roe, Bob", None),
        ("name", "Poe, Carol", None),
        ("name", "Dan Smith", None),
    ]
    assert people(record, "cc") == [("name", "Legal Team", None)]


def test_gmail_comma_list_mixes_names_and_addresses() -> None:
    entries = parse_address_list(
        'Bob Roe <bob@example.org>, "Poe, Carol" <carol@example.net>, dan@example.com, Eve Fox'
    )
    assert entries == [
        ("Bob Roe", "bob@example.org"),
        ("Poe, Carol", "carol@example.net"),
        (None, "dan@example.com"),
        ("Eve Fox", None),
    ]


def test_address_then_name_in_parentheses() -> None:
    assert parse_address_list("jane@example.com (Jane Doe)") == [("Jane Doe", "jane@example.com")]


@pytest.mark.parametrize(
    "garbled",
    [
        "Bob Roe <bob@@example.org>",
        "Bob Roe <bob@example>",
        "Bob Roe <bob@exa mple.c0rn!>",
        "Bob Roe <bob/@example.org>",
        "Bob Roe <bob roe@example.org>",  # OCR lost an underscore: "roe@..." would be invented
        "Bob Roe <bob/7@example.org>",  # "7" read as "/": "7@example.org" would be invented
    ],
)
def test_garbled_address_falls_back_to_name(garbled: str) -> None:
    entries = parse_address_list(garbled)
    assert entries == [("Bob Roe", None)], entries


def test_garbled_address_without_name_keeps_raw_text_as_name() -> None:
    ((name, address),) = parse_address_list("<bob@example>")
    assert address is None
    assert name == "bob@example"


def test_participants_are_deduplicated_within_a_role() -> None:
    text = OUTLOOK.replace(
        "To: Bob Roe <bob@example.org>;", "To: Bob Roe <bob@example.org>; BOB@example.org;"
    )
    assert values(parsed(text), "to") == ["bob@example.org", "carol@example.net"]


def test_value_column_read_after_label_column() -> None:
    """Tesseract output for a tab-aligned header: labels first, then one paragraph per value."""
    text = (
        "From:\nDate:\n\nSubject:\n\nTo:\n\nCe:\n\nHi all,\n\n"
        "Quinn Thomas <quinn-thomas@univ.edu>\n\nTue, Dec 24, 2019 at 10:06 PM\n\n"
        "Re: the Smith matter\n\n"
        "Zoe Johnson <zoe-johnson@mail.example.co.uk>, Grace Poe\n<grace.poe@example.net>\n\n"
        "Xena Nguyen <xnguyen@bigco.com>, lhopper@example.com\n\n"
        "Please see the attached draft.\n"
    )
    record = parsed(text)
    assert values(record, "from") == ["quinn-thomas@univ.edu"]
    assert record.start == "2019-12-24T22:06:00"
    assert record.subject == "Re: the Smith matter"
    assert values(record, "to") == ["zoe-johnson@mail.example.co.uk", "grace.poe@example.net"]
    assert values(record, "cc") == ["xnguyen@bigco.com", "lhopper@example.com"]
    assert record.body == "Hi all,\n\nPlease see the attached draft."


@pytest.mark.parametrize("misread", ["10:", "AO:", "lo:"])
def test_to_label_misread_before_addresses(misread: str) -> None:
    text = OUTLOOK.replace("To:", misread)
    assert values(parsed(text), "to") == ["bob@example.org", "carol@example.net"]


def test_weak_to_misread_is_not_a_label_before_prose() -> None:
    text = "From: Jane Doe\nSent: Monday, March 3, 2025 10:15 AM\n10: 15 people attended\n"
    assert find_printed_email(text) is None


def test_label_without_colon_inside_header_block() -> None:
    text = OUTLOOK.replace("Cc: Dan Smith <dan.smith@example.com>", "Ce Sam Miller")
    assert people(parsed(text), "cc") == [("name", "Sam Miller", None)]


# --- chains -------------------------------------------------------------------------------------


CHAIN = """\
From: Carol Poe <carol@example.net>
Sent: Tuesday, March 4, 2025 9:00 AM
To: Jane Doe <jane.doe@example.com>
Subject: RE: Q1 budget review

Looks good.

-----Original Message-----
From: Jane Doe <jane.doe@example.com>
Sent: Monday, March 3, 2025 10:15 AM
To: Carol Poe <carol@example.net>
Subject: Q1 budget review

On Sun, Mar 2, 2025 at 8:00 PM Bob Roe <bob@example.org>
wrote:
> earlier text

---------- Forwarded message ---------
From: Dan Smith <dan@example.com>
Date: Sat, Mar 1, 2025 at 7:00 AM
Subject: numbers
To: Bob Roe <bob@example.org>

From: Eve Fox <eve@example.com>
Sent: Friday, February 28, 2025 6:00 PM
To: Dan Smith <dan@example.com>
"""


def test_reply_chain_uses_top_block_and_counts_quoted_headers() -> None:
    record = parsed(CHAIN)
    assert values(record, "from") == ["carol@example.net"]
    assert values(record, "to") == ["jane.doe@example.com"]
    assert record.start == "2025-03-04T09:00:00"
    assert record.subject == "RE: Q1 budget review"
    assert record.attributes["quoted_headers"] == 4
    assert record.body is not None
    assert record.body.startswith("Looks good.")
    assert "-----Original Message-----" in record.body


def test_forward_marker_above_the_top_block() -> None:
    text = "---------- Forwarded message ---------\n" + OUTLOOK
    record = parsed(text)
    assert values(record, "from") == ["jane.doe@example.com"]
    assert record.attributes["quoted_headers"] == 0


def test_body_is_bounded() -> None:
    record = parsed(OUTLOOK + "word " * 10_000)
    assert record.body is not None
    assert len(record.body) == MAX_BODY_CHARS


# --- pages that are not emails ------------------------------------------------------------------


LETTER = """\
ACME Corporation
100 Main Street

March 3, 2025

Dear Mr. Roe,

I write to you from our head office to confirm the transfer. From: the accounts team, with
thanks. To: whom it may concern, the funds were sent on Monday.

Sincerely,
Jane Doe
"""

CALL_LOG = """\
Call Detail Records
Date        Time      From            To              Duration
03/03/2025  10:15 AM  (555) 123-4567  (555) 987-6543  00:05:12
03/03/2025  11:02 AM  (555) 987-6543  (555) 123-4567  00:01:40
03/04/2025  09:30 AM  (555) 123-4567  (555) 222-3333  00:12:09
"""

INVOICE = """\
INVOICE #10442
Date: March 3, 2025 10:15 AM
To: Bob Roe <bob@example.org>
Subject: Services rendered
Item                 Qty     Amount
Consulting           10      $1,500.00
Total                        $1,500.00
"""

MEMO = """\
MEMORANDUM
TO: All Staff
FROM: Jane Doe, General Counsel
DATE: March 3, 2025
RE: Document retention

Please keep all records.
"""


@pytest.mark.parametrize(
    "text",
    [LETTER, CALL_LOG, INVOICE, MEMO, "", "\n\n\n", "From: Jane Doe\nTo: Bob\n\nHello"],
    ids=["letter", "call_log", "invoice", "memo", "empty", "blank", "no_date"],
)
def test_non_email_pages_give_none(text: str) -> None:
    assert find_printed_email(text) is None


def test_form_and_dated_lines_are_not_labels() -> None:
    text = "Form: W-2\nDated: March 3, 2025 10:15 AM\nTo: Bob Roe <bob@example.org>\nSubject: x"
    assert find_printed_email(text) is None


def test_header_far_down_the_page_is_not_the_page_email() -> None:
    filler = "\n".join(f"Paragraph line {n} of the report." for n in range(30))
    assert find_printed_email(filler + "\n" + OUTLOOK) is None
    short = "\n".join(f"Line {n}" for n in range(10))
    assert find_printed_email(short + "\n" + OUTLOOK) is not None


def test_real_corpus_texts_are_not_emails(corpus: Path) -> None:
    texts = sorted((corpus / "ocr_tesseract").glob("*.txt")) + sorted(
        (corpus / "pdf_pypdf").glob("*.txt")
    )
    assert texts
    for path in texts:
        assert find_printed_email(path.read_text(encoding="utf-8", errors="replace")) is None


# --- OCR noise ----------------------------------------------------------------------------------

_LABEL_NOISE = {
    "From:": ["Frorn:", "From :", "Fron:", "FROM:", "From;"],
    "Sent:": ["Sent :", "Sen t:", "Sent;", "5ent:"],
    "To:": ["T0:", "To :", "To;", "TO:"],
    "Cc:": ["Cc;", "CC:", "Ce:", "Cc :", "Co:"],
    "Subject:": ["Subiect:", "Subject :", "Subjcct:", "$ubject:"],
}
_BRACKETS = [("<", ">"), ("(", ")"), ("«", "»"), ("{", "}"), ("", "")]


def ocr_noise(text: str, rng: random.Random) -> str:
    """Apply substitutions Tesseract makes on scanned email headers."""
    for label, variants in _LABEL_NOISE.items():
        if rng.random() < 0.7:
            text = text.replace(label, rng.choice(variants), 1)
    opening, closing = rng.choice(_BRACKETS)
    text = text.replace("<", opening).replace(">", closing)

    def spaced(match: re.Match[str]) -> str:
        address = match.group(0)
        if rng.random() < 0.5:
            address = address.replace("@", rng.choice([" @ ", "@ ", " @"]))
        if rng.random() < 0.5:
            address = re.sub(r"\.(?=[a-z])", lambda _: rng.choice([" . ", ". ", " ."]), address)
        return address

    text = re.sub(r"[a-z0-9._\-]+@[a-z0-9.\-]+\.[a-z]+", spaced, text)
    if rng.random() < 0.5:
        text = text.replace("AM", rng.choice(["A.M.", "AM.", "am"]))
    lines = text.splitlines()
    # Trailing punctuation and blank lines between paragraphs, as Tesseract emits them.
    return "\n\n".join(line + rng.choice(["", "", ".", " ,"]) if line else line for line in lines)


NOISY_SOURCE = """\
From: Jane Doe <jane.doe@example.com>
Sent: Monday, March 3, 2025 10:15 AM
To: Bob Roe <bob.roe@example.org>; Carol Poe <carol@sub.example.net>; Dan Smith
Cc: Eve Fox <eve-fox@example.com>
Subject: Q1 budget review

Hi Bob, numbers attached.
"""


@pytest.mark.parametrize("seed", range(40))
def test_ocr_noised_outlook_header(seed: int) -> None:
    noisy = ocr_noise(NOISY_SOURCE, random.Random(seed))
    record = find_printed_email(noisy)
    assert record is not None, noisy
    assert values(record, "from") == ["jane.doe@example.com"], noisy
    assert [(p.kind, p.value) for p in record.participants if p.role == "to"] == [
        ("email", "bob.roe@example.org"),
        ("email", "carol@sub.example.net"),
        ("name", "Dan Smith"),
    ], noisy
    assert values(record, "cc") == ["eve-fox@example.com"], noisy
    assert record.start == "2025-03-03T10:15:00", noisy


def test_ocr_noise_function_changes_text() -> None:
    noisy = {ocr_noise(NOISY_SOURCE, random.Random(seed)) for seed in range(10)}
    assert NOISY_SOURCE not in noisy
    assert len(noisy) == 10


_local = st.from_regex(r"[a-z][a-z0-9]{0,8}(?:[._\-][a-z0-9]{1,8}){0,2}", fullmatch=True)
_domain = st.from_regex(r"[a-z][a-z0-9\-]{0,10}[a-z0-9](?:\.[a-z]{2,4}){1,2}", fullmatch=True)
_name = st.from_regex(r"[A-Z][a-z]{1,9} [A-Z][a-z'\-]{1,12}[a-z]", fullmatch=True)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_name, _local, _domain), min_size=1, max_size=6), st.booleans())
def test_clean_recipient_lists_round_trip(
    recipients: list[tuple[str, str, str]], gmail: bool
) -> None:
    separator = ", " if gmail else "; "
    value = separator.join(f"{name} <{local}@{domain}>" for name, local, domain in recipients)
    assert parse_address_list(value) == [
        (name, f"{local}@{domain}") for name, local, domain in recipients
    ]


# --- real OCR -----------------------------------------------------------------------------------


def test_rendered_and_ocred_outlook_header_is_recovered() -> None:
    """Render a header at 300 dpi, OCR it with Tesseract, and parse what OCR really gives."""
    tesserocr = pytest.importorskip("tesserocr")
    from PIL import Image, ImageDraw, ImageFont

    if not FONT.is_file() or not (TESSDATA / "eng.traineddata").is_file():
        pytest.skip("DejaVu font or Tesseract eng data missing")
    lines = [
        "From: Jane Doe <jane.doe@example.com>",
        "Sent: Wednesday, November 26, 2025 4:07 PM",
        "To: Bob Roe <bob.roe@example.org>; Carol Poe <carol@sub.example.net>; Dan Smith;",
        "       Eve Fox <eve-fox@law-firm.com>",
        "Cc: Frank Li <frank.li@state.gov>",
        "Subject: RE: Q4 budget review",
        "",
        "Hi Bob,",
        "Please see the attached draft and send comments by Friday.",
    ]
    dpi = 300
    font = ImageFont.truetype(str(FONT), round(11 * dpi / 72))
    image = Image.new("L", (int(8.5 * dpi), int(4 * dpi)), 255)
    draw = ImageDraw.Draw(image)
    for number, line in enumerate(lines):
        draw.text((dpi, int(0.6 * dpi + number * 0.22 * dpi)), line, font=font, fill=0)
    image = image.rotate(0.4, resample=Image.Resampling.BILINEAR, fillcolor=255)
    with tesserocr.PyTessBaseAPI(path=str(TESSDATA), lang="eng") as api:
        api.SetImage(image)
        api.SetSourceResolution(dpi)
        text = api.GetUTF8Text()

    record = find_printed_email(text)
    assert record is not None, text
    assert values(record, "from") == ["jane.doe@example.com"], text
    assert [(p.kind, p.value) for p in record.participants if p.role == "to"] == [
        ("email", "bob.roe@example.org"),
        ("email", "carol@sub.example.net"),
        ("name", "Dan Smith"),
        ("email", "eve-fox@law-firm.com"),
    ], text
    assert values(record, "cc") == ["frank.li@state.gov"], text
    assert record.start == "2025-11-26T16:07:00", text
    assert record.subject == "RE: Q4 budget review", text
