"""Tests for dedupe: which copies of one email, call or message are marked, and by what."""

from __future__ import annotations

import copy
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from chrono.core.config import DedupeConfig
from chrono.evidence.dedupe import (
    RANK_NATIVE,
    RANK_OCR,
    RANK_RECORD,
    RANK_TEXT_LAYER,
    DuplicateMark,
    dedupe_events,
    find_duplicates,
    source_rank,
    split_subject,
)
from chrono.evidence.events import events_for_artifact
from chrono.evidence.inventory import FileEntry
from chrono.evidence.model import Artifact, Page, Participant, Record

BODY = (
    "Hi Bob,\n\nThe Q1 numbers are attached. Revenue is up 4% on plan, travel is over by 12k.\n"
    "Please review before Thursday.\n\nJane"
)
PRINTED = """\
From: Jane Doe <jane.doe@example.com>
Sent: Monday, March 3, 2025 10:15 AM
To: Bob Roe <bob@example.org>; Carol Poe <carol@example.net>
Subject: Q1 budget review

Hi Bob,

The Q1 numbers are attached. Revenue is up 4% on plan, travel is over by 12k.
Please review before Thursday.
"""
# What OCR makes of a scan of the same printout: a few letters misread, the signature cut off.
SCANNED = (PRINTED.replace("Hi Bob", "Hl Bob").replace("Revenue", "Revenuc")
           .replace("attached", "attachcd").replace("budget", "budgct"))

JANE = Participant(role="from", kind="email", value="jane.doe@example.com",
                   name="Jane Doe")
TO = [Participant(role="to", kind="email", value="bob@example.org", name="Bob Roe"),
      Participant(role="to", kind="email", value="carol@example.net", name="Carol Poe")]


def _file(name: str, kind: str) -> FileEntry:
    sha = (name.encode().hex() * 64)[:64]
    return FileEntry(file_id=f"id-{name}", path=name, sha256=sha, size=1, kind=kind,
                     family_id=f"fam-{name}")


def _events(name: str, kind: str, records: list[Record] | None = None,
            pages: list[str] | None = None) -> list[dict[str, Any]]:
    entry = _file(name, kind)
    artifact = Artifact(
        sha256=entry.sha256, kind=kind, extractor="test", status="processed",
        records=records or [],
        pages=[Page(number=n, text=t, method="text_layer") for n, t in enumerate(pages or [], 1)],
    )
    return events_for_artifact(entry, artifact, "UTC", "US")


def _email(name: str, kind: str, locator: str, **fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "start": "2025-03-03T10:15:37+00:00", "participants": [JANE, *TO],
        "subject": "Q1 budget review", "body": BODY, "message_id": None,
    }
    values.update(fields)
    (event,) = _events(name, kind, [Record(type="email", locator=locator, **values)])
    return event


def native_email(**fields: Any) -> dict[str, Any]:
    defaults = {"message_id": "<q1-budget@example.com>"}
    return _email("mail/q1.eml", "eml", "msg:0", **(defaults | fields))


def dat_email() -> dict[str, Any]:
    # A load-file row: the date only to the minute, the text re-flowed by the review platform.
    return _email("VOL001/DATA/VOL001.dat", "dat", "row:3", start="2025-03-03 10:15",
                  body=" ".join(BODY.split()), bates="ABC000003")


def printed_email(text: str = PRINTED, name: str = "docs/print.pdf",
                  kind: str = "pdf") -> dict[str, Any]:
    (event,) = [e for e in _events(name, kind, pages=[text]) if e["type"] == "email"]
    return event


def _call(eid: str, start: str, numbers: tuple[str, str], duration: float | None,
          file: str, direction: str = "outgoing", extra: int = 0) -> dict[str, Any]:
    roles = ("caller", "callee") if direction == "outgoing" else ("callee", "caller")
    participants = [
        {"role": role, "kind": "phone", "value": number, "name": None, "normalized": number}
        for role, number in zip(roles, numbers, strict=True)
    ]
    participants += [{"role": "participant", "kind": "name", "value": f"n{n}", "name": None,
                      "normalized": f"n{n}"} for n in range(extra)]
    return {
        "id": eid, "type": "call", "start": start, "offset_minutes": 0, "timezone": None,
        "subject": None, "body": None, "duration_s": duration, "direction": direction,
        "message_id": None, "participants": participants,
        "source": {"file_id": file, "path": f"{file}.csv", "sha256": file * 8,
                   "locator": f"row:{eid}", "page": None, "row": None, "bates": None},
        "duplicate_of": None, "attributes": {},
    }


