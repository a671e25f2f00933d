"""The sample production's cast: people, their addresses, phone numbers and devices.

Every name, address and number is fictitious: US numbers use the reserved ``NXX-555-01XX`` range,
UK numbers the Ofcom drama range ``+44 7700 900xxx``, and addresses use ``example.*`` or ``*.test``
domains. The canary person (``Zebulon Quickfire``) is always in the cast so PII-leak tests have
known strings to look for.

The cast carries two identity traps (see :func:`add_identity_traps`): namesakes (distinct people
with the exact same full name, each with one work address on a different domain and one phone)
and "spelling" people (one person writing from three spellings of one address, with two phones).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

CANARY_NAME = "Zebulon Quickfire"
CANARY_EMAIL = "zeb.canary@canary-mail.test"
CANARY_PHONE = "+15550197321"
CANARY_PHONE_FORMS = ("+1 555 019 7321", "555-019-7321", "(555) 019-7321", "15550197321")
"""How the canary number is printed in different files (all mean :data:`CANARY_PHONE`)."""

FIRST_NAMES = (
    "Avery", "Beatrice", "Caleb", "Delphine", "Emeka", "Fiona", "Gideon", "Harriet", "Ibrahim",
    "Juniper", "Kofi", "Lorena", "Malcolm", "Nadia", "Oscar", "Priya", "Quentin", "Rosalind",
    "Soren", "Tamsin", "Ulrich", "Valeria", "Wendell", "Ximena", "Yusuf", "Zara", "Anselm",
    "Bronwyn", "Cedric", "Dagny", "Evander", "Florence", "Gustavo", "Henrietta", "Isidore",
    "Jocelyn", "Kasimir", "Leonie", "Mortimer", "Noemi", "José", "Søren",
)
LAST_NAMES = (
    "Ashdown", "Brightwater", "Calloway", "Dunmore", "Ellery", "Fairbanks", "Greenleaf",
    "Hollister", "Ingram", "Jessop", "Kettering", "Lindqvist", "Merriweather", "Northcott",
    "Okonkwo", "Pemberton", "Quimby", "Rutherford", "Stanhope", "Thornbury", "Underhill",
    "Vandermeer", "Whitlock", "Yarborough", "Zelenko", "Abernathy", "Blackwood", "Cresswell",
    "Delacroix", "Everly", "Fennimore", "Galloway", "Hargreave", "Ivanova", "Jardine",
    "Kowalczyk", "Lockhart", "Montague", "Núñez", "Oyelaran", "Prescott", "Ravensworth",
)
WORK_DOMAINS = ("harbor-corp.test", "lantern-law.test", "example.com", "meridian-corp.test")
PERSONAL_DOMAINS = ("example.org", "example.net", "mail.example.com")
US_AREA_CODES = ("202", "212", "312", "415", "617", "646", "718", "305", "503", "713")
TIMEZONES_US = ("America/New_York", "America/Chicago", "America/Los_Angeles")
TIMEZONE_UK = "Europe/London"


@dataclass(eq=False)
class Person:
    """One member of the cast, with the identifiers files will show for them."""

    id: str
    name: str
    emails: list[str]
    """Lower-case addresses; the first is the work address."""
    phones: list[str]
    """E.164 numbers; the first is the phone the person carries (their device)."""
    timezone: str
    """IANA zone the person lives in: email Date headers and phone exports use it."""
    custodian: bool = False
    folder: str = ""
    """Custodian folder name (``first_last``), empty for non-custodians."""
    display_emails: list[str] = field(default_factory=list)
    """The same addresses with the mixed case some mail clients show."""
    namesake_group: str | None = None
    """``ng-N`` when other cast members share this exact full name (a namesake trap)."""
    spellings: bool = False
    """True for a spelling-trap person: ``emails`` are three spellings of one address."""
    signature: bool = False
    """Emails this person sends end with a signature block naming their company and a phone."""

    @property
    def email(self) -> str:
        return self.emails[0]

    @property
    def phone(self) -> str:
        return self.phones[0]

    @property
    def uk(self) -> bool:
        return self.timezone == TIMEZONE_UK


@dataclass
class Cast:
    """Everybody in the production plus lookups from an identifier to a person id."""

    people: list[Person]
    by_email: dict[str, str] = field(default_factory=dict)
    by_phone: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for p in self.people:
            for e in p.emails:
                self.by_email[e] = p.id
            for n in p.phones:
                self.by_phone[n] = p.id

    @property
    def custodians(self) -> list[Person]:
        return [p for p in self.people if p.custodian]

    @property
    def canary(self) -> Person:
        return next(p for p in self.people if p.name == CANARY_NAME)

    def person_of(self, kind: str, value: str) -> str | None:
        return (self.by_email if kind == "email" else self.by_phone).get(value)

    def member(self, person_id: str | None) -> Person | None:
        return next((p for p in self.people if p.id == person_id), None)

    def name_of(self, person_id: str) -> str:
        person = self.member(person_id)
        if person is None:
            raise KeyError(person_id)
        return person.name

    @property
    def namesake_groups(self) -> dict[str, list[Person]]:
        """Namesake group id -> its members, in cast order."""
        groups: dict[str, list[Person]] = {}
        for p in self.people:
            if p.namesake_group:
                groups.setdefault(p.namesake_group, []).append(p)
        return groups

    @property
    def spelling_people(self) -> list[Person]:
        return [p for p in self.people if p.spellings]


def ascii_slug(text: str) -> str:
    """Lower-case ASCII form of a name part for addresses and folder names."""
    table = str.maketrans({"é": "e", "ñ": "n", "ú": "u", "ø": "o", "Ø": "O", "ü": "u"})
    return "".join(c for c in text.translate(table).lower() if c.isalnum())


def build_cast(
    rng: random.Random, size: int, custodians: int, namesake_groups: tuple[int, ...] = (),
    spelling_people: int = 0,
) -> Cast:
    """``size`` people (the canary included); the first ``custodians`` get folders.

    ``namesake_groups`` gives the member count of each namesake group and ``spelling_people``
    how many spelling-trap people to make (see :func:`add_identity_traps`).
    """
    firsts = rng.sample(FIRST_NAMES, k=min(size, len(FIRST_NAMES)))
    lasts = rng.sample(LAST_NAMES, k=min(size, len(LAST_NAMES)))
    used_numbers: set[str] = {CANARY_PHONE}
    people: list[Person] = []
    for i in range(size - 1):
        first, last = firsts[i % len(firsts)], lasts[i % len(lasts)]
        uk = rng.random() < 0.25
        tz = TIMEZONE_UK if uk else rng.choice(TIMEZONES_US)
        work = rng.choice(WORK_DOMAINS)
        emails = [f"{ascii_slug(first)}.{ascii_slug(last)}@{work}"]
        for _ in range(rng.choice((0, 1, 1, 2))):
            domain = rng.choice(PERSONAL_DOMAINS)
            candidate = f"{ascii_slug(first)[0]}{ascii_slug(last)}{rng.randint(1, 99)}@{domain}"
            if candidate not in emails:
                emails.append(candidate)
        phones = [_new_number(rng, uk, used_numbers)]
        if rng.random() < 0.4:
            phones.append(_new_number(rng, not uk if rng.random() < 0.3 else uk, used_numbers))
        display = [_display_case(rng, e, first, last) for e in emails]
        people.append(Person(
            id=f"p-{i + 1:03d}", name=f"{first} {last}", emails=emails, phones=phones,
            timezone=tz, display_emails=display,
        ))
    # Custodians: the first people in cast order, with at least one in each phone-export zone.
    uk_people = [p for p in people if p.uk]
    if not uk_people:
        people[-1].timezone = TIMEZONE_UK
        uk_people = [people[-1]]
    chosen = [uk_people[0], *[p for p in people if p is not uk_people[0] and not p.uk]]
    for p in chosen[:custodians]:
        p.custodian = True
        p.folder = "_".join(ascii_slug(part) for part in p.name.split())
    add_identity_traps(rng, people, used_numbers, namesake_groups, spelling_people)
    people.append(Person(
        id=f"p-{size:03d}", name=CANARY_NAME, emails=[CANARY_EMAIL], phones=[CANARY_PHONE],
        timezone="America/New_York", display_emails=[CANARY_EMAIL],
    ))
    return Cast(people)


def add_identity_traps(
    rng: random.Random, people: list[Person], used_numbers: set[str],
    namesake_groups: tuple[int, ...], spelling_people: int,
) -> None:
    """Turn some cast members into identity traps, in place (custodians already chosen).

    Namesakes: the first group is anchored on a custodian (so one namesake shows up in a lot of
    mail and the other in a little), later groups on non-custodians; the other members take the
    anchor's exact name. Every member keeps one work address, each group's members on different
    domains, and one phone of their own: the name is the only thing they share.

    Spelling people: a non-custodian writing as ``first.last@``, ``firstlast@`` and ``flast@``
    of one work domain (``emails`` lists all three), with two phones and a signature.
    """
    free = [p for p in people if not p.custodian]
    rng.shuffle(free)
    custodians = [p for p in people if p.custodian]
    for number, members in enumerate(namesake_groups, start=1):
        if members < 2 or members > len(WORK_DOMAINS):
            raise ValueError(f"a namesake group needs 2 to {len(WORK_DOMAINS)} members")
        anchor = custodians[1] if number == 1 and len(custodians) > 1 else free.pop()
        group = [anchor, *(free.pop() for _ in range(members - 1))]
        domains = rng.sample(WORK_DOMAINS, k=members)
        first, last = anchor.name.split(" ", 1)
        for member, domain in zip(group, domains, strict=True):
            member.name = anchor.name
            member.emails = [f"{ascii_slug(first)}.{ascii_slug(last)}@{domain}"]
            member.display_emails = list(member.emails)
            member.phones = member.phones[:1]
            member.namesake_group = f"ng-{number}"
            member.signature = True
    for _ in range(spelling_people):
        person = free.pop()
        first, last = person.name.split(" ", 1)
        f, lname = ascii_slug(first), ascii_slug(last)
        domain = person.email.partition("@")[2]
        person.emails = [f"{f}.{lname}@{domain}", f"{f}{lname}@{domain}", f"{f[0]}{lname}@{domain}"]
        person.display_emails = list(person.emails)
        if len(person.phones) < 2:
            person.phones.append(_new_number(rng, person.uk, used_numbers))
        person.spellings = True
        person.signature = True


def display_variant(email: str) -> str:
    """The capitalised way Outlook shows ``first.last@domain`` (``First.Last@domain``)."""
    local, _, domain = email.partition("@")
    return ".".join(part.capitalize() for part in local.split(".")) + "@" + domain


def company_of(email: str) -> str:
    """A company name for a signature, from the address's domain (``harbor-corp.test``)."""
    label = email.partition("@")[2].split(".")[0]
    return " ".join(part.capitalize() for part in label.split("-"))


