"""Identity resolution: observations of emails, phones and handles clustered into persons.

:func:`resolve` takes one row per sighting (``obs_id``, display ``name``, ``email``, ``phone``,
``handle``, ``method``, ``evidence``, ``group``) and answers which identifier keys
(``email:<v>``, ``phone:<v>``, ``handle:<v>``) are one person. Everything is columnar: polars
joins, rapidfuzz's bulk scorers and a numpy union-find; Python loops run only over the few
clusters where a user's constraint or a conflict makes the order of links matter.

The rules, applied in this order, each on the clusters the previous ones left:

0. **manual**: ``Constraints.must_link`` pairs are linked first.
1. **deterministic** (score 1.0): the keys of one row, and of all rows sharing a non-null
   ``group``, are one person. A key's method is that of the strongest row tying it to another
   key: ``owner``, ``contact``, ``header_pair``, else ``shared_identifier``.
2. **email_variant**: two addresses at one domain, shown with one normalised display name, link
   when their local parts are *compatible* (below); the score is their similarity.
3. **name_match**: two clusters link when one of the three most frequent names (two tokens or
   more) of each match. Names compare by first and last token, in either order, middle names and
   initials left out; the score is the smaller Jaro-Winkler of the two token pairs, and must reach
   ``name_threshold``. Two different tokens match only as a misspelling: when the rarer is seen
   at most ``MISSPELLING_SHARE`` as often as the other (``Jonh`` for ``John``, not ``Christine``
   for ``Christina``). A cluster whose best score is reached by two or more clusters that
   conflict with each other is ambiguous and links to none; otherwise a link must be the best
   of at least one of its ends.
4. **name-only observations** (no identifier in the row or its group) attach to the one cluster
   whose names match theirs by rule 3; when two or more clusters match, the observation is
   ambiguous and its ``person`` is null; when none does, it belongs to a name-only person
   ``name:<normalised name>`` shared by the name-only observations of that exact name.

Two clusters **conflict** when both hold a phone (distinct clusters never share one); when
both hold addresses at one domain and none of one's is compatible with one of the other's
there; or when a ``cannot_link`` pair spans them. Handles never conflict. Rules 2 and 3 never
join conflicting clusters: where candidate links reach three or more clusters they are taken
best score first (ties by key) and a link that would create a conflict is skipped. Local parts
are *compatible* when they are equal ignoring dots, underscores, hyphens and ``+tags``; or when
their digits are equal (numbered addresses are how organisations tell namesakes apart) and
either their ``rapidfuzz.fuzz.ratio`` reaches ``email_local_threshold`` or both are spellings
of one shown name (``janedoe``, ``doejane``, ``jdoe``, ``doej``, ``janed``, ``jane`` for Jane
Doe; score ``email_local_threshold`` then).

``cannot_link`` beats every rule, the user's split against deterministic evidence included: a
union that would put the pair in one cluster is refused (links are tried in key order), so a
contact entry listing both numbers leaves the later number out of that person.

A key's ``score`` is 1.0 for rules 0 and 1, else the best score of the links that brought its
rule-1 (rule 2) or rule-2 (rule 3) cluster in; ``evidence`` holds the smallest 20 evidence ids of
the rows showing the key. Every output is a function of the rows' content: ids come from sorted
keys and ties break by key and name, so the order of the rows changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import polars as pl
from rapidfuzz import fuzz, process
from rapidfuzz.distance import JaroWinkler

from chrono.core.config import IdentityConfig

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

MAX_EVIDENCE = 20
TOP_NAMES = 3
"""Names per cluster that take part in name matching (most frequent first)."""
MAX_VARIANT_BLOCK = 200
"""Addresses shown with one display name at one domain beyond which the name is too generic
(``Support``, ``Info``) to mean one person, so rule 2 skips it."""
MISSPELLING_SHARE = 0.1
"""Two near-identical name tokens are one name misspelt only when the rarer is seen at most this
share as often as the other; otherwise they are two names (Christina and Christine)."""
SCORE_DIGITS = 6

_METHOD_RANK = {"owner": 0, "contact": 1, "header_pair": 2}
"""Row methods kept as a key's link method, strongest first; other rows that tie keys give
``shared_identifier``."""
_TITLES = r"\b(mr|mrs|ms|miss|mx|dr|prof|sir|jr|sr|ii|iii|iv|phd|md|esq)\b"
_KINDS = ("email", "phone", "handle")
_COLUMNS = ("obs_id", "name", "email", "phone", "handle", "method", "evidence", "group")


@dataclass(frozen=True)
class Constraints:
    """A user's corrections, as identifier keys."""

    must_link: Sequence[tuple[str, str]] = ()
    """Key pairs a user merged: linked before any other rule."""
    cannot_link: Sequence[tuple[str, str]] = ()
    """Key pairs a user split apart: no rule may put them in one cluster."""


@dataclass(frozen=True)
class Resolution:
    """The clusters, their display names and the person of every observation."""

    clusters: pl.DataFrame
    """``key``, ``person`` (smallest key of the cluster), ``method``, ``score``, ``evidence``."""
    names: pl.DataFrame
    """``person``, ``name``: the most frequent display name (ties: the smallest)."""
    obs_person: pl.DataFrame
    """``obs_id``, ``person`` (null for an ambiguous or empty name-only observation)."""
    stats: Mapping[str, int] = field(default_factory=dict)
    """Counts for logs: observations, keys, persons, links refused, ambiguous observations."""