def _message(eid: str, start: str, numbers: tuple[str, str], text: str | None,
             file: str) -> dict[str, Any]:
    event = _call(eid, start, numbers, None, file)
    event.update(type="message", body=text, duration_s=None)
    for participant, role in zip(event["participants"], ("sender", "recipient"), strict=True):
        participant["role"] = role
    return event


A, B = "+15555215554", "+15552017788"


def _marks(events: list[dict[str, Any]], config: DedupeConfig | None = None) -> dict[str, Any]:
    return {m.event_id: (m.duplicate_of, m.reason) for m in find_duplicates(events, config)}


# --- emails -------------------------------------------------------------------------------------


def test_eml_dat_row_pdf_print_and_scan_are_one_email_kept_as_the_eml() -> None:
    eml, dat = native_email(), dat_email()
    pdf, scan = printed_email(), printed_email(SCANNED, "scans/scan-1.tif", "tiff")
    marks = _marks([scan, pdf, dat, eml])
    assert marks == {
        dat["id"]: (eml["id"], "email_loadfile"),
        pdf["id"]: (eml["id"], "email_print"),
        scan["id"]: (eml["id"], "email_print"),
    }


def test_source_rank_from_path_and_locator() -> None:
    assert source_rank(native_email()) == RANK_NATIVE
    assert source_rank(dat_email()) == RANK_RECORD
    assert source_rank(printed_email()) == RANK_TEXT_LAYER
    assert source_rank(printed_email(SCANNED, "scans/s.tif", "tiff")) == RANK_OCR


def test_print_without_the_native_joins_the_load_file_row() -> None:
    dat, pdf = dat_email(), printed_email()
    assert _marks([pdf, dat]) == {pdf["id"]: (dat["id"], "email_print")}


def test_same_message_id_merges_natives_whatever_else_differs() -> None:
    eml = native_email()
    # An Outlook copy: time misread by two hours, body re-wrapped, subject case changed.
    msg = _email("mail/q1.msg", "msg", "msg:0", start="2025-03-03T12:15:37+00:00",
                 body=BODY.upper(), subject="Q1 BUDGET REVIEW",
                 message_id="  <Q1-BUDGET@example.com>")
    assert _marks([msg, eml]) == {msg["id"]: (eml["id"], "message_id")}


def test_all_fields_equal_without_message_id_merges() -> None:
    first = _email("mail/a.eml", "eml", "msg:0", start="2025-03-03T10:15:37.250+00:00")
    second = _email("other/a-copy.eml", "eml", "msg:0", body=BODY.replace("\n", "\r\n"))
    (mark,) = find_duplicates([first, second])
    assert mark.reason == "email_fields"
    assert {mark.event_id, mark.duplicate_of} == {first["id"], second["id"]}


def test_different_message_ids_never_merge_even_through_a_print() -> None:
    one = native_email(message_id="<one@example.com>")
    two = _email("mail/q1-resent.eml", "eml", "msg:0", message_id="<two@example.com>")
    pdf = printed_email()
    marks = find_duplicates([one, two, pdf])
    assert len(marks) == 1  # the print joins one of them, never both
    assert marks[0].event_id == pdf["id"]
    assert marks[0].duplicate_of in (one["id"], two["id"])
    assert find_duplicates([one, two]) == []


def test_native_copies_are_not_matched_fuzzily() -> None:
    # Same sender, subject and near-identical body a few seconds apart, both native without
    # Message-ID: a resend is possible, so only an exact field match would merge them.
    first = _email("mail/a.eml", "eml", "msg:0", body=BODY + "\nSent from my phone")
    second = _email("mail/b.eml", "eml", "msg:0", start="2025-03-03T10:15:50+00:00")
    assert find_duplicates([first, second]) == []


def test_forward_quoting_an_email_is_not_a_duplicate_of_it() -> None:
    original = native_email()
    bob = Participant(role="from", kind="email", value="bob@example.org", name="Bob Roe")
    quoted = f"FYI\n\n-----Original Message-----\nFrom: Jane Doe\n\n{BODY}"
    forward = _email("mail/fwd.eml", "eml", "msg:0", start="2025-03-03T11:02:00+00:00",
                     participants=[bob, TO[1]], subject="Fwd: Q1 budget review", body=quoted,
                     message_id="<fwd@example.org>")
    # Jane forwards her own email 20 seconds later; only its printout is in the production.
    jane_forward = printed_email(
        PRINTED.replace("Subject: Q1 budget review", "Subject: FW: Q1 budget review")
        .replace("Hi Bob,", "Hi Bob, forwarding again:"), "docs/fw.pdf")
    assert find_duplicates([original, forward, jane_forward]) == []


