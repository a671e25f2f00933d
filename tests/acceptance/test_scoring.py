"""The acceptance scoring functions on small hand-made truth and export dicts: right answers
score 1.0, and each kind of wrong answer (missed, over-merged, namesakes joined, phones not in
E.164) lowers the score by the amount worked out by hand."""

from __future__ import annotations

from typing import Any

import pytest

from tests.acceptance.scoring import (
    match_truth,
    namesake_merges,
    non_e164_phones,
    score_duplicates,
    score_persons,
)


def _truth_event(eid: str, etype: str, start: str, *values: str) -> dict[str, Any]:
    kind = "phone" if etype in ("call", "message") else "email"
    return {"id": eid, "type": etype, "start": start, "sources": [],
            "participants": [{"role": "x", "kind": kind, "value": v, "person": None}
                             for v in values]}


def _exported(eid: str, etype: str, start: str | None, *values: str,
              duplicate_of: str | None = None) -> dict[str, Any]:
    kind = "phone" if etype in ("call", "message") else "email"
    return {"id": eid, "type": etype, "start": start, "duplicate_of": duplicate_of,
            "source": {"path": f"{eid}.src", "locator": None, "page": None, "row": None,
                       "bates": None},
            "participants": [{"role": "x", "kind": kind, "value": v, "normalized": v}
                             for v in values]}


A, B, C = "+12125550101", "+12125550102", "+12125550103"
TRUTH_EVENTS = {"events": [
    # One call seen by a CDR and (40 s later) by a phone export: two sources.
    _truth_event("t1", "call", "2025-03-03T10:00:00Z", A, B),
    # Another call between the same numbers an hour later.
    _truth_event("t2", "call", "2025-03-03T11:00:00Z", A, B),
    # An email and a forward quoting it the next day: two events, not duplicates.
    _truth_event("t3", "email", "2025-03-03T12:00:00Z", "a@x.test", "b@y.test"),
    _truth_event("t4", "email", "2025-03-04T09:00:00Z", "b@y.test", "c@z.test"),
]}


def _copies(**duplicate_of: str) -> list[dict[str, Any]]:
    events = [
        _exported("cdr", "call", "2025-03-03T10:00:00Z", A, B),
        _exported("export", "call", "2025-03-03T10:00:40Z", A, B),
        _exported("later", "call", "2025-03-03T11:00:00Z", A, B),
        _exported("eml1", "email", "2025-03-03T12:00:00Z", "a@x.test", "b@y.test"),
        _exported("eml2", "email", "2025-03-03T12:00:00Z", "a@x.test", "b@y.test"),
        _exported("pdf", "email", "2025-03-03T12:00:30Z", "a@x.test", "b@y.test"),
        _exported("fwd", "email", "2025-03-04T09:00:00Z", "b@y.test", "c@z.test"),
        _exported("memo", "document", "2025-03-03T12:00:00Z"),
        _exported("stray", "call", "2025-06-01T00:00:00Z", C, B),
    ]
    for event in events:
        event["duplicate_of"] = duplicate_of.get(event["id"])
    return events


def test_match_truth_maps_copies_and_ignores_documents_and_strays() -> None:
    mapping = match_truth(TRUTH_EVENTS["events"], _copies())
    assert mapping == {"cdr": "t1", "export": "t1", "later": "t2", "eml1": "t3", "eml2": "t3",
                       "pdf": "t3", "fwd": "t4"}


def test_match_truth_prefers_more_shared_identifiers_then_nearer_time() -> None:
    truth = [_truth_event("near", "email", "2025-01-01T00:00:50Z", "a@x.test", "q@x.test"),
             _truth_event("far", "email", "2025-01-01T00:01:20Z", "a@x.test", "b@x.test")]
    exported = [_exported("e", "email", "2025-01-01T00:00:00Z", "a@x.test", "b@x.test")]
    assert match_truth(truth, exported) == {"e": "far"}
    truth[1]["participants"][1]["value"] = "q@x.test"
    assert match_truth(truth, exported) == {"e": "near"}