def normalized_name(raw: pl.Expr) -> pl.Expr:
    """A display name compared across sightings: ``Last, First`` reordered, titles dropped,
    accents stripped, case folded, punctuation to spaces; null for addresses and numbers."""
    text = raw.str.strip_chars()
    text = (pl.when(text.str.count_matches(",") == 1)
            .then(text.str.replace(r"^\s*([^,]+?)\s*,\s*(.+?)\s*$", "$2 $1"))
            .otherwise(text))
    text = (text.str.normalize("NFKD").str.replace_all(r"\p{M}", "").str.to_lowercase()
            .str.replace_all("ß", "ss").str.replace_all(r"['’`]", "")
            .str.replace_all(r"[^\p{L}\p{N}]+", " ").str.replace_all(_TITLES, " ")
            .str.replace_all(r"\s+", " ").str.strip_chars())
    usable = raw.str.contains("@").not_() & text.str.contains(r"\p{L}")
    return pl.when(usable & (text != "")).then(text).otherwise(None)


def resolve(
    observations: pl.DataFrame,
    config: IdentityConfig = IdentityConfig(),  # noqa: B008 - never mutated
    constraints: Constraints = Constraints(),
) -> Resolution:
    """Cluster the identifiers of ``observations`` into persons (see the module docstring)."""
    return _Resolver(_prepare(observations), config, constraints).run()


# ---------------------------------------------------------------- input


def _prepare(observations: pl.DataFrame) -> pl.DataFrame:
    if "obs_id" not in observations.columns:
        raise ValueError("observations need an obs_id column")
    frame = observations.select(
        (pl.col(c).cast(pl.String) if c in observations.columns else pl.lit(None, pl.String))
        .alias(c) for c in _COLUMNS
    )
    missing = frame["obs_id"].null_count()
    if missing:
        raise ValueError(f"observations: {missing} rows without obs_id")
    duplicates = frame.height - frame["obs_id"].n_unique()
    if duplicates:
        raise ValueError(f"observations: {duplicates} duplicate obs_id values")

    def blank_to_null(expr: pl.Expr) -> pl.Expr:
        return pl.when(expr != "").then(expr).otherwise(None)

    # names repeat: clean each distinct one once
    names = (frame.select("name").unique().drop_nulls()
             .with_columns(norm=normalized_name(pl.col("name")))
             .with_columns(shown=pl.when(pl.col("norm").is_not_null()).then(
                 pl.col("name").str.replace_all(r"\s+", " ").str.strip_chars())))
    # a row's unit is its group, or the row itself; units are numbered groups first (sorted),
    # then the ungrouped rows in obs_id order, so the numbering depends on content only
    frame = (
        frame.sort("obs_id").with_row_index("obs_idx")
        .join(names, on="name", how="left", maintain_order="left")
        .with_columns(
            email=blank_to_null(pl.col("email").str.strip_chars().str.to_lowercase()),
            phone=blank_to_null(pl.col("phone").str.strip_chars()),
            handle=blank_to_null(pl.col("handle").str.strip_chars().str.to_lowercase()),
            group=blank_to_null(pl.col("group").str.strip_chars()),
        )
    )
    grouped = pl.col("group").is_not_null()
    n_groups = frame.select(pl.col("group").n_unique() - pl.col("group").null_count().gt(0)
                            .cast(pl.UInt32)).item()
    return frame.with_columns(
        unit=pl.when(grouped).then(pl.col("group").rank("dense") - 1)
        .otherwise(n_groups + (~grouped).cast(pl.Int64).cum_sum() - 1).cast(pl.Int64))


# ---------------------------------------------------------------- union-find


def _compress(parent: IntArray) -> None:
    while True:
        grand = parent[parent]
        if np.array_equal(grand, parent):
            return
        parent[:] = grand


def _components(parent: IntArray, a: IntArray, b: IntArray) -> IntArray:
    """``parent`` (every node pointing at its root) with the edges ``a``-``b`` joined.

    Hooking always points the larger root at the smaller one, so each root is the smallest node
    of its component; rounds repeat only over the edges that still cross two components.
    """
    parent = parent.copy()
    while a.size:
        root_a, root_b = parent[a], parent[b]
        crossing = root_a != root_b
        if not crossing.any():
            break
        a, b = a[crossing], b[crossing]
        root_a, root_b = root_a[crossing], root_b[crossing]
        np.minimum.at(parent, np.maximum(root_a, root_b), np.minimum(root_a, root_b))
        _compress(parent)
    return parent