def test_print_outside_the_time_tolerance_or_with_another_body_stays_apart() -> None:
    eml = native_email()
    late = printed_email(PRINTED.replace("10:15 AM", "10:25 AM"), "docs/late.pdf")
    other = printed_email(PRINTED.split("Hi Bob")[0] + "Totally different words here, about "
                          "the office party next week and who brings the cake.", "docs/o.pdf")
    assert find_duplicates([eml, late, other]) == []
    wide = DedupeConfig(email_time_tolerance_s=900)
    assert _marks([eml, late], wide) == {late["id"]: (eml["id"], "email_print")}


def test_print_that_shows_only_the_sender_name_matches_by_name() -> None:
    text = PRINTED.replace("Jane Doe <jane.doe@example.com>", "Doe, Jane")
    pdf, eml = printed_email(text), native_email()
    assert pdf["participants"][0]["kind"] == "name"
    assert _marks([pdf, eml]) == {pdf["id"]: (eml["id"], "email_print")}


def test_subject_prefixes_are_tags_not_text() -> None:
    assert split_subject("RE: Fwd:  Q1 budget") == (("re", "fwd"), "q1 budget")
    assert split_subject("FW[2]; q1 BUDGET!") == (("fwd",), "q1 budget")
    assert split_subject("Return of Q1") == ((), "return of q1")
    assert split_subject(None) == ((), "")


# --- calls --------------------------------------------------------------------------------------


def test_carrier_record_and_other_partys_export_40s_apart_merge() -> None:
    cdr = _call("c1", "2025-03-03T14:05:09Z", (A, B), 65, "cdr")
    # The callee's phone export: incoming, the caller's number written without '+'.
    export = _call("c2", "2025-03-03T14:05:49Z", (B, "15555215554"), 65, "export",
                   direction="incoming")
    assert _marks([export, cdr]) == {"c2": ("c1", "call_match")}


def test_calls_ten_minutes_apart_or_with_other_durations_stay_apart() -> None:
    cdr = _call("c1", "2025-03-03T14:05:09Z", (A, B), 65, "cdr")
    later = _call("c2", "2025-03-03T14:15:09Z", (B, A), 65, "export")
    longer = _call("c3", "2025-03-03T14:05:20Z", (B, A), 95, "export2")
    other_number = _call("c4", "2025-03-03T14:05:20Z", (B, "+15550000000"), 65, "export3")
    assert find_duplicates([cdr, later, longer, other_number]) == []
    assert _marks([cdr, longer], DedupeConfig(call_duration_tolerance_s=30)) == {
        "c3": ("c1", "call_match")}


def test_two_rows_of_one_log_are_two_calls() -> None:
    first = _call("c1", "2025-03-03T14:05:09Z", (A, B), 0, "cdr")
    redial = _call("c2", "2025-03-03T14:05:49Z", (A, B), 0, "cdr")
    assert find_duplicates([first, redial]) == []


def test_each_logged_call_pairs_with_its_closest_copy() -> None:
    # Two short calls 100 s apart, each in both logs: greedy closest-first pairing, and the
    # one-row-per-file guard keeps the two calls apart.
    calls = [_call("a1", "2025-03-03T14:00:00Z", (A, B), 10, "cdr"),
             _call("a2", "2025-03-03T14:01:40Z", (A, B), 10, "cdr"),
             _call("b1", "2025-03-03T14:00:30Z", (B, A), 10, "export"),
             _call("b2", "2025-03-03T14:02:05Z", (B, A), 10, "export")]
    assert _marks(calls) == {"b1": ("a1", "call_match"), "b2": ("a2", "call_match")}


def test_missing_duration_counts_as_zero() -> None:
    cdr = _call("c1", "2025-03-03T14:05:09Z", (A, B), 0, "cdr")
    export = _call("c2", "2025-03-03T14:05:19Z", (A, B), None, "export")
    answered = _call("c3", "2025-03-03T14:05:19Z", (A, B), None, "export2")
    assert _marks([cdr, export]) == {"c2": ("c1", "call_match")}
    long_call = _call("c4", "2025-03-03T14:05:09Z", (A, B), 300, "cdr2")
    assert find_duplicates([long_call, answered]) == []


def test_survivor_has_more_participants_then_smallest_id() -> None:
    plain = _call("c1", "2025-03-03T14:05:09Z", (A, B), 65, "cdr")
    richer = _call("c9", "2025-03-03T14:05:10Z", (A, B), 65, "export", extra=1)
    twin = _call("c5", "2025-03-03T14:05:11Z", (A, B), 65, "other")
    assert _marks([plain, richer, twin]) == {
        "c1": ("c9", "call_match"), "c5": ("c9", "call_match")}
    assert _marks([twin, plain]) == {"c5": ("c1", "call_match")}