def test_perfect_dedupe_scores_one() -> None:
    events = _copies(export="cdr", eml2="eml1", pdf="eml2")  # a chain ends at eml1
    precision, recall, details = score_duplicates(TRUTH_EVENTS, events)
    assert (precision, recall) == (1.0, 1.0)
    assert details["pairs_true"] == details["pairs_correct"] == 1 + 3
    assert details["unmapped_events"] == 1  # the stray call


def test_no_dedupe_has_full_precision_and_no_recall() -> None:
    precision, recall, details = score_duplicates(TRUTH_EVENTS, _copies())
    assert (precision, recall) == (1.0, 0.0)
    assert details["split_truth_events"] == 2
    assert {x["truth_event"] for x in details["split_examples"]} == {"t1", "t3"}


def test_merging_a_forward_into_its_original_costs_precision() -> None:
    events = _copies(export="cdr", eml2="eml1", pdf="eml1", fwd="eml1")
    precision, recall, details = score_duplicates(TRUTH_EVENTS, events)
    # Predicted: cdr-export (1) + the four emails (6) = 7 pairs, 4 of them true.
    assert details["pairs_predicted"] == 7
    assert precision == pytest.approx(4 / 7)
    assert recall == 1.0
    assert details["merged_examples"] == [{"survivor": "eml1", "truth_events": ["t3", "t4"]}]


def test_merging_distinct_calls_and_missing_the_skewed_copy() -> None:
    events = _copies(later="cdr", eml2="eml1", pdf="eml1")
    precision, recall, _ = score_duplicates(TRUTH_EVENTS, events)
    # Predicted: cdr-later (wrong) + 3 email pairs; true: cdr-export + 3 email pairs.
    assert precision == pytest.approx(3 / 4)
    assert recall == pytest.approx(3 / 4)


TRUTH_PERSONS: dict[str, Any] = {
    "persons": [
        {"id": "p1", "name": "Ann Lee", "namesake_group": "ng-1",
         "identifiers": [{"kind": "email", "value": "ann.lee@x.test"},
                         {"kind": "phone", "value": "+12125550111"}]},
        {"id": "p2", "name": "Ann Lee", "namesake_group": "ng-1",
         "identifiers": [{"kind": "email", "value": "ann.lee@y.test"},
                         {"kind": "phone", "value": "+12125550122"}]},
        # Three spellings and two phones; the second phone never shows up in the export.
        {"id": "p3", "name": "Bo Roe",
         "identifiers": [{"kind": "email", "value": "bo.roe@z.test"},
                         {"kind": "email", "value": "boroe@z.test"},
                         {"kind": "email", "value": "broe@z.test"},
                         {"kind": "phone", "value": "+12125550133"},
                         {"kind": "phone", "value": "+12125550144"}]},
    ],
    "traps": {"namesakes": [{"id": "namesake-1", "group": "ng-1", "persons": ["p1", "p2"]}]},
}


def _person(pid: str, *values: str) -> dict[str, Any]:
    return {"id": pid, "name": None, "devices": [], "merges": [],
            "identifiers": [{"kind": "phone" if v.startswith("+") else "email",
                             "value": v, "method": "test", "score": 1.0, "evidence": {}}
                            for v in values]}


def test_perfect_clustering_scores_one() -> None:
    exported = [
        _person("x1", "ann.lee@x.test", "+12125550111"),
        _person("x2", "ANN.LEE@y.test", "+12125550122"),  # case does not matter for emails
        _person("x3", "bo.roe@z.test", "boroe@z.test", "broe@z.test", "+12125550133"),
        _person("x4", "outsider@elsewhere.test"),  # unknown to the truth: not scored
    ]
    f1, details = score_persons(TRUTH_PERSONS, exported)
    assert f1 == 1.0
    assert details["identifiers_common"] == 8
    assert details["identifiers_truth_only"] == 1
    assert details["identifiers_export_only"] == 1
    assert namesake_merges(TRUTH_PERSONS, exported) == 0