class _GuardedUnion:
    """A union-find over cluster roots that refuses unions joining forbidden roots.

    Used for the few clusters where order matters; the root of a set is its smallest member.
    """

    def __init__(self, forbidden_pairs: Sequence[tuple[int, int]]) -> None:
        self.parent: dict[int, int] = {}
        self.forbidden: dict[int, set[int]] = {}
        for x, y in forbidden_pairs:
            self.forbidden.setdefault(x, set()).add(y)
            self.forbidden.setdefault(y, set()).add(x)

    def find(self, x: int) -> int:
        parent = self.parent
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while x != root:
            x, parent[x] = parent[x], root
        return root

    def conflict(self, x: int, y: int) -> bool:
        return y in self.forbidden.get(x, ())

    def merge_state(self, root: int, other: int) -> None:
        moved = self.forbidden.pop(other, set())
        for p in moved:
            partners = self.forbidden[p]
            partners.discard(other)
            partners.add(root)
        if moved:
            self.forbidden.setdefault(root, set()).update(moved)

    def union(self, x: int, y: int) -> bool:
        """Join the sets of ``x`` and ``y``; False when that is refused."""
        rx, ry = self.find(x), self.find(y)
        if rx == ry:
            return True
        if self.conflict(rx, ry):
            return False
        root, other = min(rx, ry), max(rx, ry)
        self.parent[other] = root
        self.merge_state(root, other)
        return True


class _ConflictUnion(_GuardedUnion):
    """A guarded union that also refuses joining two clusters whose identifiers conflict."""

    def __init__(self, forbidden_pairs: Sequence[tuple[int, int]], phone: set[int],
                 emails: dict[int, dict[str, list[int]]], compatible: set[tuple[int, int]]) -> None:
        super().__init__(forbidden_pairs)
        self.phone = phone
        self.emails = emails
        self.compatible = compatible

    def conflict(self, x: int, y: int) -> bool:
        if super().conflict(x, y) or (x in self.phone and y in self.phone):
            return True
        ex, ey = self.emails.get(x), self.emails.get(y)
        if not ex or not ey:
            return False
        for domain in ex.keys() & ey.keys():
            if not any((min(a, b), max(a, b)) in self.compatible
                       for a in ex[domain] for b in ey[domain]):
                return True
        return False

    def merge_state(self, root: int, other: int) -> None:
        super().merge_state(root, other)
        if other in self.phone:
            self.phone.add(root)
        moved = self.emails.pop(other, None)
        if moved:
            target = self.emails.setdefault(root, {})
            for domain, keys in moved.items():
                target.setdefault(domain, []).extend(keys)


# ---------------------------------------------------------------- the resolver


