"""Address-list parsing: header, Outlook and load-file spellings into participants."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chrono.evidence.addresses import (
    MAX_PARTICIPANTS,
    make_participant,
    parse_address,
    parse_addresses,
    split_address_list,
)


def triples(value: str, role: str = "to") -> list[tuple[str, str, str | None]]:
    return [(p.kind, p.value, p.name) for p in parse_addresses(value, role)]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('Jane Roe <Jane@Example.com>; "Doe, John" <john@example.com>',
         [("email", "jane@example.com", "Jane Roe"), ("email", "john@example.com", "Doe, John")]),
        ("Roe, Jane <jane@x.com>, bob@x.com",
         [("email", "jane@x.com", "Roe, Jane"), ("email", "bob@x.com", None)]),
        ("Jane Roe [mailto:Jane@X.com]", [("email", "jane@x.com", "Jane Roe")]),
        ("Jane Roe [SMTP:jane@x.com]", [("email", "jane@x.com", "Jane Roe")]),
        ("bob@x.com (Bob Smith)", [("email", "bob@x.com", "Bob Smith")]),
        ("<bob@x.com>,", [("email", "bob@x.com", None)]),
        ("mailto:BOB@x.com", [("email", "bob@x.com", None)]),
        ("'bob@x.com' <bob@x.com>", [("email", "bob@x.com", None)]),
        ("Roe, Jane; Doe, John", [("name", "Roe, Jane", None), ("name", "Doe, John", None)]),
        ("Roe, Jane", [("name", "Roe, Jane", None)]),
        ("Jane Roe, John Doe", [("name", "Jane Roe", None), ("name", "John Doe", None)]),
        ("undisclosed-recipients:;", []),
        ("team: a@x.com, b@x.com;", [("email", "a@x.com", None), ("email", "b@x.com", None)]),
        ("=?iso-8859-1?Q?M=FCller=2C_Heinz?= <hm@example.de>",
         [("email", "hm@example.de", "Müller, Heinz")]),
        ('"John \\"Johnny\\" Doe" <jd@x.com>', [("email", "jd@x.com", 'John "Johnny" Doe')]),
        ("Jane Roe </O=ORG/OU=EXCHANGE/CN=RECIPIENTS/CN=JROE>", [("name", "Jane Roe", None)]),
        ("/O=ORG/OU=EXCHANGE/CN=RECIPIENTS/CN=JROE",
         [("handle", "/O=ORG/OU=EXCHANGE/CN=RECIPIENTS/CN=JROE", None)]),
        ("a@x.com; A@X.com", [("email", "a@x.com", None)]),
        ("", []),
        (" ; , ", []),
    ],
)
def test_spellings(value: str, expected: list[tuple[str, str, str | None]]) -> None:
    assert triples(value) == expected


def test_role_is_applied() -> None:
    (participant,) = parse_addresses("a@x.com", "bcc")
    assert participant.role == "bcc"
    assert parse_addresses(None, "to") == []


def test_pieces_and_direct_construction() -> None:
    pieces = split_address_list('"Roe; Jane" <j@x.com>; b@x.com')
    assert pieces == ['"Roe; Jane" <j@x.com>', "b@x.com"]
    assert parse_address("Jane <j@x.com>") == ("Jane ", "j@x.com")
    assert make_participant("from", None, None) is None
    participant = make_participant("from", "J@X.COM", '"Jane"')
    assert participant is not None and (participant.value, participant.name) == ("j@x.com", "Jane")


def test_pathological_list_is_bounded() -> None:
    value = "; ".join(f"user{i}@example.com" for i in range(MAX_PARTICIPANTS * 2))
    assert len(parse_addresses(value, "to")) == MAX_PARTICIPANTS


_local = st.from_regex(r"[a-z][a-z0-9._-]{0,10}", fullmatch=True)
_domain = st.from_regex(r"[a-z][a-z0-9-]{0,8}\.[a-z]{2,4}", fullmatch=True)
_name = st.from_regex(r"[A-Za-zÀ-ÿ][A-Za-zÀ-ÿ ,.'-]{0,20}[A-Za-zÀ-ÿ]", fullmatch=True)


_people = st.lists(
    st.tuples(_name, _local, _domain), min_size=1, max_size=6, unique_by=lambda t: t[1:]
)


@given(_people)
def test_quoted_names_round_trip(people: list[tuple[str, str, str]]) -> None:
    value = "; ".join(f'"{name}" <{local}@{domain}>' for name, local, domain in people)
    parsed = [(p.value, p.name) for p in parse_addresses(value, "to")]
    expected = [
        (f"{local}@{domain}", " ".join(name.split())) for name, local, domain in people
    ]
    assert parsed == expected


@given(st.text(max_size=300))
def test_never_raises_and_emails_are_lower_case(value: str) -> None:
    for participant in parse_addresses(value, "cc"):
        assert participant.value
        if participant.kind == "email":
            assert participant.value == participant.value.lower() and "@" in participant.value