def test_unlinked_spellings_cost_recall() -> None:
    exported = [
        _person("x1", "ann.lee@x.test", "+12125550111"),
        _person("x2", "ann.lee@y.test", "+12125550122"),
        _person("x3", "bo.roe@z.test", "+12125550133"),
        _person("x4", "boroe@z.test"),
        _person("x5", "broe@z.test"),
    ]
    f1, details = score_persons(TRUTH_PERSONS, exported)
    # True pairs 1 + 1 + C(4,2)=6 -> 8; predicted 3, all right: P = 1, R = 3/8.
    assert details["precision"] == 1.0
    assert details["recall"] == pytest.approx(3 / 8)
    assert f1 == pytest.approx(2 * (3 / 8) / (1 + 3 / 8))
    assert details["split_examples"] == [{"truth_person": "p3", "exported": 3}]


def test_merging_namesakes_by_name_is_caught() -> None:
    exported = [
        _person("x1", "ann.lee@x.test", "+12125550111", "ann.lee@y.test", "+12125550122"),
        _person("x3", "bo.roe@z.test", "boroe@z.test", "broe@z.test", "+12125550133"),
    ]
    f1, details = score_persons(TRUTH_PERSONS, exported)
    # Predicted pairs C(4,2)=6 + 6 = 12, true 1 + 1 + 6 = 8, all 8 predicted: P = 8/12.
    assert details["precision"] == pytest.approx(8 / 12)
    assert details["recall"] == 1.0
    assert f1 == pytest.approx(0.8)
    assert details["merged_examples"] == [{"exported": "x1", "truth_persons": ["p1", "p2"]}]
    assert namesake_merges(TRUTH_PERSONS, exported) == 1


def test_namesakes_joined_through_one_identifier_only() -> None:
    exported = [_person("x1", "ann.lee@x.test"), _person("x2", "+12125550111", "ann.lee@y.test"),
                _person("x3", "+12125550122")]
    assert namesake_merges(TRUTH_PERSONS, exported) == 1
    # Without a traps object the persons' namesake_group is used.
    legacy = {"persons": TRUTH_PERSONS["persons"]}
    assert namesake_merges(legacy, exported) == 1


def test_nothing_in_common_scores_zero() -> None:
    f1, details = score_persons(TRUTH_PERSONS, [_person("x1", "someone@else.test")])
    assert f1 == 0.0 and details["identifiers_common"] == 0


def test_an_identifier_claimed_twice_is_counted_as_a_conflict() -> None:
    exported = [_person("x1", "ann.lee@x.test"), _person("x2", "ann.lee@x.test")]
    _, details = score_persons(TRUTH_PERSONS, exported)
    assert details["identifier_conflicts"] == 1


def test_truth_without_identifier_lists_falls_back_to_emails_and_phones() -> None:
    truth = {"persons": [{"id": "p1", "emails": ["A@x.test"], "phones": ["+12125550111"]}]}
    f1, _ = score_persons(truth, [_person("x1", "a@x.test", "+12125550111")])
    assert f1 == 1.0
    f1, _ = score_persons(truth, [_person("x1", "a@x.test"), _person("x2", "+12125550111")])
    assert f1 == 0.0


def test_non_e164_phones_counts_possible_numbers_only_and_hides_values() -> None:
    records = [
        {"id": "d1", "kind": "phone", "value": "+12125550134"},
        {"id": "d2", "kind": "phone", "value": "212-555-0134"},
        {"id": "d3", "kind": "phone", "value": "611"},  # a short code, no number to format
        {"id": "d4", "kind": "handle", "value": "2125550134"},
        _person("p1", "+447700900123", "x@y.test"),
        {"id": "p2", "identifiers": [{"kind": "phone", "value": "+44 7700 900123"},
                                     {"kind": "phone", "value": "unknown"}],
         "devices": [{"kind": "phone", "value": "15550197321"},
                     {"kind": "phone", "value": "+15550197321"}]},
    ]
    bad = non_e164_phones(records)
    assert bad == ["1", "5/identifiers/0", "5/devices/0"]
    shown = "".join(bad)
    assert not any(v in shown for v in ("2125550134", "7700", "5550197321", "555-0134"))
    assert non_e164_phones(records[:1] + records[2:4]) == []