class _Resolver:
    def __init__(self, obs: pl.DataFrame, config: IdentityConfig,
                 constraints: Constraints) -> None:
        self.obs = obs
        self.config = config
        self.stats: dict[str, int] = dict.fromkeys(
            ("links_refused_by_user", "conflicts_refused", "clusters_ambiguous",
             "name_only_attached", "name_only_ambiguous"), 0)
        self.stats["observations"] = obs.height
        self._index_nodes(constraints)

    # ------------------------------------------------------------ nodes

    def _index_nodes(self, constraints: Constraints) -> None:
        """Number the keys (sorted, so the smallest key of a cluster is its smallest id) and,
        after them, the units; list which row shows which key."""
        obs = self.obs
        rows = pl.concat([
            obs.select("obs_idx", "unit", "method", "evidence",
                       key=pl.concat_str([pl.lit(f"{kind}:"), pl.col(kind)]))
            for kind in _KINDS
        ]).drop_nulls("key")
        given = pl.Series("key", [k for pair in (*constraints.must_link,
                                                 *constraints.cannot_link) for k in pair],
                          pl.String)
        keys = pl.concat([rows.get_column("key"), given]).unique().sort()
        self.keys = keys
        self.n_keys = keys.len()
        n_units = int(obs.select(pl.col("unit").max().fill_null(-1)).item()) + 1
        self.n_nodes = self.n_keys + n_units
        self.obs = obs.with_columns(unit_id=pl.col("unit") + self.n_keys)
        self.key_rows = (rows.with_columns(key_id=keys.search_sorted(rows["key"]).cast(pl.Int64),
                                           unit_id=pl.col("unit") + self.n_keys)
                         .sort("unit_id", "key_id", "obs_idx"))
        # a row goes with its own smallest key (a refused link can split a group's rows);
        # a row without keys goes with its group, if any, or with its name
        first_key = self.key_rows.group_by("obs_idx").agg(pl.col("key_id").min())
        self.row_node = (self.obs.select("obs_idx", "unit_id")
                         .join(first_key, on="obs_idx", how="left", maintain_order="left")
                         .select(pl.coalesce("key_id", "unit_id")).to_series().to_numpy())
        self.phone_keys = np.flatnonzero(
            keys.str.starts_with("phone:").to_numpy()).astype(np.int64)

        def pair_ids(pairs: Sequence[tuple[str, str]]) -> tuple[IntArray, IntArray]:
            distinct = [(x, y) for x, y in pairs if x != y]
            a = keys.search_sorted(pl.Series([x for x, _ in distinct], dtype=pl.String))
            b = keys.search_sorted(pl.Series([y for _, y in distinct], dtype=pl.String))
            ids = sorted({(min(x, y), max(x, y)) for x, y in zip(a.to_list(), b.to_list(),
                                                                 strict=True)})
            return (np.array([p[0] for p in ids], dtype=np.int64),
                    np.array([p[1] for p in ids], dtype=np.int64))

        self.must = pair_ids(constraints.must_link)
        self.cannot = pair_ids(constraints.cannot_link)
        self._index_emails()

    def _index_emails(self) -> None:
        """Per address: domain, local part without separators or tag, its digits, and the shown
        names (``first last``) whose spellings it is."""
        emails = (
            pl.DataFrame({"key": self.keys, "key_id": np.arange(self.n_keys, dtype=np.int64)})
            .filter(pl.col("key").str.starts_with("email:") & pl.col("key").str.contains("@"))
            .with_columns(address=pl.col("key").str.slice(6))
            .with_columns(
                local=pl.col("address").str.replace(r"@[^@]*$", ""),
                domain=pl.col("address").str.extract(r"@([^@]*)$", 1),
            )
            .with_columns(canon=pl.col("local").str.replace(r"\+.*$", "")
                          .str.replace_all(r"[._\-]", ""))
            .with_columns(digits=pl.col("canon").str.replace_all(r"\D", ""),
                          letters=pl.col("canon").str.replace_all(r"\d", ""))
            .filter(pl.col("canon") != "")
            .select("key_id", "domain", "canon", "digits", "letters")
        )
        shown = (self.key_rows.join(self.obs.select("obs_idx", "norm"), on="obs_idx")
                 .drop_nulls("norm").select("key_id", "norm").unique())
        tokens = pl.col("norm").str.split(" ")
        first, last = tokens.list.first(), tokens.list.last()
        f0, l0 = first.str.slice(0, 1), last.str.slice(0, 1)
        spellings = [first + last, last + first, f0 + last, last + f0, first + l0, first]
        identities = (
            shown.join(emails.select("key_id", "letters"), on="key_id")
            .filter((tokens.list.len() >= 2)
                    & pl.any_horizontal([pl.col("letters") == s for s in spellings]))
            .group_by("key_id").agg(identities=pl.col("norm").unique().sort())
        )
        self.emails = emails.join(identities, on="key_id", how="left")
        self.email_names = shown.join(emails.select("key_id", "domain"), on="key_id")

    # ------------------------------------------------------------ run

    def run(self) -> Resolution:
        identity = np.arange(self.n_nodes, dtype=np.int64)
        manual, _ = self._union_refusing(identity, *self.must)
        linked = self.key_rows.select("unit_id", "key_id")
        deterministic, accepted = self._union_refusing(
            manual, linked["unit_id"].to_numpy(), linked["key_id"].to_numpy())
        self.stats["links_refused_by_user"] = int((~accepted).sum())
        variant, variant_edges = self._merge_clusters(
            deterministic, self._variant_pairs(deterministic), ambiguity=False)
        self._prepare_names()
        named, name_edges = self._merge_clusters(
            variant, self._name_pairs(variant), ambiguity=True)
        unit_person = self._attach_name_only(named)
        return self._answer([manual, deterministic, variant, named],
                            [variant_edges, name_edges], unit_person)

    def _union_refusing(self, parent: IntArray, a: IntArray,
                        b: IntArray) -> tuple[IntArray, BoolArray]:
        """``parent`` with the edges joined, unless that puts a ``cannot_link`` pair together:
        the components holding such a pair are redone edge by edge in the given order."""
        merged = _components(parent, a, b)
        accepted = np.ones(a.size, dtype=np.bool_)
        ca, cb = self.cannot
        broken = merged[ca] == merged[cb]
        if not broken.any():
            return merged, accepted
        bad_roots = np.unique(merged[ca[broken]])
        bad_nodes = np.isin(merged, bad_roots)
        pairs = [(int(x), int(y)) for x, y in zip(parent[ca], parent[cb], strict=True)]
        guard = _GuardedUnion(pairs)
        for i in np.flatnonzero(np.isin(merged[a], bad_roots)):
            accepted[i] = guard.union(int(parent[a[i]]), int(parent[b[i]]))
        merged[bad_nodes] = self._finds(guard, parent[bad_nodes])
        return merged, accepted

    @staticmethod
    def _finds(guard: _GuardedUnion, roots: IntArray) -> IntArray:
        distinct, inverse = np.unique(roots, return_inverse=True)
        found = np.array([guard.find(int(r)) for r in distinct], dtype=np.int64)
        return found[inverse]

    # ------------------------------------------------------------ compatibility

    def _email_scores(self, pairs: pl.DataFrame) -> pl.Series:
        """For ``ka``-``kb`` address pairs at one domain: the compatibility score, or null."""
        attrs = self.emails.select("key_id", "canon", "digits", "identities")
        both = (pairs.select("ka", "kb")
                .join(attrs.rename(lambda c: f"{c}_a"), left_on="ka", right_on="key_id_a",
                      how="left", maintain_order="left")
                .join(attrs.rename(lambda c: f"{c}_b"), left_on="kb", right_on="key_id_b",
                      how="left", maintain_order="left"))
        if both.is_empty():
            return pl.Series("score", [], pl.Float64)
        ratio = process.cpdist(both["canon_a"].fill_null("").to_list(),
                               both["canon_b"].fill_null("").to_list(),
                               scorer=fuzz.ratio, dtype=np.float32, workers=-1) / 100.0
        threshold = self.config.email_local_threshold
        both = both.with_columns(ratio=pl.Series(ratio, dtype=pl.Float64)).with_columns(
            alias=pl.col("identities_a").list.set_intersection(pl.col("identities_b"))
            .list.len().fill_null(0) > 0)
        same_digits = pl.col("digits_a") == pl.col("digits_b")
        score = (pl.when(pl.col("canon_a") == pl.col("canon_b")).then(1.0)
                 .when(same_digits & (pl.col("ratio") >= threshold)).then(pl.col("ratio"))
                 .when(same_digits & pl.col("alias"))
                 .then(pl.max_horizontal(pl.col("ratio"), pl.lit(threshold))))
        return both.select(score.alias("score")).get_column("score")

    def _conflicting(self, pairs: pl.DataFrame, parent: IntArray) -> BoolArray:
        """Per cluster pair ``ca``-``cb``: do their identifiers conflict?"""
        ca, cb = pairs["ca"].to_numpy(), pairs["cb"].to_numpy()
        has_phone = np.zeros(self.n_nodes, dtype=np.bool_)
        has_phone[parent[self.phone_keys]] = True
        conflict = has_phone[ca] & has_phone[cb]
        if self.cannot[0].size:
            la, lb = parent[self.cannot[0]], parent[self.cannot[1]]
            forbidden = pl.DataFrame({"ca": np.minimum(la, lb), "cb": np.maximum(la, lb),
                                      "forbidden": True}).unique()
            conflict |= (pairs.select("ca", "cb")
                         .join(forbidden, on=["ca", "cb"], how="left", maintain_order="left")
                         ["forbidden"].fill_null(False).to_numpy())
        open_pairs = pairs.select("ca", "cb").filter(pl.Series(~conflict))
        cluster_emails = self._cluster_emails(parent)
        cross = (open_pairs
                 .join(cluster_emails.rename({"cluster": "ca", "key_id": "ka"}), on="ca")
                 .join(cluster_emails.rename({"cluster": "cb", "key_id": "kb"}),
                       on=["cb", "domain"]))
        if cross.height:
            bad = (cross.with_columns(ok=self._email_scores(cross).is_not_null())
                   .group_by("ca", "cb", "domain").agg(pl.col("ok").any())
                   .filter(~pl.col("ok")).select("ca", "cb").unique()
                   .with_columns(bad=pl.lit(True)))
            conflict |= (pairs.select("ca", "cb")
                         .join(bad, on=["ca", "cb"], how="left", maintain_order="left")
                         ["bad"].fill_null(False).to_numpy())
        return np.asarray(conflict, dtype=np.bool_)

    def _cluster_emails(self, parent: IntArray) -> pl.DataFrame:
        ids = self.emails["key_id"].to_numpy()
        return pl.DataFrame({"cluster": parent[ids], "key_id": ids,
                             "domain": self.emails["domain"]})

    # ------------------------------------------------------------ rules 2 and 3

    def _variant_pairs(self, parent: IntArray) -> pl.DataFrame:
        """Address pairs shown with one normalised name at one domain and compatible."""
        names = self.email_names.filter(
            pl.len().over("domain", "norm").is_between(2, MAX_VARIANT_BLOCK))
        pairs = (names.join(names, on=["domain", "norm"], suffix="_b")
                 .filter(pl.col("key_id") < pl.col("key_id_b"))
                 .select(ka="key_id", kb="key_id_b").unique())
        pairs = pairs.with_columns(score=self._email_scores(pairs)).drop_nulls("score")
        return self._cluster_pairs(pairs, parent)

    def _cluster_pairs(self, pairs: pl.DataFrame, parent: IntArray) -> pl.DataFrame:
        """Node pairs ``ka``-``kb`` with a score as distinct cluster pairs with their best score."""
        la, lb = parent[pairs["ka"].to_numpy()], parent[pairs["kb"].to_numpy()]
        return (pl.DataFrame({"ca": np.minimum(la, lb), "cb": np.maximum(la, lb),
                              "score": pairs["score"].cast(pl.Float64)})
                .filter(pl.col("ca") != pl.col("cb"))
                .group_by("ca", "cb").agg(pl.col("score").max()).sort("ca", "cb"))

    def _prepare_names(self) -> None:
        """The name universe (two tokens or more) and every pair of it above the threshold.

        Names compare by their first and last tokens (in either order); a token matches
        itself or, as a misspelling, a far more common token (see ``MISSPELLING_SHARE``) with
        Jaro-Winkler at least ``name_threshold``. So the pairs are found from the rare side:
        each name's tokens are swapped for their common spellings and looked up.
        """
        tokens = pl.col("norm").str.split(" ")
        universe = (
            self.obs.select("norm").drop_nulls().group_by("norm").agg(count=pl.len())
            .filter(tokens.list.len() >= 2).sort("norm")
            .with_row_index("name_id").with_columns(pl.col("name_id").cast(pl.Int64))
            .with_columns(first=tokens.list.first(), last=tokens.list.last())
        )
        self.name_ids = universe.select("norm", "name_id")
        spellings = self._common_spellings(universe)
        expanded = (
            universe.select("name_id", "first", "last")
            .join(spellings.rename({"token": "first", "common": "first_b", "score": "s1"}),
                  on="first")
            .join(spellings.rename({"token": "last", "common": "last_b", "score": "s2"}),
                  on="last")
            .select("name_id", "first_b", "last_b", score=pl.min_horizontal("s1", "s2"))
        )
        targets = universe.select("first", "last", name_id_b="name_id")
        pairs = pl.concat([
            expanded.join(targets, left_on=["first_b", "last_b"], right_on=["first", "last"]),
            expanded.join(targets, left_on=["last_b", "first_b"], right_on=["first", "last"]),
        ]).filter(pl.col("name_id") != pl.col("name_id_b"))
        pairs = (pl.concat([pairs.select(i="name_id", j="name_id_b", score="score"),
                            pairs.select(i="name_id_b", j="name_id", score="score")])
                 .group_by("i", "j").agg(pl.col("score").max()))
        ids = universe["name_id"]
        self.name_pairs = pl.concat([pairs, pl.DataFrame({"i": ids, "j": ids, "score": 1.0})])

    def _common_spellings(self, universe: pl.DataFrame) -> pl.DataFrame:
        """``token``, ``common``, ``score``: each name token with itself (1.0) and with the far
        more common tokens it may misspell, blocked on the first letter and the last two."""
        counts = (pl.concat([universe.select(token="first", n="count"),
                             universe.select(token="last", n="count")])
                  .group_by("token").agg(pl.col("n").sum()).sort("token"))
        common = counts.filter(pl.col("n") * MISSPELLING_SHARE >= 1)
        threshold = self.config.name_threshold
        found: list[pl.DataFrame] = []
        for key in (pl.col("token").str.slice(0, 1), pl.col("token").str.slice(-2)):
            left = counts.with_columns(block=key).partition_by("block", as_dict=True)
            right = common.with_columns(block=key).partition_by("block", as_dict=True)
            for block, commons in right.items():
                rares = left.get(block)
                if rares is None:
                    continue
                scores = process.cdist(rares["token"].to_list(), commons["token"].to_list(),
                                       scorer=JaroWinkler.normalized_similarity,
                                       score_cutoff=threshold, dtype=np.float32, workers=-1)
                row, col = np.nonzero(scores)
                found.append(pl.DataFrame({
                    "token": rares["token"].gather(row), "n": rares["n"].gather(row),
                    "common": commons["token"].gather(col),
                    "n_common": commons["n"].gather(col),
                    "score": np.round(scores[row, col].astype(np.float64), SCORE_DIGITS),
                }))
        pairs = (pl.concat(found) if found else pl.DataFrame(schema={
            "token": pl.String, "n": pl.Int64, "common": pl.String, "n_common": pl.Int64,
            "score": pl.Float64}))
        pairs = (pairs.filter((pl.col("token") != pl.col("common"))
                              & (pl.col("n") <= MISSPELLING_SHARE * pl.col("n_common")))
                 .select("token", "common", "score").unique(["token", "common"]))
        return pl.concat([counts.select("token", common="token", score=pl.lit(1.0)), pairs])

    def _top_names(self, parent: IntArray) -> pl.DataFrame:
        """``cluster``, ``name_id``: the most frequent names of every cluster with keys."""
        return (self.obs.select("norm").with_columns(cluster=pl.Series(parent[self.row_node]))
                .filter(pl.col("cluster") < self.n_keys)
                .join(self.name_ids, on="norm")
                .group_by("cluster", "name_id").agg(count=pl.len())
                .sort(["cluster", "count", "name_id"], descending=[False, True, False])
                .group_by("cluster", maintain_order=True).head(TOP_NAMES)
                .select("cluster", "name_id"))

    def _name_pairs(self, parent: IntArray) -> pl.DataFrame:
        top = self._top_names(parent)
        return (top.join(self.name_pairs, left_on="name_id", right_on="i")
                .join(top.rename({"cluster": "cluster_b", "name_id": "j"}), on="j")
                .filter(pl.col("cluster") < pl.col("cluster_b"))
                .group_by(ca="cluster", cb="cluster_b").agg(pl.col("score").max())
                .sort("ca", "cb"))

    def _merge_clusters(self, parent: IntArray, pairs: pl.DataFrame,
                        ambiguity: bool) -> tuple[IntArray, pl.DataFrame]:
        """Join candidate cluster pairs that do not conflict; sets of links reaching three or
        more clusters are taken best first, skipping links that would create a conflict."""
        empty = pl.DataFrame(schema={"ca": pl.Int64, "cb": pl.Int64, "score": pl.Float64})
        if pairs.is_empty():
            return parent, empty
        conflict = self._conflicting(pairs, parent)
        self.stats["conflicts_refused"] = self.stats.get("conflicts_refused", 0) + int(
            conflict.sum())
        pairs = pairs.filter(pl.Series(~conflict))
        if ambiguity:
            pairs = self._unambiguous(pairs, parent)
        if pairs.is_empty():
            return parent, empty
        ca, cb = pairs["ca"].to_numpy(), pairs["cb"].to_numpy()
        merged = _components(parent, ca, cb)
        clusters = np.unique(np.concatenate([ca, cb]))
        roots, sizes = np.unique(merged[clusters], return_counts=True)
        big_roots = roots[sizes >= 3]
        in_big = np.isin(merged[ca], big_roots)
        accepted = pairs.filter(pl.Series(~in_big))
        if big_roots.size:
            big_nodes = np.isin(merged, big_roots)
            guard = self._conflict_union(parent, pairs.filter(pl.Series(in_big)), merged)
            kept = []
            for row_a, row_b, score in pairs.filter(pl.Series(in_big)).sort(
                    ["score", "ca", "cb"], descending=[True, False, False]).iter_rows():
                if guard.find(row_a) != guard.find(row_b) and guard.union(row_a, row_b):
                    kept.append((row_a, row_b, score))
            accepted = pl.concat([accepted, pl.DataFrame(kept, schema=empty.schema,
                                                         orient="row")])
            merged[big_nodes] = self._finds(guard, parent[big_nodes])
        return merged, accepted

    def _conflict_union(self, parent: IntArray, pairs: pl.DataFrame,
                        merged: IntArray) -> _ConflictUnion:
        """A conflict-aware union over the clusters of ``pairs``, with the compatible address
        pairs (same domain, same component) worked out in bulk beforehand."""
        clusters = np.unique(np.concatenate([pairs["ca"].to_numpy(), pairs["cb"].to_numpy()]))
        has_phone = np.zeros(self.n_nodes, dtype=np.bool_)
        has_phone[parent[self.phone_keys]] = True
        phone = {int(c) for c in clusters[has_phone[clusters]]}
        cluster_emails = self._cluster_emails(parent)
        cluster_emails = cluster_emails.filter(
            pl.Series(np.isin(cluster_emails["cluster"].to_numpy(), clusters)))
        cluster_emails = cluster_emails.with_columns(
            component=pl.Series(merged[cluster_emails["cluster"].to_numpy()]))
        emails: dict[int, dict[str, list[int]]] = {}
        for cluster, key_id, domain in cluster_emails.select(
                "cluster", "key_id", "domain").iter_rows():
            emails.setdefault(cluster, {}).setdefault(domain, []).append(key_id)
        same = (cluster_emails.join(cluster_emails, on=["component", "domain"], suffix="_b")
                .filter((pl.col("key_id") < pl.col("key_id_b"))
                        & (pl.col("cluster") != pl.col("cluster_b")))
                .select(ka="key_id", kb="key_id_b"))
        compatible: set[tuple[int, int]] = set()
        if same.height:
            same = same.with_columns(score=self._email_scores(same)).drop_nulls("score")
            compatible = set(same.select("ka", "kb").iter_rows())
        forbidden = [(int(x), int(y)) for x, y in zip(
            parent[self.cannot[0]], parent[self.cannot[1]], strict=True)]
        return _ConflictUnion(forbidden, phone, emails, compatible)

    def _unambiguous(self, pairs: pl.DataFrame, parent: IntArray) -> pl.DataFrame:
        """The links that are a best candidate of one end, between clusters that are not
        ambiguous. A cluster is ambiguous when two of its best candidates conflict with each
        other (two namesakes with their own phones): it cannot tell which it belongs to and
        keeps no link. Best candidates that could be one person (a work address and a personal
        address shown under one name) are all kept."""
        both = pl.concat([pairs.select(x="ca", y="cb", score="score"),
                          pairs.select(x="cb", y="ca", score="score")])
        best = both.filter(pl.col("score") == pl.col("score").max().over("x"))
        tied = best.join(best.group_by("x").agg(n=pl.len()).filter(pl.col("n") >= 2).select("x"),
                         on="x", how="semi").select("x", "y")
        among = (tied.join(tied, on="x", suffix="_b").filter(pl.col("y") < pl.col("y_b"))
                 .select("x", ca="y", cb="y_b"))
        ambiguous = among.filter(pl.Series(self._conflicting(among, parent))
                                 if among.height else pl.lit(False)).select("x").unique()
        self.stats["clusters_ambiguous"] = ambiguous.height
        best_of = best.select(ca=pl.min_horizontal("x", "y"),
                              cb=pl.max_horizontal("x", "y")).unique()
        return (pairs.join(best_of, on=["ca", "cb"], how="semi")
                .join(ambiguous, left_on="ca", right_on="x", how="anti")
                .join(ambiguous, left_on="cb", right_on="x", how="anti")
                .sort("ca", "cb"))

    # ------------------------------------------------------------ rule 4 and the answer

    def _attach_name_only(self, parent: IntArray) -> pl.DataFrame:
        """Per name-only unit: ``cluster`` (the one matching cluster's id, else null) and
        ``name_person`` (``name:<norm>`` when no cluster matches)."""
        units = self.obs.select("unit_id", "norm").with_columns(
            root=pl.Series(parent[self.row_node]))
        name_only = (units.filter(pl.col("root") >= self.n_keys).drop_nulls("norm")
                     .group_by("unit_id", "norm").agg(count=pl.len())
                     .sort(["unit_id", "count", "norm"], descending=[False, True, False])
                     .group_by("unit_id", maintain_order=True).first()
                     .select("unit_id", "norm"))
        top = self._top_names(parent)
        matches = (name_only.join(self.name_ids, on="norm")
                   .join(self.name_pairs, left_on="name_id", right_on="i")
                   .join(top, left_on="j", right_on="name_id")
                   .group_by("unit_id").agg(clusters=pl.col("cluster").unique()))
        out = name_only.join(matches, on="unit_id", how="left").with_columns(
            n=pl.col("clusters").list.len().fill_null(0))
        self.stats["name_only_attached"] = int((out["n"] == 1).sum())
        self.stats["name_only_ambiguous"] = int((out["n"] >= 2).sum())
        return out.select(
            "unit_id",
            cluster=pl.when(pl.col("n") == 1).then(pl.col("clusters").list.first()),
            name_person=pl.when(pl.col("n") == 0)
            .then(pl.concat_str([pl.lit("name:"), pl.col("norm")])),
        )

    def _answer(self, stages: list[IntArray], edges: list[pl.DataFrame],
                name_only: pl.DataFrame) -> Resolution:
        manual, deterministic, variant, final = stages
        key_ids = np.arange(self.n_keys, dtype=np.int64)
        seed = final[key_ids]
        keys = self.keys
        stage = np.select([seed == key_ids, manual[key_ids] == seed,
                           deterministic[key_ids] == seed, variant[key_ids] == seed],
                          [0, 1, 2, 3], default=4)
        scores = np.ones(self.n_keys, dtype=np.float64)
        for stage_no, before, accepted in ((3, deterministic, edges[0]), (4, variant, edges[1])):
            best = np.zeros(self.n_nodes, dtype=np.float64)
            if accepted.height:
                ends = np.concatenate([accepted["ca"].to_numpy(), accepted["cb"].to_numpy()])
                values = np.concatenate([accepted["score"].to_numpy()] * 2)
                np.maximum.at(best, ends, values)
            here = stage == stage_no
            scores[here] = best[before[key_ids[here]]]
        link_method = self._link_methods()
        clusters = (
            pl.DataFrame({"key_id": key_ids, "key": keys, "person": keys.gather(seed),
                          "stage": stage, "score": np.round(scores, SCORE_DIGITS)})
            .join(link_method, on="key_id", how="left")
            .with_columns(method=pl.when(pl.col("stage") == 0).then(pl.lit("seed"))
                          .when(pl.col("stage") == 1).then(pl.lit("manual"))
                          .when(pl.col("stage") == 2)
                          .then(pl.col("link_method").fill_null("shared_identifier"))
                          .when(pl.col("stage") == 3).then(pl.lit("email_variant"))
                          .otherwise(pl.lit("name_match")))
        )
        key_evidence = (self.key_rows.drop_nulls("evidence").group_by("key_id")
                        .agg(evidence=pl.col("evidence").unique().sort().head(MAX_EVIDENCE)))
        clusters = clusters.join(key_evidence, on="key_id", how="left").select(
            "key", "person", "method", "score",
            pl.col("evidence").fill_null(pl.lit([], pl.List(pl.String))))

        unit_root = final[self.row_node]
        key_names = pl.DataFrame({"person_id": key_ids, "key_person": keys})
        attributed = (
            self.obs.select("obs_id", "unit_id", "shown", "evidence")
            .with_columns(root=pl.Series(unit_root))
            .join(name_only, on="unit_id", how="left")
            .with_columns(person_id=pl.when(pl.col("root") < self.n_keys)
                          .then(pl.col("root")).otherwise(pl.col("cluster")))
            .join(key_names, on="person_id", how="left")
            .with_columns(person=pl.coalesce("key_person", "name_person"))
        )
        name_people = (
            attributed.filter(pl.col("person").str.starts_with("name:"))
            .group_by("person")
            .agg(evidence=pl.col("evidence").drop_nulls().unique().sort().head(MAX_EVIDENCE))
            .select(key="person", person="person", method=pl.lit("seed"), score=pl.lit(1.0),
                    evidence="evidence")
        )
        clusters = pl.concat([clusters, name_people]).sort("person", "key")
        shown = (attributed.drop_nulls("person").drop_nulls("shown")
                 .group_by("person", "shown").agg(count=pl.len())
                 .sort(["person", "count", "shown"], descending=[False, True, False])
                 .group_by("person", maintain_order=True).first()
                 .select("person", name="shown"))
        names = (clusters.select("person").unique().join(shown, on="person", how="left")
                 .sort("person"))
        obs_person = attributed.select("obs_id", "person").sort("obs_id")
        self.stats.update(keys=self.n_keys, persons=names.height)
        return Resolution(clusters=clusters, names=names, obs_person=obs_person,
                          stats=dict(self.stats))

    def _link_methods(self) -> pl.DataFrame:
        """``key_id``, ``link_method``: the strongest method among the rows that tie the key to
        another key (owner, contact, header_pair; any other is ``shared_identifier``)."""
        rows = self.key_rows.with_columns(
            width=pl.col("key_id").n_unique().over("unit_id"))
        ranked = rows.filter(pl.col("width") >= 2).with_columns(
            rank=pl.col("method").replace_strict(_METHOD_RANK, default=3,
                                                 return_dtype=pl.Int64))
        inverse = {v: k for k, v in _METHOD_RANK.items()} | {3: "shared_identifier"}
        return (ranked.group_by("key_id").agg(pl.col("rank").min())
                .select("key_id", link_method=pl.col("rank").replace_strict(
                    inverse, return_dtype=pl.String)))
