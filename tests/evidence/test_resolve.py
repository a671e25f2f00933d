"""Identity resolution: deterministic links, email variants, name matching, constraints, order."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chrono.core.config import IdentityConfig
from chrono.evidence.resolve import Constraints, Resolution, normalized_name, resolve

COLUMNS = ("obs_id", "name", "email", "phone", "handle", "method", "evidence", "group")
BENCH = Path(__file__).resolve().parents[2] / "bench" / "resolve.py"


def bench() -> ModuleType:
    """bench/resolve.py, whose generator the benchmark uses, under a name of its own."""
    if "bench_resolve" not in sys.modules:
        spec = importlib.util.spec_from_file_location("bench_resolve", BENCH)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules["bench_resolve"] = module
        spec.loader.exec_module(module)
    return sys.modules["bench_resolve"]


def frame(*rows: dict[str, Any]) -> pl.DataFrame:
    filled = [{"method": "participant", **row} for row in rows]
    for i, row in enumerate(filled):
        row.setdefault("obs_id", f"o{i:03d}")
        row.setdefault("evidence", f"ev{i:03d}")
    return pl.DataFrame(filled, schema=dict.fromkeys(COLUMNS, pl.String))


def person_of(result: Resolution) -> dict[str, str]:
    return dict(result.clusters.select("key", "person").iter_rows())


def row(result: Resolution, key: str) -> dict[str, Any]:
    return result.clusters.filter(pl.col("key") == key).row(0, named=True)


def obs_person(result: Resolution) -> dict[str, Any]:
    return dict(result.obs_person.iter_rows())


# ---------------------------------------------------------------- rule 1: deterministic


def test_row_and_group_links_are_deterministic() -> None:
    result = resolve(frame(
        {"name": "Jane Doe", "email": "jane@x.test", "phone": "+15550001", "method": "contact"},
        {"name": "Jane Doe", "phone": "+15550002", "group": "card-1", "method": "contact"},
        {"name": "Jane Doe", "phone": "+15550001", "group": "card-1", "method": "contact"},
        {"name": "J Doe", "email": "jane@x.test", "handle": "@janed", "method": "participant"},
        {"name": "Bob Roe", "phone": "+15559999"},
    ))
    people = person_of(result)
    assert {people[k] for k in ("email:jane@x.test", "phone:+15550001", "phone:+15550002",
                                "handle:@janed")} == {"email:jane@x.test"}
    assert people["phone:+15559999"] == "phone:+15559999"
    assert row(result, "email:jane@x.test")["method"] == "seed"
    assert row(result, "phone:+15550002")["method"] == "contact"
    assert row(result, "handle:@janed")["method"] == "shared_identifier"
    assert set(result.clusters["score"].to_list()) == {1.0}
    names = dict(result.names.iter_rows())
    assert names["email:jane@x.test"] == "Jane Doe"
    assert names["phone:+15559999"] == "Bob Roe"
    assert set(obs_person(result).values()) == {"email:jane@x.test", "phone:+15559999"}


def test_name_only_row_of_a_group_goes_with_the_group() -> None:
    result = resolve(frame(
        {"obs_id": "a", "name": "Carla Diaz", "group": "card", "method": "contact"},
        {"obs_id": "b", "phone": "+15550100", "group": "card", "method": "contact"},
    ))
    assert obs_person(result) == {"a": "phone:+15550100", "b": "phone:+15550100"}


def test_evidence_is_sorted_unique_and_bounded() -> None:
    rows: list[dict[str, Any]] = [{"email": "busy@x.test", "evidence": f"ev{i:03d}"}
                                  for i in range(45, 10, -1)]
    rows += [{"email": "busy@x.test", "evidence": "ev020"}, {"email": "busy@x.test",
                                                             "evidence": None}]
    result = resolve(frame(*rows))
    evidence = row(result, "email:busy@x.test")["evidence"]
    assert evidence == [f"ev{i:03d}" for i in range(11, 31)]


def test_input_errors_name_counts_only() -> None:
    with pytest.raises(ValueError, match="1 duplicate obs_id") as caught:
        resolve(frame({"obs_id": "x", "email": "secret@x.test"},
                      {"obs_id": "x", "email": "other@x.test"}))
    assert "secret" not in str(caught.value)
    with pytest.raises(ValueError, match="obs_id column"):
        resolve(pl.DataFrame({"email": ["a@x.test"]}))


def test_empty_and_keyless_input() -> None:
    empty = resolve(pl.DataFrame(schema={"obs_id": pl.String}))
    assert empty.clusters.is_empty() and empty.obs_person.is_empty()
    assert empty.clusters.columns == ["key", "person", "method", "score", "evidence"]
    only_names = resolve(frame({"obs_id": "a", "name": "Ann Lee"}, {"obs_id": "b"}))
    assert obs_person(only_names) == {"a": "name:ann lee", "b": None}


def test_normalized_name() -> None:
    names = pl.Series(["  Doe,  Jane ", "JOSÉ  Müller-Smith", "Dr. O'Brien Pat", "a@b.test",
                       "12345", None])
    cleaned = pl.select(normalized_name(pl.lit(names))).to_series().to_list()
    assert cleaned == ["jane doe", "jose muller smith", "obrien pat", None, None, None]


# ---------------------------------------------------------------- rule 2: email variants


def test_three_spellings_and_two_phones_are_one_person() -> None:
    result = resolve(frame(
        {"name": "Jane Doe", "email": "jane.doe@x.test", "method": "header_pair"},
        {"name": "Jane Doe", "email": "janedoe@x.test", "method": "header_pair"},
        {"name": "jane doe", "email": "jdoe@x.test", "method": "header_pair"},
        {"name": "Jane Doe", "phone": "+15550001", "group": "c1", "method": "contact"},
        {"name": "Jane Doe", "phone": "+15550002", "group": "c1", "method": "contact"},
        {"name": "Jane Doe", "phone": "+15550001", "email": "jane.doe@x.test"},
    ))
    people = person_of(result)
    assert set(people.values()) == {"email:jane.doe@x.test"}
    assert row(result, "email:janedoe@x.test")["method"] == "email_variant"
    assert row(result, "email:janedoe@x.test")["score"] == 1.0
    spelt = row(result, "email:jdoe@x.test")
    assert spelt["method"] == "email_variant"
    assert IdentityConfig().email_local_threshold <= spelt["score"] < 1.0


def test_addresses_that_are_not_variants_stay_apart() -> None:
    result = resolve(frame(
        # numbered addresses tell namesakes apart
        {"name": "John Smith", "email": "john.smith@x.test"},
        {"name": "John Smith", "email": "john.smith2@x.test"},
        # equal ignoring dots, but shown with different names
        {"name": "Ann Lee", "email": "ann.lee@y.test"},
        {"name": "Anna Leeds", "email": "annlee@y.test"},
        # same name, same local part, other domains: not rule 2 (rule 3 may link them)
        {"name": "Kim Park", "email": "kim@a.test", "phone": "+15550001"},
        {"name": "Kim Park", "email": "kim@b.test", "phone": "+15550002"},
    ))
    emails = [p for k, p in person_of(result).items() if k.startswith("email:")]
    assert len(set(emails)) == len(emails) == 6


def test_a_variant_that_would_join_two_phones_is_skipped() -> None:
    # all three are one spelling; the first and the third each hold a phone, so only one of
    # them may take the phone-less middle one: links go in key order
    result = resolve(frame(
        {"name": "Jane Doe", "email": "jane.doe@x.test", "phone": "+15550001"},
        {"name": "Jane Doe", "email": "janedoe@x.test"},
        {"name": "Jane Doe", "email": "jane_doe@x.test", "phone": "+15550002"},
    ))
    people = person_of(result)
    assert people["email:janedoe@x.test"] == "email:jane.doe@x.test"
    assert people["email:jane_doe@x.test"] == "email:jane_doe@x.test"
    assert people["phone:+15550002"] == "email:jane_doe@x.test"


# ---------------------------------------------------------------- rule 3: names


def test_names_link_clusters_without_conflict() -> None:
    result = resolve(frame(
        {"name": "Maria Gonzalez", "phone": "+15550001"},
        {"name": "Gonzalez, Maria", "email": "mg@home.test"},
        {"name": "Maria Gonzalez", "email": "maria@work.test"},
        {"name": "Maria Gonzalez", "email": "maria@work.test", "phone": "+15550001"},
    ))
    people = person_of(result)
    assert len(set(people.values())) == 1
    joined = row(result, "email:mg@home.test")
    assert joined["method"] == "name_match" and joined["score"] == 1.0


def test_namesakes_with_different_phones_stay_apart() -> None:
    result = resolve(frame(
        {"name": "John Smith", "phone": "+15550001"},
        {"name": "John Smith", "phone": "+15550002"},
        {"name": "John Smith", "email": "john@a.test", "phone": "+15550001"},
        # matches both namesakes equally: ambiguous, merges with neither
        {"name": "John Smith", "email": "jsmith@b.test"},
    ))
    people = person_of(result)
    assert people["phone:+15550002"] != people["phone:+15550001"]
    assert people["email:jsmith@b.test"] == "email:jsmith@b.test"
    assert result.stats["clusters_ambiguous"] >= 1


def test_same_domain_addresses_that_differ_conflict() -> None:
    result = resolve(frame(
        {"name": "Ann Lee", "email": "ann.lee@co.test"},
        {"name": "Ann Lee", "email": "wombat@co.test"},
    ))
    assert len(set(person_of(result).values())) == 2


def test_misspelt_names_match_but_two_real_names_do_not() -> None:
    common = [{"name": "Christina Walker", "phone": "+15550001"}] * 12
    result = resolve(frame(
        *common,
        {"name": "Christnia Walker", "email": "cw@x.test"},  # seen once: a misspelling
        *([{"name": "Christine Walker", "phone": "+15550002"}] * 3),
        {"name": "Christine Walker", "email": "chris.w@y.test"},
    ))
    people = person_of(result)
    assert people["email:cw@x.test"] == people["phone:+15550001"]
    assert people["email:chris.w@y.test"] == people["phone:+15550002"]
    assert people["phone:+15550001"] != people["phone:+15550002"]


def test_name_threshold_is_honoured() -> None:
    rows = ([{"name": "Robert Fuller", "phone": "+15550001"}] * 12
            + [{"name": "Robret Fuller", "email": "rf@x.test"}])
    loose = person_of(resolve(frame(*rows)))
    strict = person_of(resolve(frame(*rows), IdentityConfig(name_threshold=1.0)))
    assert loose["email:rf@x.test"] == loose["phone:+15550001"]
    assert strict["email:rf@x.test"] == "email:rf@x.test"


# ---------------------------------------------------------------- rule 4: name-only


def test_name_only_observations() -> None:
    result = resolve(frame(
        {"obs_id": "p1", "name": "John Smith", "phone": "+15550001"},
        {"obs_id": "p2", "name": "John Smith", "phone": "+15550002"},
        {"obs_id": "q1", "name": "Priya Natarajan", "phone": "+15550003"},
        {"obs_id": "ambiguous", "name": "JOHN SMITH"},
        {"obs_id": "unique", "name": "Natarajan, Priya"},
        {"obs_id": "stranger1", "name": "Tove Lindqvist"},
        {"obs_id": "stranger2", "name": "tove  lindqvist"},
        {"obs_id": "one-token", "name": "Priya"},
    ))
    people = obs_person(result)
    assert people["ambiguous"] is None
    assert people["unique"] == "phone:+15550003"
    assert people["stranger1"] == people["stranger2"] == "name:tove lindqvist"
    assert people["one-token"] == "name:priya"
    assert row(result, "name:tove lindqvist")["evidence"] == ["ev005", "ev006"]
    assert result.stats["name_only_ambiguous"] == 1
    assert result.stats["name_only_attached"] == 1


# ---------------------------------------------------------------- constraints


def test_must_link_merges_and_is_manual() -> None:
    result = resolve(frame({"email": "a@x.test"}, {"phone": "+15550001"}),
                     constraints=Constraints(must_link=[("phone:+15550001", "email:a@x.test")]))
    assert row(result, "phone:+15550001") | {"evidence": None} == {
        "key": "phone:+15550001", "person": "email:a@x.test", "method": "manual",
        "score": 1.0, "evidence": None}


def test_cannot_link_beats_deterministic_evidence() -> None:
    rows = frame(
        {"obs_id": "a", "name": "Jane Doe", "phone": "+15550001", "group": "c1"},
        {"obs_id": "b", "name": "Jane Doe", "phone": "+15550002", "group": "c1"},
        {"obs_id": "c", "email": "jane@x.test", "phone": "+15550002"},
    )
    split = Constraints(cannot_link=[("phone:+15550001", "phone:+15550002")])
    result = resolve(rows, constraints=split)
    people = person_of(result)
    assert people["phone:+15550001"] != people["phone:+15550002"]
    assert people["email:jane@x.test"] == people["phone:+15550002"]
    assert obs_person(result)["b"] == people["phone:+15550002"]
    assert result.stats["links_refused_by_user"] == 1


def test_cannot_link_beats_name_and_variant_rules() -> None:
    rows = frame(
        {"name": "Jane Doe", "email": "jane.doe@x.test"},
        {"name": "Jane Doe", "email": "janedoe@x.test"},
        {"name": "Omar Haddad", "phone": "+15550001"},
        {"name": "Omar Haddad", "email": "omar@y.test"},
    )
    split = Constraints(cannot_link=[("email:jane.doe@x.test", "email:janedoe@x.test"),
                                     ("phone:+15550001", "email:omar@y.test")])
    people = person_of(resolve(rows, constraints=split))
    assert len(set(people.values())) == 4
    together = person_of(resolve(rows))
    assert len(set(together.values())) == 2


def test_must_and_cannot_on_one_pair_keeps_it_apart() -> None:
    pair = ("email:a@x.test", "email:b@x.test")
    result = resolve(frame({"email": "a@x.test"}, {"email": "b@x.test"}),
                     constraints=Constraints(must_link=[pair], cannot_link=[pair]))
    assert len(set(person_of(result).values())) == 2


# ---------------------------------------------------------------- invariants


def canonical(result: Resolution) -> tuple[list[tuple[Any, ...]], ...]:
    return (result.clusters.sort("key").rows(), result.names.sort("person").rows(),
            result.obs_person.sort("obs_id").rows())


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), shuffle=st.randoms(use_true_random=False),
       n_constraints=st.integers(0, 6))
def test_row_order_does_not_matter_and_splits_hold(seed: int, shuffle: random.Random,
                                                   n_constraints: int) -> None:
    observations, _ = bench().synthetic_identities(400, seed=seed)
    keys = sorted({f"email:{e}" for e in observations["email"].drop_nulls()}
                  | {f"phone:{p}" for p in observations["phone"].drop_nulls()})
    pick = random.Random(seed)
    must = [(pick.choice(keys), pick.choice(keys)) for _ in range(n_constraints // 2)]
    cannot = [(pick.choice(keys), pick.choice(keys)) for _ in range(n_constraints)]
    constraints = Constraints(must_link=must, cannot_link=cannot)
    first = resolve(observations, constraints=constraints)
    order = list(range(observations.height))
    shuffle.shuffle(order)
    again = resolve(observations[order], constraints=Constraints(
        must_link=list(reversed(must)), cannot_link=[(b, a) for a, b in reversed(cannot)]))
    assert canonical(first) == canonical(again)
    people = person_of(first)
    for a, b in cannot:
        assert a == b or people[a] != people[b]
    assert set(first.obs_person["obs_id"]) == set(observations["obs_id"])
    assert first.clusters["evidence"].list.len().max() <= 20  # type: ignore[operator]
    assert (first.clusters["score"].is_between(0, 1)).all()
    assert (first.clusters.group_by("person").agg(pl.col("key").min())
            .filter(pl.col("key") != pl.col("person")).is_empty())


def test_200k_synthetic_records_resolve_with_sane_f1() -> None:
    module = bench()
    observations, truth = module.synthetic_identities(200_000, seed=3)
    result = resolve(observations)
    person = (observations.select("obs_id")
              .join(result.obs_person, on="obs_id", how="left", maintain_order="left")["person"])
    scores = module.pairwise_scores(person, truth)
    assert scores["precision"] >= 0.9
    assert scores["recall"] >= 0.75
    assert scores["f1"] >= 0.85
    assert result.stats["observations"] == 200_000
    assert np.isin(result.clusters["method"].unique().to_numpy(),
                   ["seed", "contact", "header_pair", "shared_identifier", "email_variant",
                    "name_match", "owner", "manual"]).all()
