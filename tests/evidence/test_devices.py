"""Device cleanup: phones to E.164, IMEI Luhn checks, emails, handles, junk and short codes."""

import pytest

from chrono.core.config import IdentityConfig
from chrono.evidence.corrections import Correction
from chrono.evidence.devices import (
    IdentifierRow,
    clean_identifier,
    device_id,
    imeis_in_attributes,
    luhn_valid,
    plan_devices,
)


@pytest.mark.parametrize("raw", ["+1 (555) 521-5554", "15555215554", "555-521-5554",
                                 "555.521.5554", "tel:+15555215554"])
def test_phone_forms_clean_to_one_e164(raw: str) -> None:
    result = clean_identifier("phone", raw, "US")
    assert result.value == "+15555215554"
    assert result.action == "normalized"
    assert result.reason == "possible_e164"  # 555 numbers are not assigned in the US plan


def test_clean_e164_is_kept_and_valid_numbers_say_so() -> None:
    kept = clean_identifier("phone", "+15555215554")
    assert (kept.action, kept.reason) == ("kept", "possible_e164")
    london = clean_identifier("phone", "+44 20 7946 0958")
    assert (london.value, london.reason) == ("+442079460958", "valid_e164")


def test_default_region_decides_national_numbers() -> None:
    assert clean_identifier("phone", "020 7946 0958", "GB").value == "+442079460958"
    assert clean_identifier("phone", "020 7946 0958", "US").action == "dropped"


@pytest.mark.parametrize(("kind", "raw"), [
    ("phone", "0"), ("phone", "unknown"), ("handle", "Unknown"), ("phone", "000-000-0000"),
    ("email", "N/A"), ("handle", "@anonymous"), ("phone", "Private"),
])
def test_junk_values_are_dropped(kind: str, raw: str) -> None:
    result = clean_identifier(kind, raw)
    assert (result.value, result.action, result.reason) == (None, "dropped", "junk_value")


@pytest.mark.parametrize(("kind", "raw"), [("phone", "611"), ("handle", "611"),
                                           ("phone", "22333"), ("handle", "*86")])
def test_short_codes_are_dropped(kind: str, raw: str) -> None:
    assert clean_identifier(kind, raw).reason == "short_code"


def test_short_code_limit_is_configurable() -> None:
    config = IdentityConfig(min_phone_digits=4)
    assert clean_identifier("handle", "611", config=config).reason == "short_code"
    assert clean_identifier("handle", "22333", config=config).action == "kept"


def test_local_number_without_area_code_is_incomplete() -> None:
    assert clean_identifier("phone", "521-5554").reason == "incomplete_phone"


def test_junk_list_is_configurable() -> None:
    config = IdentityConfig(junk_values=["switchboard"])
    assert clean_identifier("handle", "Switchboard", config=config).reason == "junk_value"
    assert clean_identifier("handle", "unknown", config=config).action == "kept"


def test_imei_luhn() -> None:
    assert luhn_valid("490154203237518")
    assert not luhn_valid("490154203237519")
    good = clean_identifier("imei", "49-015420-323751-8")
    assert (good.value, good.action, good.reason) == ("490154203237518", "normalized",
                                                      "valid_imei")
    assert clean_identifier("imei", "490154203237518").action == "kept"
    assert clean_identifier("imei", "490154203237519").reason == "invalid_imei"
    assert clean_identifier("imei", "49015420323751").reason == "invalid_imei"  # 14 digits


@pytest.mark.parametrize(("raw", "value"), [
    ("Jane.Roe@Example.COM", "jane.roe@example.com"),
    ("mailto:bob@example.org", "bob@example.org"),
    ("<ops+alerts@mail.example.co.uk>", "ops+alerts@mail.example.co.uk"),
])
def test_emails_are_lower_cased(raw: str, value: str) -> None:
    result = clean_identifier("email", raw)
    assert (result.value, result.action, result.reason) == (value, "normalized", "valid_email")