def _new_number(rng: random.Random, uk: bool, used: set[str]) -> str:
    while True:
        if uk:
            number = f"+447700900{rng.randint(0, 999):03d}"
        else:
            number = f"+1{rng.choice(US_AREA_CODES)}55501{rng.randint(0, 99):02d}"
        if number not in used:
            used.add(number)
            return number


def _display_case(rng: random.Random, email: str, first: str, last: str) -> str:
    """Sometimes show an address the way Outlook does, capitalised (truth stays lower-case)."""
    if rng.random() < 0.25:
        return display_variant(email)
    return email


def format_phone(e164: str, style: int) -> str:
    """Print an E.164 number the way different systems do; every style keeps the country code
    or is a US number (so a reader defaulting to US parses it back to the same E.164)."""
    if e164.startswith("+44"):
        national = e164[3:]
        return (f"+44 {national[:4]} {national[4:]}", e164, f"+44 {national}")[style % 3]
    digits = e164[2:]
    area, exch, line = digits[:3], digits[3:6], digits[6:]
    forms = (
        f"+1 ({area}) {exch}-{line}",
        f"1{digits}",
        f"{area}-{exch}-{line}",
        f"+1 {area} {exch} {line}",
        f"({area}) {exch}-{line}",
        e164,
    )
    return forms[style % len(forms)]
