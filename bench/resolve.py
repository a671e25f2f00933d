"""Benchmark: identity resolution seconds and pairwise F1, Chrono's resolver vs Splink.

Usage: ``python bench/resolve.py [--quick] [--sizes 100000,1000000]``. Progress goes to stderr;
the last stdout line is one JSON object with ``sizes``: one entry per size with ``n``,
``chrono_s``, ``chrono_f1``, ``splink_s``, ``splink_f1`` (and precision, recall, comparisons,
``splink_error`` when Splink did not finish). Default sizes are 100,000 and 1,000,000 records;
``--quick`` runs 20,000.

The records are synthetic with known truth (:func:`synthetic_identities`): about four records per
person; names drawn with realistic skew from common first and last names, so many persons share
a full name (plus 3% explicit namesakes), and every namesake has their own phones and addresses;
each record shows a name variant (case, typo, ``Last, First``, initial, nickname, accents, middle
initial, sometimes none) and an email and/or an E.164 phone (5% neither). Addresses follow
name patterns, numbered where two persons would share a mailbox (``john.smith2``; separators do
not make a mailbox, as at Gmail); a third of persons also use a second spelling at the same
domain and a quarter a second address elsewhere.

Both sides get the same records in the same run and are timed end to end:

- Chrono: :func:`chrono.evidence.resolve.resolve` on one observation per record (the record's
  name, email and phone), default ``IdentityConfig``.
- Splink 5 on DuckDB, ``dedupe_only``, with the names cleaned as Chrono cleans them and split
  into first and last name: comparisons ``NameComparison`` on first and last name,
  ``EmailComparison``, ``ExactMatch`` on phone; blocking on email, on phone and on the first
  three letters of first and last name; λ from the email and phone rules, u by random sampling
  (1e7 pairs), m by EM on the email and on the name blocking rule; ``predict`` then
  ``cluster_pairwise_predictions_at_threshold`` at 0.95 (``splink_f1_at_0_99``, untimed, clusters
  the same predictions at 0.99 for context). The budget is bounded: DuckDB gets
  ``--splink-memory-gb`` (it spills past it), and if the blocking rules would exceed
  ``--splink-max-comparisons`` (50M) the name rule is tightened to four letters, then Splink is
  skipped with ``splink_error``; running out of memory is reported the same way.

Pairwise F1 counts pairs per cluster from group sizes (n·(n-1)/2), never by listing pairs;
records a side leaves unattributed count as singletons.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
import unicodedata
import warnings
from typing import Any

import duckdb
import numpy as np
import polars as pl

from chrono.core.config import IdentityConfig
from chrono.evidence.resolve import normalized_name, resolve

FIRST_NAMES = [
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "William",
    "Elizabeth", "David", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
    "Charles", "Karen", "Christopher", "Nancy", "Daniel", "Lisa", "Matthew", "Betty", "Anthony",
    "Margaret", "Mark", "Sandra", "Donald", "Ashley", "Steven", "Kimberly", "Paul", "Emily",
    "Andrew", "Donna", "Joshua", "Michelle", "Kenneth", "Dorothy", "Kevin", "Carol", "Brian",
    "Amanda", "George", "Melissa", "Edward", "Deborah", "Ronald", "Stephanie", "Timothy",
    "Rebecca", "Jason", "Sharon", "Jeffrey", "Laura", "Ryan", "Cynthia", "Jacob", "Kathleen",
    "Gary", "Amy", "Nicholas", "Shirley", "Eric", "Angela", "Jonathan", "Helen", "Stephen",
    "Anna", "Larry", "Brenda", "Justin", "Pamela", "Scott", "Nicole", "Brandon", "Emma",
    "Benjamin", "Samantha", "Samuel", "Katherine", "Gregory", "Christine", "Frank", "Debra",
    "Alexander", "Rachel", "Raymond", "Catherine", "Patrick", "Carolyn", "Jack", "Janet",
    "Dennis", "Ruth", "Jerry", "Maria", "Tyler", "Heather", "Aaron", "Diane", "José", "Virginia",
    "Adam", "Julie", "Henry", "Joyce", "Nathan", "Victoria", "Douglas", "Olivia", "Zachary",
    "Kelly", "Peter", "Christina", "Kyle", "Lauren", "Walter", "Joan", "Ethan", "Evelyn",
    "Jeremy", "Judith", "Harold", "Megan", "Keith", "Cheryl", "Christian", "Andrea", "Roger",
    "Hannah", "Noah", "Martha", "Gerald", "Jacqueline", "Carl", "Frances", "Terry", "Gloria",
    "Sean", "Ann", "Austin", "Teresa", "Arthur", "Kathryn", "Lawrence", "Sara", "Jesse", "Janice",
    "Dylan", "Jean", "Bryan", "Alice", "Joe", "Madison", "Jordan", "Doris", "Billy", "Abigail",
    "Bruce", "Julia", "Albert", "Judy", "Willie", "Grace", "Gabriel", "Denise", "Logan", "Amber",
    "Alan", "Marilyn", "Juan", "Beverly", "Wayne", "Danielle", "Roy", "Theresa", "Ralph", "Sophia",
    "Randy", "Marie", "Eugene", "Diana", "Vincent", "Brittany", "Russell", "Natalie", "Elijah",
    "Isabella", "Louis", "Charlotte", "Bobby", "Rose", "Philip", "Alexis", "Johnny", "Kayla",
    "André", "Zoë", "Renée", "Chloé", "Héctor", "Inés", "Jürgen", "Søren", "Noémie", "Ramón",
]
LAST_NAMES = [
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall",
    "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Gomez", "Phillips", "Evans", "Turner",
    "Diaz", "Parker", "Cruz", "Edwards", "Collins", "Reyes", "Stewart", "Morris", "Morales",
    "Murphy", "Cook", "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper", "Peterson", "Bailey",
    "Reed", "Kelly", "Howard", "Ramos", "Kim", "Cox", "Ward", "Richardson", "Watson", "Brooks",
    "Chavez", "Wood", "James", "Bennett", "Gray", "Mendoza", "Ruiz", "Hughes", "Price", "Alvarez",
    "Castillo", "Sanders", "Patel", "Myers", "Long", "Ross", "Foster", "Jimenez", "Powell",
    "Jenkins", "Perry", "Russell", "Sullivan", "Bell", "Coleman", "Butler", "Henderson", "Barnes",
    "Gonzales", "Fisher", "Vasquez", "Simmons", "Romero", "Jordan", "Patterson", "Alexander",
    "Hamilton", "Graham", "Reynolds", "Griffin", "Wallace", "Moreno", "West", "Cole", "Hayes",
    "Bryant", "Herrera", "Gibson", "Ellis", "Tran", "Medina", "Aguilar", "Stevens", "Murray",
    "Ford", "Castro", "Marshall", "Owens", "Harrison", "Fernandez", "McDonald", "Woods",
    "Washington", "Kennedy", "Wells", "Vargas", "Henry", "Chen", "Freeman", "Webb", "Tucker",
    "Guzman", "Burns", "Crawford", "Olson", "Simpson", "Porter", "Hunter", "Gordon", "Mendez",
    "Silva", "Shaw", "Snyder", "Mason", "Dixon", "Muñoz", "Hunt", "Hicks", "Holmes", "Palmer",
    "Wagner", "Black", "Robertson", "Boyd", "Rose", "Stone", "Salazar", "Fox", "Warren", "Mills",
    "Meyer", "Rice", "Schmidt", "Garza", "Daniels", "Ferguson", "Nichols", "Stephens", "Soto",
    "Weaver", "Ryan", "Gardner", "Payne", "Grant", "Dunn", "Kelley", "Spencer", "Hawkins",
    "Arnold", "Pierce", "Vazquez", "Hansen", "Peters", "Santos", "Hart", "Bradley", "Knight",
    "Elliott", "Cunningham", "Duncan", "Armstrong", "Hudson", "Carroll", "Lane", "Riley",
    "Andrews", "Alvarado", "Ray", "Delgado", "Berry", "Perkins", "Hoffman", "Johnston",
    "Matthews", "Peña", "Richards", "Contreras", "Willis", "Carpenter", "Lawrence", "Sandoval",
    "Guerrero", "George", "Chapman", "Rios", "Estrada", "Ortega", "Watkins", "Greene", "Núñez",
    "Wheeler", "Valdez", "Harper", "Burke", "Larson", "Santiago", "Maldonado", "Morrison",
    "Franklin", "Carlson", "Austin", "Dominguez", "Carr", "Lawson", "Jacobs", "O'Brien", "Lynch",
    "Singh", "Vega", "Bishop", "Montgomery", "Oliver", "Jensen", "Harvey", "Williamson",
    "Gilbert", "Dean", "Sims", "Espinoza", "Howell", "Li", "Wong", "Reid", "Hanson", "Le",
    "McCoy", "Garrett", "Burton", "Fuller", "Wang", "Weber", "Welch", "Rojas", "Lucas",
    "Marquez", "Fields", "Park", "Yang", "Little", "Banks", "Padilla", "Day", "Walsh", "Bowman",
    "Schultz", "Luna", "Fowler", "Mejia", "Davidson", "Acosta", "Brewer", "May", "Holland",
    "Juarez", "Newman", "Pearson", "Curtis", "Cortez", "Douglas", "Schneider", "Joseph",
    "Barrett", "Navarro", "Figueroa", "Keller", "Ávila", "Wade", "Molina", "Stanley", "Hopkins",
    "Campos", "Barnett", "Bates", "Chambers", "Caldwell", "Beck", "Lambert", "Miranda", "Byrd",
    "Craig", "Ayala", "Lowe", "Frazier", "Powers", "Neal", "Leonard", "Gregory", "Carrillo",
    "Sutton", "Fleming", "Rhodes", "Shelton", "Schwartz", "Norris", "Jennings", "Watts", "Duran",
    "Walters", "Cohen", "McDaniel", "Moran", "Parks", "Steele", "Vaughn", "Becker", "Holt",
    "DeLeon", "Barker", "Terry", "Hale", "Leon", "Hail", "Benson", "Haynes", "Horton", "Miles",
    "Lyons", "Pham", "Graves", "Bush", "Thornton", "Wolfe", "Warner", "Cabrera", "McKinney",
    "Mann", "Zimmerman", "Dawson", "Lara", "Fletcher", "Page", "McCarthy", "Love", "Robles",
    "Cervantes", "Solis", "Erickson", "Reeves", "Chang", "Klein", "Salinas", "Fuentes", "Baldwin",
    "Daniel", "Simon", "Velasquez", "Hardy", "Higgins", "Aguirre", "Lin", "Cummings", "Chandler",
    "Sharp", "Barber", "Bowen", "Ochoa", "Dennis", "Robbins", "Liu", "Ramsey", "Francis",
    "Griffith", "Paul", "Blair", "O'Connor", "Cardenas", "Pacheco", "Cross", "Calderon", "Quinn",
    "Moss", "Swanson", "Chan", "Rivas", "Khan", "Rodgers", "Serrano", "Fitzgerald", "Rosales",
    "Stevenson", "Christensen", "Manning", "Gill", "Curry", "McLaughlin", "Harmon", "McGee",
    "Gross", "Doyle", "Garner", "Newton", "Burgess", "Reese", "Walton", "Blake", "Trujillo",
    "Adkins", "Brady", "Goodman", "Roman", "Webster", "Goodwin", "Fischer", "Huang", "Potter",
    "Delacruz", "Montoya", "Todd", "Wu", "Hines", "Mullins", "Castaneda", "Malone", "Cannon",
    "Tate", "Mack", "Sherman", "Hubbard", "Hodges", "Zhang", "Guerra", "Wolf", "Valencia",
    "Müller", "Schäfer", "Lefèvre", "Dubois", "Rossi", "Kowalski", "Novák", "Jansen", "Björk",
]
NICKNAMES = {
    "William": "Bill", "Robert": "Bob", "Richard": "Dick", "James": "Jim", "Michael": "Mike",
    "Joseph": "Joe", "Thomas": "Tom", "Charles": "Chuck", "Christopher": "Chris",
    "Daniel": "Dan", "Matthew": "Matt", "Anthony": "Tony", "Donald": "Don", "Steven": "Steve",
    "Andrew": "Andy", "Joshua": "Josh", "Kenneth": "Ken", "Edward": "Ed", "Ronald": "Ron",
    "Timothy": "Tim", "Jeffrey": "Jeff", "Nicholas": "Nick", "Jonathan": "Jon",
    "Benjamin": "Ben", "Samuel": "Sam", "Gregory": "Greg", "Alexander": "Alex",
    "Elizabeth": "Liz", "Patricia": "Pat", "Jennifer": "Jen", "Margaret": "Peggy",
    "Susan": "Sue", "Jessica": "Jess", "Kimberly": "Kim", "Deborah": "Debbie",
    "Rebecca": "Becky", "Katherine": "Kate", "Catherine": "Cathy", "Samantha": "Sam",
    "Victoria": "Vicky", "Christina": "Tina", "Pamela": "Pam", "Dorothy": "Dot",
}
FREE_DOMAINS = ["gmail.test", "yahoo.test", "outlook.test", "proton.test", "icloud.test",
                "aol.test", "gmx.test", "fastmail.test"]
COMPANY_DOMAINS = 4000
VARIANT_SHARE = (
    ("exact", 0.52), ("case", 0.12), ("typo", 0.10), ("last_first", 0.06), ("initial", 0.05),
    ("nickname", 0.05), ("accents", 0.04), ("middle", 0.03), ("missing", 0.03),
)


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text)
    return "".join(c for c in folded if not unicodedata.combining(c)).lower().replace("'", "")


def _zipf(size: int, exponent: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, size + 1) ** exponent
    return weights / weights.sum()


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 3:
        return word
    i = rng.randrange(1, len(word))
    op = rng.randrange(4)
    letters = "abcdefghijklmnopqrstuvwxyz"
    if op == 0:
        return word[:i] + rng.choice(letters) + word[i + 1:]
    if op == 1:
        return word[:i] + word[i + 1:]
    if op == 2:
        return word[:i] + rng.choice(letters) + word[i:]
    if i < len(word) - 1:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    return word[:i] + word[i:] + word[-1]


def _shown_name(first: str, last: str, kind: str, rng: random.Random) -> str | None:
    if kind == "case":
        return rng.choice([str.upper, str.lower])(f"{first} {last}")
    if kind == "typo":
        return (f"{_typo(first, rng)} {last}" if rng.random() < 0.5
                else f"{first} {_typo(last, rng)}")
    if kind == "last_first":
        return f"{last}, {first}"
    if kind == "initial":
        return f"{first[0]}. {last}"
    if kind == "nickname":
        return f"{NICKNAMES.get(first, first)} {last}"
    if kind == "accents":
        return _ascii(f"{first} {last}").title()
    if kind == "middle":
        return f"{first} {rng.choice('ABCDEFGHJKLMNPRSTW')}. {last}"
    if kind == "missing":
        return None
    return f"{first} {last}"


def _mailbox(address: str) -> str:
    """The mailbox an address names: separators do not count (as at Gmail)."""
    local, domain = address.split("@")
    return local.replace(".", "").replace("_", "") + "@" + domain


def _unique_addresses(locals_: list[str], domains: list[str], taken: set[str]) -> list[str]:
    """The addresses, numbered (``john.smith2``) where the mailbox is already taken."""
    out = []
    for local, domain in zip(locals_, domains, strict=True):
        address, n = f"{local}@{domain}", 1
        while _mailbox(address) in taken:
            n += 1
            address = f"{local}{n}@{domain}"
        taken.add(_mailbox(address))
        out.append(address)
    return out


def _local(first: str, last: str, pattern: int) -> str:
    f, s = _ascii(first).replace(" ", ""), _ascii(last).replace(" ", "")
    return [f"{f}.{s}", f"{f}{s}", f"{f}_{s}", f"{f[0]}{s}", f"{s}.{f}", f"{f}.{s[0]}"][pattern]


def synthetic_identities(n: int, seed: int = 7) -> tuple[pl.DataFrame, np.ndarray]:
    """``n`` records as resolver observations, and the true person index of each record.

    The frame has the resolver's columns (``obs_id``, ``name``, ``email``, ``phone``,
    ``handle``, ``method``, ``evidence``, ``group``) in record order.
    """
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    persons = max(1, n // 4)
    first_idx = nprng.choice(len(FIRST_NAMES), persons, p=_zipf(len(FIRST_NAMES), 0.6))
    last_idx = nprng.choice(len(LAST_NAMES), persons, p=_zipf(len(LAST_NAMES), 0.5))
    namesakes = np.flatnonzero(nprng.random(persons) < 0.03)
    copied = nprng.integers(0, persons, namesakes.size)
    first_idx[namesakes], last_idx[namesakes] = first_idx[copied], last_idx[copied]
    firsts = [FIRST_NAMES[i] for i in first_idx]
    lasts = [LAST_NAMES[i] for i in last_idx]

    numbers = np.unique(nprng.integers(2_000_000_000, 9_999_999_999, persons * 3))
    nprng.shuffle(numbers)
    phone_count = nprng.choice([0, 1, 2], persons, p=[0.05, 0.75, 0.20])
    phones: list[list[str]] = []
    cursor = 0
    for count in phone_count:
        phones.append([f"+1{numbers[cursor + k]}" for k in range(count)])
        cursor += count

    companies = [f"co{k}.test" for k in range(COMPANY_DOMAINS)]
    taken: set[str] = set()
    patterns = nprng.integers(0, 6, persons)
    domains = [rng.choice(FREE_DOMAINS) if rng.random() < 0.6 else rng.choice(companies)
               for _ in range(persons)]
    primary = _unique_addresses([_local(first, last, int(p)) for first, last, p in
                                 zip(firsts, lasts, patterns, strict=True)], domains, taken)
    emails: list[list[str]] = [[a] for a in primary]
    for p in range(persons):
        local, domain = primary[p].split("@")
        digits = "".join(c for c in local if c.isdigit())
        if rng.random() < 0.33:  # a second spelling of the same mailbox name, same domain
            other = (int(patterns[p]) + rng.randrange(1, 6)) % 6
            address = f"{_local(firsts[p], lasts[p], other)}{digits}@{domain}"
            if _mailbox(address) == _mailbox(primary[p]):
                emails[p].append(address)  # the same mailbox, spelt with other separators
            elif _mailbox(address) not in taken:
                taken.add(_mailbox(address))
                emails[p].append(address)
        if rng.random() < 0.25:  # an address elsewhere
            elsewhere = rng.choice([d for d in FREE_DOMAINS if d != domain])
            emails[p] += _unique_addresses(
                [_local(firsts[p], lasts[p], rng.randrange(6))], [elsewhere], taken)

    owner = nprng.integers(0, persons, n)
    kinds = [k for k, _ in VARIANT_SHARE]
    kind_of = nprng.choice(len(kinds), n, p=[w for _, w in VARIANT_SHARE])
    carries = nprng.choice(4, n, p=[0.38, 0.25, 0.32, 0.05])  # email, phone, both, neither
    names, mails, numbers_out, methods = [], [], [], []
    for i in range(n):
        p = int(owner[i])
        carry = int(carries[i])
        if not phones[p] and carry in (1, 2):
            carry = 0
        email = phone = None
        if carry in (0, 2):
            options = emails[p]
            email = options[0] if len(options) == 1 or rng.random() < 0.6 else rng.choice(
                options[1:])
        if carry in (1, 2):
            phone = rng.choice(phones[p])
        kind = kinds[kind_of[i]]
        if carry == 3 and kind == "missing":
            kind = "exact"
        names.append(_shown_name(firsts[p], lasts[p], kind, rng))
        mails.append(email)
        numbers_out.append(phone)
        methods.append("contact" if email and phone else "header_pair" if email
                       else "participant")
    frame = pl.DataFrame({
        "obs_id": [f"r{i:07d}" for i in range(n)],
        "name": names, "email": mails, "phone": numbers_out,
        "handle": pl.Series([None] * n, dtype=pl.String),
        "method": methods,
        "evidence": [f"ev{i:07d}" for i in range(n)],
        "group": pl.Series([None] * n, dtype=pl.String),
    })
    return frame, owner


def pairwise_scores(predicted: pl.Series, truth: np.ndarray) -> dict[str, float]:
    """Pairwise precision, recall and F1; null predictions count as singletons."""
    frame = pl.DataFrame({"pred": predicted, "truth": truth}).with_row_index("row")
    frame = frame.with_columns(
        pred=pl.coalesce(pl.col("pred").cast(pl.String),
                         pl.concat_str([pl.lit("\x00single:"), pl.col("row").cast(pl.String)])))

    def pairs(*by: str) -> int:
        sizes = frame.group_by(*by).agg(n=pl.len())["n"].cast(pl.Int64)
        return int((sizes * (sizes - 1) // 2).sum())

    true_pos, predicted_pos, actual = pairs("pred", "truth"), pairs("pred"), pairs("truth")
    precision = true_pos / predicted_pos if predicted_pos else 1.0
    recall = true_pos / actual if actual else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


def run_chrono(observations: pl.DataFrame) -> tuple[float, pl.Series, dict[str, int]]:
    started = time.perf_counter()
    resolution = resolve(observations, IdentityConfig())
    elapsed = time.perf_counter() - started
    person = (observations.select("obs_id")
              .join(resolution.obs_person, on="obs_id", how="left", maintain_order="left")
              ["person"])
    return elapsed, person, dict(resolution.stats)


def splink_input(observations: pl.DataFrame) -> pl.DataFrame:
    """The records as Splink gets them: names cleaned and split, as a data engineer would."""
    tokens = normalized_name(pl.col("name")).str.split(" ")
    return observations.with_row_index("unique_id").select(
        pl.col("unique_id").cast(pl.Int64),
        first_name=tokens.list.first(),
        last_name=pl.when(tokens.list.len() >= 2).then(tokens.list.last()),
        email="email", phone="phone",
    )


def run_splink(observations: pl.DataFrame, max_comparisons: float, memory_gb: int,
               ) -> tuple[float, pl.Series | None, dict[str, Any]]:
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on
    from splink.blocking_analysis import count_comparisons_from_blocking_rules

    for name in ("splink", "duckdb"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="splink")
    info: dict[str, Any] = {}
    records = splink_input(observations)
    started = time.perf_counter()
    connection = duckdb.connect()
    # a bounded budget: DuckDB spills to disk past it instead of taking the machine
    connection.execute(f"SET memory_limit = '{memory_gb}GB'")
    db_api = DuckDBAPI(connection=connection)
    table = db_api.register(records.to_arrow(), table_name="records")
    counting = time.perf_counter()  # the budget check is ours, not Splink's work: untimed
    prefix = 3
    rules: list[Any] = [block_on("email"), block_on("phone")]
    name_rule = block_on(f"substr(first_name, 1, {prefix})", f"substr(last_name, 1, {prefix})")
    counted = count_comparisons_from_blocking_rules(
        table, blocking_rules=[*rules, name_rule], link_type="dedupe_only")
    total = counted[-1]["cumulative_comparison_count"]
    if total > max_comparisons:
        prefix = 4
        name_rule = block_on(f"substr(first_name, 1, {prefix})",
                             f"substr(last_name, 1, {prefix})")
        counted = count_comparisons_from_blocking_rules(
            table, blocking_rules=[*rules, name_rule], link_type="dedupe_only")
        total = counted[-1]["cumulative_comparison_count"]
    info.update(splink_name_prefix=prefix, splink_comparisons=int(total))
    started += time.perf_counter() - counting
    if total > max_comparisons:
        info["splink_error"] = (f"{int(total):,} blocked comparisons exceed the budget of "
                                f"{int(max_comparisons):,}")
        return time.perf_counter() - started, None, info
    settings = SettingsCreator(
        link_type="dedupe_only",
        comparisons=[cl.NameComparison("first_name"), cl.NameComparison("last_name"),
                     cl.EmailComparison("email"), cl.ExactMatch("phone")],
        blocking_rules_to_generate_predictions=[*rules, name_rule],
    )
    linker = Linker(table, settings, log_level=logging.WARNING)
    linker.training.estimate_probability_two_random_records_match(rules, recall=0.8)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e7, seed=1)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("email"))
    linker.training.estimate_parameters_using_expectation_maximisation(name_rule)
    predictions = linker.inference.predict(threshold_match_probability=0.95)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=0.95)
    person = _splink_clusters(records, clusters)
    elapsed = time.perf_counter() - started
    # not timed, for context: the same predictions clustered at a stricter threshold
    stricter = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=0.99)
    info["splink_person_at_0_99"] = _splink_clusters(records, stricter)
    return elapsed, person, info


def _splink_clusters(records: pl.DataFrame, clusters: Any) -> pl.Series:
    clustered = pl.from_arrow(clusters.as_pyarrow_table())
    assert isinstance(clustered, pl.DataFrame)
    return (records.select("unique_id")
            .join(clustered.select("unique_id", "cluster_id"), on="unique_id", how="left",
                  maintain_order="left")["cluster_id"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 records only")
    parser.add_argument("--sizes", default=None, help="comma-separated record counts")
    parser.add_argument("--splink-max-comparisons", type=float, default=50e6)
    parser.add_argument("--splink-memory-gb", type=int, default=12,
                        help="DuckDB memory limit for Splink (it spills past it)")
    parser.add_argument("--no-splink", action="store_true", help="time Chrono only")
    args = parser.parse_args()
    if args.sizes:
        sizes = [int(s) for s in args.sizes.split(",")]
    else:
        sizes = [20_000] if args.quick else [100_000, 1_000_000]
    results = []
    for n in sizes:
        print(f"generating {n:,} records", file=sys.stderr)
        observations, truth = synthetic_identities(n)
        entry: dict[str, Any] = {"n": n, "persons": int(np.unique(truth).size)}
        print("chrono: resolve", file=sys.stderr)
        chrono_s, person, stats = run_chrono(observations)
        scores = pairwise_scores(person, truth)
        entry.update(chrono_s=round(chrono_s, 2), chrono_f1=scores["f1"],
                     chrono_precision=scores["precision"], chrono_recall=scores["recall"],
                     chrono_stats=stats)
        print(f"  {chrono_s:.2f}s {scores}", file=sys.stderr)
        if not args.no_splink:
            print("splink: train, predict, cluster", file=sys.stderr)
            started = time.perf_counter()
            try:
                splink_s, splink_person, info = run_splink(
                    observations, args.splink_max_comparisons, args.splink_memory_gb)
            except (MemoryError, duckdb.OutOfMemoryException) as exc:
                # reported, not hidden: Splink did not fit the budget
                splink_s, splink_person, info = time.perf_counter() - started, None, {
                    "splink_error": f"out of memory ({type(exc).__name__})"}
            stricter = info.pop("splink_person_at_0_99", None)
            if stricter is not None:
                entry["splink_f1_at_0_99"] = pairwise_scores(stricter, truth)["f1"]
            entry.update(info)
            entry["splink_s"] = round(splink_s, 2)
            if splink_person is not None:
                splink_scores = pairwise_scores(splink_person, truth)
                entry.update(splink_f1=splink_scores["f1"],
                             splink_precision=splink_scores["precision"],
                             splink_recall=splink_scores["recall"])
                print(f"  {splink_s:.2f}s {splink_scores}", file=sys.stderr)
            else:
                entry["splink_f1"] = None
                print(f"  splink: {info.get('splink_error')}", file=sys.stderr)
        results.append(entry)
    print(json.dumps({"sizes": results}))


if __name__ == "__main__":
    main()