@pytest.mark.parametrize("raw", ["jane@", "@example.com", "jane@@example.com", "jane@example",
                                 "jane doe@example.com", "jane..doe@example.com",
                                 "jane@exa_mple.com", "a" * 65 + "@example.com"])
def test_invalid_emails_are_dropped(raw: str) -> None:
    result = clean_identifier("email", raw)
    assert (result.value, result.action, result.reason) == (None, "dropped", "invalid_email")


def test_handles() -> None:
    assert clean_identifier("handle", "@BobStone").value == "bobstone"
    assert clean_identifier("handle", "bobstone").action == "kept"
    assert clean_identifier("handle", "bob stone").reason == "invalid_handle"
    assert clean_identifier("handle", "  ").reason == "empty_value"


def test_imeis_in_attributes() -> None:
    assert imeis_in_attributes({"IMEI": "490154203237518", "imei_2": 35, "other": "x"}) == [
        "35", "490154203237518"]
    assert imeis_in_attributes(None) == []


def _rows() -> list[IdentifierRow]:
    return [
        IdentifierRow("i1", "phone", "+15555215554"),
        IdentifierRow("i2", "phone", "555-521-5554"),
        IdentifierRow("i3", "phone", "15555215554"),
        IdentifierRow("i4", "handle", "611"),
        IdentifierRow("i5", "email", "bob@example.org"),
        IdentifierRow("i6", "handle", "@bob"),
        IdentifierRow("i7", "handle", "bob"),
    ]


def test_plan_merges_same_cleaned_values_with_a_reason_for_every_identifier() -> None:
    plan = plan_devices(_rows(), [])
    changes = {c["identifier_id"]: c for c in plan.changes}
    assert set(changes) == {f"i{n}" for n in range(1, 8)}
    phone = device_id("phone", "+15555215554")
    assert changes["i1"] == {"identifier_id": "i1", "device_id": phone, "action": "kept",
                             "reason": "possible_e164"}
    assert {changes[i]["action"] for i in ("i2", "i3")} == {"merged"}
    assert {changes[i]["reason"] for i in ("i2", "i3")} == {"same_cleaned_value"}
    assert changes["i4"] == {"identifier_id": "i4", "device_id": None, "action": "dropped",
                             "reason": "short_code"}
    assert changes["i7"]["action"] == "kept" and changes["i6"]["action"] == "merged"
    devices = {d["device_id"]: d for d in plan.devices}
    assert devices[phone]["identifier_count"] == 3
    assert len(devices) == 3
    assert plan.counts()["identifiers_dropped"] == 1


def _correction(n: int, action: str, groups: list[list[str]]) -> Correction:
    from datetime import UTC, datetime

    return Correction(n, datetime(2025, 1, n, tzinfo=UTC), "tester", "device", action, [],
                      groups)


def test_plan_replays_device_merges_and_unmerges() -> None:
    phone, email = device_id("phone", "+15555215554"), device_id("email", "bob@example.org")
    handle = device_id("handle", "bob")
    merged = plan_devices(_rows(), [_correction(1, "merge", [["i5"], ["i1", "i2"], ["i7"]])])
    into = {d["device_id"]: d["merged_into"] for d in merged.devices}
    assert into == {email: None, phone: email, handle: email}

    undone = plan_devices(_rows(), [
        _correction(1, "merge", [["i5"], ["i1", "i2"], ["i7"]]),
        _correction(2, "unmerge", [["i5"], ["i1", "i2", "i3"], ["i6", "i7"]]),
    ])
    assert all(d["merged_into"] is None for d in undone.devices)

    split = plan_devices(_rows(), [_correction(1, "unmerge", [["i1"], ["i2"], ["i3"]])])
    changes = {c["identifier_id"]: c for c in split.changes}
    assert len({changes[i]["device_id"] for i in ("i1", "i2", "i3")}) == 3
    assert changes["i1"]["device_id"] == phone
    assert changes["i2"]["reason"] == "manual_unmerge"
    assert plan_devices(_rows(), []).devices == plan_devices(list(reversed(_rows())), []).devices