def test_chained_near_matches_form_one_group() -> None:
    # A~B and B~C, A and C 200 s apart (over the 120 s tolerance): one group, flagged as chained.
    chain = [_call("a", "2025-03-03T14:00:00Z", (A, B), 30, "f1"),
             _call("b", "2025-03-03T14:01:40Z", (A, B), 30, "f2"),
             _call("c", "2025-03-03T14:03:20Z", (A, B), 30, "f3")]
    result = dedupe_events(chain)
    assert result.marks == [DuplicateMark("b", "a", "call_match"),
                            DuplicateMark("c", "a", "call_match")]
    assert result.groups == 1 and result.chained_groups == 1


def test_same_event_id_twice_is_one_event() -> None:
    cdr = _call("c1", "2025-03-03T14:05:09Z", (A, B), 65, "cdr")
    export = _call("c2", "2025-03-03T14:05:49Z", (B, A), 65, "export")
    result = dedupe_events([cdr, copy.deepcopy(cdr), export])
    assert result.events == 2
    assert result.marks == [DuplicateMark("c2", "c1", "call_match")]


# --- messages -----------------------------------------------------------------------------------


def test_same_text_between_same_people_within_tolerance_merges() -> None:
    cdr = _message("m1", "2025-03-03T14:05:09Z", (A, B), "On my way, 10 min", "cdr")
    export = _message("m2", "2025-03-03T14:05:39Z", (B, "15555215554"), "on my way 10 min!",
                      "export")
    other_text = _message("m3", "2025-03-03T14:05:20Z", (A, B), "Running late", "export2")
    later = _message("m4", "2025-03-03T14:10:09Z", (A, B), "On my way, 10 min", "export3")
    assert _marks([cdr, export, other_text, later]) == {"m2": ("m1", "message_match")}


def test_repeated_text_in_one_export_stays_two_messages() -> None:
    first = _message("m1", "2025-03-03T14:05:09Z", (A, B), "ok", "export")
    again = _message("m2", "2025-03-03T14:05:30Z", (A, B), "ok", "export")
    assert find_duplicates([first, again]) == []


# --- invariants ---------------------------------------------------------------------------------


EMAILS = [native_email(), dat_email(), printed_email(),
          printed_email(SCANNED, "scans/scan-1.tif", "tiff"),
          _email("mail/q1-resent.eml", "eml", "msg:0", message_id="<two@example.com>")]
NUMBERS = [A, "15555215554", B, "+15550000001"]


@st.composite
def _calls_and_messages(draw: st.DrawFn) -> list[dict[str, Any]]:
    events = []
    for n in range(draw(st.integers(0, 14))):
        first, second = draw(st.lists(st.sampled_from(NUMBERS), min_size=2, max_size=2))
        seconds = draw(st.integers(0, 400))
        start = f"2025-03-03T14:{seconds // 60:02d}:{seconds % 60:02d}Z"
        file = draw(st.sampled_from(["cdr", "export", "other"]))
        if draw(st.booleans()):
            duration = draw(st.sampled_from([None, 0, 3, 60, 62]))
            events.append(_call(f"e{n:02d}", start, (first, second), duration, file,
                                draw(st.sampled_from(["outgoing", "incoming"])),
                                draw(st.integers(0, 1))))
        else:
            text = draw(st.sampled_from(["ok", "OK!", "see you", None]))
            events.append(_message(f"e{n:02d}", start, (first, second), text, file))
    return events


@settings(max_examples=120, deadline=None)
@given(events=_calls_and_messages(), emails=st.lists(st.sampled_from(EMAILS), unique_by=id),
       seed=st.integers(0, 2**32 - 1))
def test_marks_ignore_input_order_and_earlier_marks(
    events: list[dict[str, Any]], emails: list[dict[str, Any]], seed: int,
) -> None:
    pool = [*events, *copy.deepcopy(emails)]
    marks = find_duplicates(pool)
    shuffled = pool[:]
    random.Random(seed).shuffle(shuffled)
    assert find_duplicates(shuffled) == marks

    by_id = {m.event_id: m for m in marks}
    marked = copy.deepcopy(shuffled)
    for event in marked:
        if event["id"] in by_id:
            event["duplicate_of"] = by_id[event["id"]].duplicate_of
            event["duplicate_reason"] = by_id[event["id"]].reason
    assert find_duplicates(marked) == marks

    ids = {e["id"] for e in pool}
    assert [m.event_id for m in marks] == sorted(by_id)
    assert all(m.duplicate_of in ids and m.duplicate_of not in by_id for m in marks)
    survivors = {m.duplicate_of for m in marks}
    files = {e["id"]: e["source"]["sha256"] for e in pool if e["type"] in ("call", "message")}
    for survivor in survivors & files.keys():
        group = [survivor, *(m.event_id for m in marks if m.duplicate_of == survivor)]
        assert len({files[i] for i in group}) == len(group)  # one row per file in a group
