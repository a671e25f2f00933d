"""The sample production's cast: people, their addresses, phone numbers and devices.

Every name, address and number is fictitious: US numbers use the reserved ``NXX-555-01XX`` range,
UK numbers the Ofcom drama range ``+44 7700 900xxx``, and addresses use ``example.*`` or ``*.test``
domains. The canary person (``Zebulon Quickfire``) is always in the cast so PII-leak tests have
known strings to look for.
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


def ascii_slug(text: str) -> str:
    """Lower-case ASCII form of a name part for addresses and folder names."""
    table = str.maketrans({"é": "e", "ñ": "n", "ú": "u", "ø": "o", "Ø": "O", "ü": "u"})
    return "".join(c for c in text.translate(table).lower() if c.isalnum())


def build_cast(rng: random.Random, size: int, custodians: int) -> Cast:
    """``size`` people (the canary included); the first ``custodians`` get folders."""
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
    people.append(Person(
        id=f"p-{size:03d}", name=CANARY_NAME, emails=[CANARY_EMAIL], phones=[CANARY_PHONE],
        timezone="America/New_York", display_emails=[CANARY_EMAIL],
    ))
    return Cast(people)


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
        local, _, domain = email.partition("@")
        return ".".join(part.capitalize() for part in local.split(".")) + "@" + domain
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
