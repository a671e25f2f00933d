"""The production plan: every file to write (as a deferred builder) plus the ground truth.

Planning is cheap and touches no disk: content is decided up front with a seeded
:class:`random.Random`, and each file's bytes come from a builder called only when the file is
written. So the plan of a medium production can be inspected (counts, truth) without rendering a
single scanned page.

Identity traps are planned in every size (see :meth:`_Planner.plan_trap_emails` and
:meth:`_Planner.plan_trap_calls`): namesakes and spelling people from the cast, calls whose phone
export runs a clock ``SKEW_S`` seconds off the carrier, and forwards quoting earlier emails.
"""

from __future__ import annotations

import io
import random
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Literal
from zoneinfo import ZoneInfo

from PIL import Image, ImageDraw, ImageFont

from chrono.evidence.sample import hostile, wording
from chrono.evidence.sample.archives import aes_zip_bytes, sevenzip_bytes, tgz_bytes, zip_bytes
from chrono.evidence.sample.emails import (
    Attachment,
    EmailSpec,
    Mailbox,
    eml_bytes,
    forwarded_name,
    gmail_header_lines,
    mbox_bytes,
    outlook_header_lines,
    participants,
)
from chrono.evidence.sample.loadfile import DatRow, bates, dat_bytes, opt_bytes, volume_path
from chrono.evidence.sample.pdfs import image_pdf, text_pdf
from chrono.evidence.sample.people import (
    CANARY_EMAIL,
    CANARY_NAME,
    CANARY_PHONE,
    CANARY_PHONE_FORMS,
    Cast,
    Person,
    build_cast,
    company_of,
    display_variant,
    format_phone,
)
from chrono.evidence.sample.scans import (
    FONT_PATH,
    ScanPage,
    jpeg_bytes,
    layout,
    redactable_words,
    render,
    tiff_bytes,
)
from chrono.evidence.sample.sheets import (
    CDR_CALL_HEADER,
    CDR_SMS_HEADER,
    CONTACT_HEADER,
    EXPORT_CALL_HEADER,
    EXPORT_SMS_HEADER,
    Row,
    csv_bytes,
    export_preamble,
    xlsx_bytes,
)
from chrono.evidence.sample.truth import SkewTrap, TruthBook, TruthEvent

Size = Literal["small", "medium"]
Member = tuple[str, Callable[[], bytes]]
"""An archive member: its entry name and the builder of its bytes."""
PROD = "production"
ARCHIVE_PASSWORD = "Lantern-Quay-8841"
UNLISTED_PASSWORD = "Unlisted-Vault-9000"
DECOY_PASSWORDS = ("Spring2025!", "harbor123", "P@ssw0rd-decoy", "letmein-2025")
EXTERNAL_MAILBOXES = (
    Mailbox("Accounts Payable", "ap@vendor.example.net"),
    Mailbox("Dock Office", "dock.office@port-authority.test"),
    Mailbox("Broker Desk", "desk@freight-broker.test"),
)
SKEW_S = 40
"""How far a skewed phone export's clock is off the carrier's (alternately ahead and behind)."""


@dataclass(frozen=True)
class SizeProfile:
    """How much of each kind of content a production size holds."""

    people: int
    custodians: int
    emails: int
    """Emails written as .eml files in custodian folders (before copies)."""
    shared_fraction: float
    """Share of those emails also copied, byte for byte, into a second custodian's folder."""
    mbox_emails: int
    """Emails per custodian mbox that exist nowhere else."""
    png_attachments: int
    printed_pdfs: int
    memos: int
    notes: int
    data_csvs: int
    scan_email_pages: int
    scan_letter_pages: int
    calls: int
    """Calls per custodian (before the overlap between custodians)."""
    messages: int
    dat_emails: int
    dat_pdfs: int
    dat_scanned_letters: int
    huge_field_bytes: int
    namesake_groups: tuple[int, ...]
    """Member count of each namesake group (people sharing one exact full name)."""
    spelling_people: int
    """People writing from three spellings of one address, with two phones."""
    skewed_calls: int
    """Calls between two custodians in one's CDR and in the other's skewed phone export."""
    forwards: int
    """Forwards quoting an earlier email of the forwarder's mailbox."""


PROFILES: dict[str, SizeProfile] = {
    "small": SizeProfile(
        people=12, custodians=4, emails=24, shared_fraction=0.3, mbox_emails=2,
        png_attachments=1, printed_pdfs=2, memos=3, notes=3, data_csvs=2,
        scan_email_pages=6, scan_letter_pages=3, calls=10, messages=8,
        dat_emails=4, dat_pdfs=1, dat_scanned_letters=2, huge_field_bytes=2 * 1024 * 1024,
        namesake_groups=(2,), spelling_people=1, skewed_calls=1, forwards=2,
    ),
    "medium": SizeProfile(
        people=40, custodians=12, emails=800, shared_fraction=0.3, mbox_emails=12,
        png_attachments=10, printed_pdfs=120, memos=220, notes=260, data_csvs=150,
        scan_email_pages=160, scan_letter_pages=50, calls=50, messages=35,
        dat_emails=120, dat_pdfs=40, dat_scanned_letters=16, huge_field_bytes=10 * 1024 * 1024,
        namesake_groups=(2, 3), spelling_people=2, skewed_calls=3, forwards=10,
    ),
}


@dataclass
class PlannedFile:
    """One file of the output: its path relative to the output folder and how to make it."""

    path: str
    build: Callable[[], bytes]
    scanned_pages: int = 0
    """Pages an OCR engine would have to read (0 for born-digital files)."""


@dataclass
class ProductionPlan:
    """Everything :func:`~chrono.evidence.sample.generate.generate_production` writes."""

    size: str
    seed: int
    files: list[PlannedFile]
    truth: dict[str, Any]
    passwords: list[str]

    @property
    def scanned_pages(self) -> int:
        return sum(f.scanned_pages for f in self.files)


@dataclass
class _CallPlan:
    event: TruthEvent
    start: datetime
    caller: str
    callee: str
    duration: int
    missed: bool
    body: str = ""


@dataclass
class _Phone:
    """Rows collected for one custodian's phone files before they are serialised."""

    # Each entry is (time the file shows, call): a skewed export shows another time than the
    # call's true start.
    cdr_calls: list[tuple[datetime, _CallPlan]] = field(default_factory=list)
    cdr_sms: list[tuple[datetime, _CallPlan]] = field(default_factory=list)
    export_calls: list[tuple[datetime, _CallPlan]] = field(default_factory=list)
    export_sms: list[tuple[datetime, _CallPlan]] = field(default_factory=list)


def plan_production(size: Size = "small", seed: int = 7) -> ProductionPlan:
    """Decide every file and the ground truth for a production of ``size`` from ``seed``."""
    return _Planner(size, seed).plan()


class _Planner:
    def __init__(self, size: Size, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.profile = PROFILES[size]
        self.rng = random.Random(f"chrono-sample:{size}:{seed}")
        self.cast: Cast = build_cast(
            self.rng, self.profile.people, self.profile.custodians,
            namesake_groups=self.profile.namesake_groups,
            spelling_people=self.profile.spelling_people,
        )
        self.truth = TruthBook(self.cast)
        self.files: dict[str, PlannedFile] = {}
        self.regulars = [p for p in self.cast.people if p.name != CANARY_NAME]
        self.full_cards: set[str] = set()
        """Persons some contact list shows with every number and address (see contacts)."""
        self.inbox: dict[str, list[tuple[EmailSpec, str]]] = {}
        self.printed: set[str] = set()
        self.pngs_left = self.profile.png_attachments
        self.counter = 0
        self.skews: dict[str, SkewTrap] = {}
        """Skew traps by truth event id (their sources are noted as the phone files are written)."""

    # -- helpers -------------------------------------------------------------------------

    def plan(self) -> ProductionPlan:
        self.plan_emails()
        self.plan_trap_emails()
        self.plan_mboxes()
        self.plan_printed_pdfs()
        self.plan_documents()
        self.plan_scans()
        self.plan_phones()
        self.plan_volume()
        self.plan_archives()
        self.plan_hostile()
        files = sorted(self.files.values(), key=lambda f: f.path)
        canaries = [CANARY_NAME, CANARY_EMAIL, CANARY_PHONE, *CANARY_PHONE_FORMS]
        truth = self.truth.to_json(self.seed, self.size, canaries, len(files))
        passwords = [DECOY_PASSWORDS[0], ARCHIVE_PASSWORD, *DECOY_PASSWORDS[1:]]
        return ProductionPlan(self.size, self.seed, files, truth, passwords)

    def add_file(self, path: str, build: Callable[[], bytes], scanned_pages: int = 0) -> None:
        if path in self.files:
            raise ValueError(f"planned twice: {path}")
        self.files[path] = PlannedFile(path, build, scanned_pages)

    def next_number(self) -> int:
        self.counter += 1
        return self.counter

    def folder(self, person: Person) -> str:
        return f"{PROD}/custodians/{person.folder}"

    def mailbox(self, person: Person) -> Mailbox:
        address = (person.display_emails[0] if self.rng.random() < 0.8
                   else self.rng.choice(person.display_emails))
        return Mailbox(person.name, address)

    def instant(self, tz: str, whole_minute: bool = False, hours: tuple[int, int] = (8, 19)
                ) -> datetime:
        """A local time in 2025 inside ``hours`` (never in a DST gap or fold)."""
        rng = self.rng
        day = datetime(2025, 1, 2) + timedelta(days=rng.randint(0, 360))
        local = day.replace(hour=rng.randint(hours[0], hours[1] - 1),
                            minute=rng.randint(0, 59),
                            second=0 if whole_minute else rng.randint(0, 59))
        return local.replace(tzinfo=ZoneInfo(tz))

    # -- emails --------------------------------------------------------------------------

    def new_email(self, include: list[Person], *, printable: bool = False,
                  sender: Person | None = None, extra: str = "",
                  sender_box: Mailbox | None = None) -> EmailSpec:
        """A fresh email event whose participants include every person in ``include``.

        ``printable`` emails have whole-minute times (a printout shows minutes only, so the
        printout and the .eml agree on the instant), no Bcc and at most three recipients.
        ``sender_box`` fixes the From address (else one of the sender's is picked).
        """
        rng = self.rng
        if sender is None:
            sender = include[0] if rng.random() < 0.5 else rng.choice(self.regulars)
        wanted = [p for p in dict.fromkeys(include) if p is not sender]
        count = max(len(wanted), rng.choice((1, 1, 2, 2, 3)))
        pool = [p for p in self.regulars if p is not sender and p not in wanted]
        recipients = (wanted + rng.sample(pool, k=count - len(wanted)))[:3]
        rng.shuffle(recipients)
        n_to = max(1, len(recipients) - rng.choice((0, 1)))
        to = [self.mailbox(p) for p in recipients[:n_to]]
        cc = [self.mailbox(p) for p in recipients[n_to:]]
        if len(to) + len(cc) < 3 and rng.random() < 0.12:
            to.append(rng.choice(EXTERNAL_MAILBOXES))
        bcc: list[Mailbox] = []
        if not printable and rng.random() < 0.05:
            bcc = [self.mailbox(rng.choice(pool))]
        sent = self.instant(sender.timezone, whole_minute=printable)
        body = wording.email_body(rng, to[0].name, sender.name, extra,
                                  self.signature(sender) if sender.signature else None)
        event = self.truth.new_event("email", sent, [])
        spec = EmailSpec(event, sender_box or self.mailbox(sender), to, cc, bcc,
                         wording.subject(rng), body, sent)
        event.participants = participants(spec)
        return spec

    def signature(self, person: Person) -> list[str]:
        """Name, company and the phone a person signs with (their last one)."""
        return [person.name, company_of(person.email),
                f"Mobile: {format_phone(person.phones[-1], self.rng.randint(0, 5))}"]

    def place_email(self, spec: EmailSpec, paths: list[str]) -> None:
        for path in paths:
            self.add_file(path, partial(eml_bytes, spec))
            self.note_sources(spec, path)

    def note_sources(self, spec: EmailSpec, where: str) -> None:
        """Record ``where`` as a source of the email and of any email attached to it."""
        spec.event.add_source(where)
        if spec.forwarded is not None:
            inner = f"{where}#attachment:{forwarded_name(spec.forwarded)}"
            self.note_sources(spec.forwarded, inner)

    def add_attachments(self, spec: EmailSpec, owner: Person) -> list[tuple[str, str]]:
        """Maybe attach files; returns (attachment name, document type) pairs to record."""
        rng = self.rng
        roll = rng.random()
        n = self.next_number()
        docs: list[tuple[str, str]] = []
        if roll < 0.08:
            name = f"invoice-{n:05d}.pdf"
            spec.attachments.append(Attachment(name, "application/pdf",
                                               self.invoice_builder(spec.sent, n)))
            docs.append((name, "pdf"))
        elif roll < 0.14:
            name = f"expenses-{n:05d}.csv"
            spec.attachments.append(Attachment(name, "text/csv", self.expense_builder(n)))
            docs.append((name, "csv"))
        elif roll < 0.17 and self.pngs_left > 0:
            self.pngs_left -= 1
            name = f"chart-{n:05d}.png"
            spec.attachments.append(Attachment(name, "image/png", partial(_chart_png, n)))
            docs.append((name, "png"))
        elif roll < 0.24:
            spec.forwarded = self.new_email([owner])
        return docs

    def plan_emails(self) -> None:
        rng = self.rng
        custodians = self.cast.custodians
        for c in custodians:
            self.inbox[c.folder] = []
        canary = self.cast.canary
        for i in range(self.profile.emails):
            home = custodians[i % len(custodians)]
            include = [home]
            if rng.random() < self.profile.shared_fraction:
                include.append(rng.choice([c for c in custodians if c is not home]))
            extra = ""
            if i == 1:
                extra = (f"If you cannot reach me, call {CANARY_NAME} on {CANARY_PHONE_FORMS[2]}"
                         f" (cell {CANARY_PHONE_FORMS[1]}) or write to {CANARY_EMAIL}.")
            spec = self.new_email(include, printable=rng.random() < 0.3,
                                  sender=canary if i == 0 else None, extra=extra)
            docs = self.add_attachments(spec, home)
            name = f"{spec.sent:%Y%m%d-%H%M}-{i:04d}.eml"
            paths = [f"{self.folder(c)}/mail/{name}" for c in dict.fromkeys(include)]
            self.place_email(spec, paths)
            for c, path in zip(dict.fromkeys(include), paths, strict=True):
                self.inbox[c.folder].append((spec, path))
            for att_name, kind in docs:
                self.truth.add_document(f"{paths[0]}#attachment:{att_name}", kind,
                                        1 if kind in ("pdf", "png") else 0)

    def trap_email_path(self, holder: Person, spec: EmailSpec, tag: str) -> str:
        return f"{self.folder(holder)}/mail/{spec.sent:%Y%m%d-%H%M}-{tag}.eml"

    def plan_trap_emails(self) -> None:
        """Emails that make the identity traps visible: every namesake writes to and hears from
        a custodian, every spelling of a spelling person's address (and the capitalised form
        Outlook shows) heads a From line under the same display name, and custodians forward
        earlier emails of their mailbox with the text quoted."""
        rng = self.rng
        custodians = self.cast.custodians
        n = 0
        for members in self.cast.namesake_groups.values():
            for member in members:
                peer = rng.choice([c for c in custodians if c is not member])
                for spec in (self.new_email([peer], sender=member),
                             self.new_email([member], sender=peer)):
                    n += 1
                    sender = self.cast.member(
                        self.cast.person_of("email", spec.sender.address.lower()))
                    holders = dict.fromkeys(p for p in (sender, peer)
                                            if p is not None and p.custodian)
                    self.place_email(spec, [self.trap_email_path(h, spec, f"ns{n:03d}")
                                            for h in holders])
        for person in self.cast.spelling_people:
            boxes = [*person.emails, display_variant(person.emails[0])]
            for address in boxes:
                peer = rng.choice(custodians)
                spec = self.new_email([peer], sender=person,
                                      sender_box=Mailbox(person.name, address))
                n += 1
                self.place_email(spec, [self.trap_email_path(peer, spec, f"sp{n:03d}")])
        for k in range(self.profile.forwards):
            self.plan_forward(custodians[k % len(custodians)], k)

    def plan_forward(self, forwarder: Person, k: int) -> None:
        """``forwarder`` forwards an earlier email of their mailbox, quoting it in the body
        (Gmail's "Forwarded message" block or Outlook's "Original Message" block)."""
        rng = self.rng
        used = {t.original.id for t in self.truth.forwards}
        mailbox_specs = [spec for spec, _ in self.inbox[forwarder.folder]
                         if spec.forwarded is None and spec.event.id not in used
                         and spec.sender.address.lower() != CANARY_EMAIL]
        received = [s for s in mailbox_specs if s.sender.address.lower() not in forwarder.emails]
        original = rng.choice(received or mailbox_specs)
        pool = [p for p in self.regulars if p is not forwarder]
        recipients = rng.sample(pool, k=rng.choice((1, 1, 2)))
        to = [self.mailbox(p) for p in recipients]
        delay = timedelta(minutes=rng.randint(20, 1800), seconds=rng.randint(0, 59))
        sent = (original.sent + delay).astimezone(ZoneInfo(forwarder.timezone))
        gmail = k % 2 == 0
        if gmail:
            quoted = ["---------- Forwarded message ---------", *gmail_header_lines(original)]
            subject = f"Fwd: {original.subject}"
        else:
            quoted = ["-----Original Message-----", *outlook_header_lines(original)]
            subject = f"FW: {original.subject}"
        note = wording.forward_note(rng, to[0].name, forwarder.name)
        body = "\n".join([note, "", *quoted, "", original.body])
        event = self.truth.new_event("email", sent, [])
        spec = EmailSpec(event, self.mailbox(forwarder), to, [], [], subject, body, sent)
        event.participants = participants(spec)
        holders = dict.fromkeys(p for p in (forwarder, *recipients) if p.custodian)
        self.place_email(spec, [self.trap_email_path(h, spec, f"fwd{k + 1:03d}")
                                for h in holders])
        self.truth.add_forward(event, original.event)

    def plan_mboxes(self) -> None:
        for c in self.cast.custodians:
            specs = [self.new_email([c]) for _ in range(self.profile.mbox_emails)]
            specs += [spec for spec, _ in self.inbox[c.folder][:2]]
            specs.sort(key=lambda s: (s.sent.astimezone(UTC), s.event.id))
            path = f"{self.folder(c)}/mail/archive-2025.mbox"
            self.add_file(path, partial(mbox_bytes, specs))
            for index, spec in enumerate(specs):
                self.note_sources(spec, f"{path}#msg:{index}")

    def reuse_printable(self, custodian: Person) -> EmailSpec | None:
        """An email of this custodian that may also appear as a printout (once)."""
        for spec, _ in self.inbox[custodian.folder]:
            if (spec.sent.second == 0 and not spec.bcc and spec.event.id not in self.printed
                    and len(spec.to) + len(spec.cc) <= 3):
                self.printed.add(spec.event.id)
                return spec
        return None

    def printable_email(self, custodian: Person) -> EmailSpec:
        reused = self.reuse_printable(custodian) if self.rng.random() < 0.3 else None
        return reused or self.new_email([custodian], printable=True)

    def plan_printed_pdfs(self) -> None:
        custodians = self.cast.custodians
        for i in range(self.profile.printed_pdfs):
            c = custodians[i % len(custodians)]
            specs = [self.printable_email(c) for _ in range(self.rng.randint(1, 3))]
            pages = [[*outlook_header_lines(s), "", *s.body.split("\n")] for s in specs]
            created = max(s.sent for s in specs).astimezone(UTC) + timedelta(days=2, hours=3)
            path = f"{self.folder(c)}/documents/printed/email-print-{i + 1:04d}.pdf"
            self.add_file(path, partial(text_pdf, pages, "Printed email", created))
            for page, spec in enumerate(specs, start=1):
                spec.event.add_source(f"{path}#page:{page}")
            self.truth.add_document(path, "pdf", len(pages), created=_iso(created))

    # -- documents ----------------------------------------------------------------------

    def invoice_builder(self, around: datetime, number: int) -> Callable[[], bytes]:
        rng = self.rng
        created = around.astimezone(UTC) - timedelta(days=rng.randint(1, 20))
        items = [(rng.choice(("Freight", "Storage", "Handling", "Inspection", "Dock fees")),
                  rng.randint(80, 4000)) for _ in range(rng.randint(2, 5))]
        lines = [f"INVOICE No. {number:05d}", f"Invoice date: {_long_date(created)}",
                 "Bill to: Harbor Corporation", ""]
        lines += [f"{name:<20} USD {amount:>8,}.00" for name, amount in items]
        lines += ["", f"Total due: USD {sum(a for _, a in items):,}.00"]
        return partial(text_pdf, [lines], f"Invoice {number:05d}", created)

    def expense_builder(self, number: int) -> Callable[[], bytes]:
        rng = self.rng
        rows: list[Row] = [["Item", "Category", "Amount", "Approved By"]]
        for _ in range(rng.randint(3, 8)):
            rows.append([rng.choice(("Taxi", "Hotel", "Meals", "Parking", "Courier")),
                         rng.choice(("Travel", "Office", "Client")),
                         f"{rng.randint(5, 900)}.{rng.randint(0, 99):02d}",
                         rng.choice(self.regulars).name])
        return partial(csv_bytes, rows)

    def memo_builder(self, created: datetime) -> tuple[Callable[[], bytes], int]:
        rng = self.rng
        kind = rng.choice(wording.MEMO_KINDS)
        topic = rng.choice(wording.TOPICS)
        pages = []
        for _ in range(rng.choice((1, 1, 2))):
            pages.append([kind, f"Date: {_long_date(created)}", f"Re: {topic}", "",
                          *[p for para in wording.paragraphs(rng, 3) for p in (para, "")]])
        return partial(text_pdf, pages, f"{kind.title()} - {topic}", created), len(pages)

    def plan_documents(self) -> None:
        rng = self.rng
        custodians = self.cast.custodians
        for i in range(self.profile.memos):
            c = custodians[i % len(custodians)]
            created = self.instant(c.timezone)
            build, pages = self.memo_builder(created)
            path = f"{self.folder(c)}/documents/memo-{i + 1:04d}.pdf"
            self.add_file(path, build)
            self.truth.add_document(path, "pdf", pages, created=_iso(created))
        for i in range(self.profile.notes):
            c = custodians[i % len(custodians)]
            paras = wording.paragraphs(rng, rng.randint(1, 3))
            text = "\n\n".join("\n".join(textwrap.wrap(p, 90)) for p in paras) + "\n"
            path = f"{self.folder(c)}/notes/note-{i + 1:04d}.txt"
            self.add_file(path, partial(_utf8, text))
            self.truth.add_document(path, "text", 1)
        for i in range(self.profile.data_csvs):
            c = custodians[i % len(custodians)]
            path = f"{self.folder(c)}/data/expenses-{i + 1:04d}.csv"
            self.add_file(path, self.expense_builder(i + 1))
            self.truth.add_document(path, "csv", 0)

    # -- scans ---------------------------------------------------------------------------

    def scan_page(self, key: str, header: list[str], body: str) -> ScanPage:
        rng = self.rng
        lines, header_count = layout(header, body)
        page = ScanPage(key, lines, header_count, round(rng.uniform(-1.5, 1.5), 2))
        if rng.random() < 0.5:
            spots = redactable_words(lines, header_count, (*CANARY_PHONE_FORMS, CANARY_NAME,
                                                           CANARY_EMAIL, "@"))
            used_lines: set[int] = set()
            for li, wi in rng.sample(spots, k=min(len(spots), 4)):
                if li not in used_lines and len(page.redactions) < 2:
                    used_lines.add(li)
                    page.redactions.append((li, wi))
        return page

    def email_scan_page(self, key: str, custodian: Person, canary: bool) -> ScanPage:
        if canary:
            extra = f"Zebulon's direct line is {CANARY_PHONE_FORMS[0]}."
            spec = self.new_email([custodian], printable=True, sender=self.cast.canary,
                                  extra=extra)
        else:
            spec = self.printable_email(custodian)
        style = outlook_header_lines if self.rng.random() < 0.5 else gmail_header_lines
        spec.event.add_source(key)
        return self.scan_page(key, style(spec), spec.body)

    def letter_scan_page(self, key: str, custodian: Person) -> tuple[ScanPage, datetime, str]:
        rng = self.rng
        writer = rng.choice(self.regulars)
        dated = self.instant(writer.timezone)
        header = ["HARBOR CORPORATION", "1200 Quay Street, Suite 400, Portsmouth",
                  _long_date(dated)]
        paras = wording.paragraphs(rng, 3)
        body = "\n".join([f"Dear {custodian.name},", "", *[x for p in paras for x in (p, "")],
                          "Sincerely,", writer.name])
        page = self.scan_page(key, header, body)
        return page, dated, "\n".join(page.lines)

    def plan_scans(self) -> None:
        rng = self.rng
        custodians = self.cast.custodians
        kinds = (["email"] * self.profile.scan_email_pages
                 + ["letter"] * self.profile.scan_letter_pages)
        rng.shuffle(kinds)
        kinds.remove("email")
        kinds.insert(0, "email")  # the first scanned email carries the canary
        formats = ("tiff_g4", "jpeg", "pdf", "tiff_lzw")
        index = 0
        while kinds:
            fmt = formats[index % len(formats)]
            count = {"tiff_g4": rng.randint(1, 3), "pdf": rng.randint(2, 3)}.get(fmt, 1)
            chunk, kinds = kinds[:count], kinds[count:]
            c = custodians[index % len(custodians)]
            ext = {"tiff_g4": "tif", "tiff_lzw": "tiff", "jpeg": "jpg", "pdf": "pdf"}[fmt]
            path = f"{self.folder(c)}/scans/scan-{index + 1:04d}.{ext}"
            pages: list[ScanPage] = []
            for number, kind in enumerate(chunk, start=1):
                key = f"{path}#page:{number}" if ext in ("tif", "tiff", "pdf") else path
                if kind == "email":
                    pages.append(self.email_scan_page(key, c, canary=index == 0 and number == 1))
                else:
                    pages.append(self.letter_scan_page(key, c)[0])
            if fmt == "jpeg":
                build: Callable[[], bytes] = partial(jpeg_bytes, pages[0])
            elif fmt == "pdf":
                created = datetime(2025, 12, 15, 9, 30, tzinfo=UTC)
                build = partial(_scanned_pdf, pages, created)
            else:
                build = partial(tiff_bytes, pages, "group4" if fmt == "tiff_g4" else "tiff_lzw")
            self.add_file(path, build, scanned_pages=len(pages))
            doc_type = {"tif": "tiff", "tiff": "tiff", "jpg": "jpeg"}.get(ext, ext)
            self.truth.add_document(path, doc_type, len(pages), scanned=True,
                                    redactions=[len(p.redactions) for p in pages])
            index += 1

    # -- phones --------------------------------------------------------------------------

    def plan_phones(self) -> None:
        rng = self.rng
        custodians = self.cast.custodians
        phones = {c.folder: _Phone() for c in custodians}
        everyone = [n for p in self.regulars for n in p.phones]
        externals = [f"+1{rng.choice(('312', '646', '713'))}55501{n:02d}" for n in range(100)]
        externals = [n for n in externals if n not in self.cast.by_phone][:20]
        for kind, per_custodian in (("call", self.profile.calls),
                                    ("message", self.profile.messages)):
            for i in range(per_custodian * len(custodians)):
                owner = custodians[i % len(custodians)]
                if i < 2 * len(custodians) and i % len(custodians) == 0:
                    other = CANARY_PHONE
                else:
                    pick = rng.random()
                    pool = [n for n in everyone if n not in owner.phones]
                    other = rng.choice(externals) if pick < 0.2 else rng.choice(pool)
                self.plan_phone_event(kind, owner, other, phones)
        self.plan_trap_calls(phones)
        for n, c in enumerate(custodians):
            self.write_phone_files(c, phones[c.folder], xlsx_calls=n % 2 == 0)

    def new_phone_event(self, kind: str, caller: str, callee: str, local: datetime,
                        missed: bool) -> _CallPlan:
        rng = self.rng
        duration = 0 if missed or kind != "call" else rng.randint(5, 1800)
        roles = ("caller", "callee") if kind == "call" else ("sender", "recipient")
        event = self.truth.new_event(
            kind, local, [(roles[0], "phone", caller), (roles[1], "phone", callee)])
        return _CallPlan(event, local.astimezone(UTC), caller, callee, duration, missed,
                         wording.sms_text(rng) if kind == "message" else "")

    def plan_phone_event(self, kind: str, owner: Person, other: str,
                         phones: dict[str, _Phone]) -> None:
        """A call or message between custodian ``owner`` and ``other``, in the CDRs and exports
        of whichever custodians hold one of its numbers (at least one file shows it)."""
        rng = self.rng
        device_owner = {c.phone: c for c in self.cast.custodians}
        outgoing = rng.random() < 0.5
        caller, callee = (owner.phone, other) if outgoing else (other, owner.phone)
        local = self.instant(owner.timezone, hours=(7, 22))
        missed = kind == "call" and rng.random() < 0.15
        plan = self.new_phone_event(kind, caller, callee, local, missed)
        holders = [device_owner[n] for n in (caller, callee) if n in device_owner]
        placed = False
        for holder in holders:
            book = phones[holder.folder]
            if rng.random() < 0.8:
                (book.cdr_calls if kind == "call" else book.cdr_sms).append((plan.start, plan))
                placed = True
            if rng.random() < 0.45:
                (book.export_calls if kind == "call" else book.export_sms).append(
                    (plan.start, plan))
                placed = True
        if not placed:
            book = phones[owner.folder]
            (book.cdr_calls if kind == "call" else book.cdr_sms).append((plan.start, plan))

    def plan_trap_calls(self, phones: dict[str, _Phone]) -> None:
        """Calls of every namesake and spelling-person number with a custodian, and calls
        between two custodians that one's CDR shows at the true time and the other's phone
        export ``SKEW_S`` seconds off (one logical call, two sources)."""
        rng = self.rng
        custodians = self.cast.custodians
        trap_people = [p for members in self.cast.namesake_groups.values() for p in members]
        trap_people += self.cast.spelling_people
        for person in trap_people:
            for number in person.phones:
                peer = rng.choice([c for c in custodians if c is not person])
                self.plan_phone_event("call", peer, number, phones)
        for k in range(self.profile.skewed_calls):
            carrier, export = custodians[k % len(custodians)], custodians[
                (k + 1) % len(custodians)]
            pair = (carrier.phone, export.phone)
            caller, callee = pair if rng.random() < 0.5 else pair[::-1]
            local = self.instant(carrier.timezone, hours=(8, 20))
            plan = self.new_phone_event("call", caller, callee, local, missed=False)
            skew = SKEW_S if k % 2 == 0 else -SKEW_S
            self.skews[plan.event.id] = self.truth.add_skew(plan.event, skew)
            phones[carrier.folder].cdr_calls.append((plan.start, plan))
            phones[export.folder].export_calls.append(
                (plan.start + timedelta(seconds=skew), plan))

    def write_phone_files(self, c: Person, book: _Phone, xlsx_calls: bool) -> None:
        base = f"{self.folder(c)}/phone"
        rng = self.rng
        rows: list[Row] = [CDR_CALL_HEADER]
        for when, call in sorted(book.cdr_calls, key=_by_time):
            rows.append([f"{when:%Y-%m-%d %H:%M:%S}", format_phone(call.caller, len(rows)),
                         format_phone(call.callee, len(rows) + 1), call.duration, "Voice"])
            source = f"{base}/carrier_calls.csv#row:{len(rows)}"
            call.event.add_source(source)
            if call.event.id in self.skews:
                self.skews[call.event.id].reference_source = source
        self.add_file(f"{base}/carrier_calls.csv", partial(csv_bytes, rows))

        rows = [CDR_SMS_HEADER]
        for when, msg in sorted(book.cdr_sms, key=_by_time):
            rows.append([f"{when:%Y-%m-%d %H:%M:%S}", format_phone(msg.caller, len(rows)),
                         format_phone(msg.callee, len(rows) + 2), msg.body])
            msg.event.add_source(f"{base}/carrier_sms.csv#row:{len(rows)}")
        self.add_file(f"{base}/carrier_sms.csv", partial(csv_bytes, rows))

        zone = ZoneInfo(c.timezone)
        preamble = export_preamble(format_phone(c.phone, 3), c.name)
        for kind, entries, header in (("calls", book.export_calls, EXPORT_CALL_HEADER),
                                      ("messages", book.export_sms, EXPORT_SMS_HEADER)):
            rows = [*preamble, header]
            ext = "xlsx" if (kind == "calls") == xlsx_calls else "csv"
            name = f"{base}/phone_export_{kind}.{ext}"
            for when, item in sorted(entries, key=_by_time):
                local = when.astimezone(zone)
                outgoing = item.caller == c.phone
                other = item.callee if outgoing else item.caller
                direction = ("Outgoing" if outgoing else "Missed" if item.missed
                             else "Incoming")
                contact = self.cast.person_of("phone", other)
                contact_name = self.cast.name_of(contact) if contact and rng.random() < 0.8 \
                    else ""
                last = item.duration if kind == "calls" else item.body
                rows.append([local.strftime("%m/%d/%Y"), local.strftime("%I:%M:%S %p").lstrip("0"),
                             c.timezone, direction, format_phone(other, 3 + len(rows) % 3),
                             contact_name, last])
                source = f"{name}#row:{len(rows)}"
                item.event.add_source(source)
                if when != item.start:
                    self.skews[item.event.id].skewed_source = source
            self.add_file(name, partial(xlsx_bytes, rows) if ext == "xlsx"
                          else partial(csv_bytes, rows))

        contacts: list[Row] = [CONTACT_HEADER]
        others = [p for p in self.regulars if p is not c]
        known = rng.sample(others, k=min(8, len(others)))
        lead, tail = self.cast.custodians[0], self.cast.custodians[-1]
        if c is lead:
            known.append(self.cast.canary)
            # Namesakes side by side (same name, nothing else shared) and the spelling people.
            known += [p for members in self.cast.namesake_groups.values() for p in members]
            if tail is not lead:
                known.append(tail)  # nobody after the tail could list the tail's numbers
        if c in (lead, tail):
            known += self.cast.spelling_people
        if c is tail:
            # Whoever has a second number or address is on one card that shows all of them:
            # without such evidence a second phone seen under a shared name is a namesake's
            # as much as the person's, and no resolver should (or could) join it.
            known += [p for p in self.regulars if p.id not in self.full_cards
                      and len(p.phones) + len(p.emails) > 1]
        for p in dict.fromkeys(known):
            if p is c:
                continue
            # A person's first card holds every number and address; later ones sometimes only
            # the main ones. A spelling person's card lists both phones but one spelling.
            full = p.id not in self.full_cards
            self.full_cards.add(p.id)
            numbers = p.phones if full or p.spellings or rng.random() < 0.5 else p.phones[:1]
            addresses = ([p.email] if p.spellings else p.emails if full
                         else [p.email] if rng.random() < 0.5 else p.emails)
            contacts.append([p.name,
                             "; ".join(format_phone(n, len(contacts) + k)
                                       for k, n in enumerate(numbers)),
                             "; ".join(addresses)])
        self.add_file(f"{base}/contacts.csv", partial(csv_bytes, contacts))
        self.truth.add_document(f"{base}/contacts.csv", "csv", 0)

    # -- Concordance volume --------------------------------------------------------------

    def plan_volume(self) -> None:
        rng = self.rng
        vol = f"{PROD}/VOL001"
        dat_path = f"{vol}/DATA/VOL001.dat"
        rows: list[DatRow] = []
        images: list[tuple[str, list[str]]] = []
        number = 1
        custodians = self.cast.custodians
        reusable = [spec for spec, _ in self.inbox[custodians[0].folder]]

        def text_file(begin: str, text: str) -> str:
            self.add_file(f"{vol}/TEXT/0001/{begin}.txt", partial(_utf8, text))
            return volume_path("TEXT", "0001", f"{begin}.txt")

        for i in range(self.profile.dat_emails):
            c = custodians[i % len(custodians)]
            reuse = i % 10 == 3 and bool(reusable)
            spec = reusable.pop(0) if reuse else self.new_email([c])
            begin = bates(number)
            family: list[DatRow] = []
            attachment_pdf: Callable[[], bytes] | None = None
            if not reuse and i % 4 == 1 and spec.forwarded is None:
                attachment_pdf = self.invoice_builder(spec.sent, 90000 + i)
                spec.attachments.append(Attachment(f"invoice-{90000 + i}.pdf", "application/pdf",
                                                   attachment_pdf))
            end_family = bates(number + (1 if attachment_pdf else 0))
            utc = i % 3 == 0
            shown = spec.sent.astimezone(UTC) if utc else spec.sent
            offset = shown.strftime("%z")
            native = f"{vol}/NATIVES/0001/{begin}.eml"
            self.add_file(native, partial(eml_bytes, spec))
            header = outlook_header_lines(spec)
            family.append(DatRow(
                begbates=begin, endbates=begin, begattach=begin, endattach=end_family,
                custodian=_last_first(c.name), from_=spec.sender.header(),
                to="; ".join(m.header() for m in spec.to),
                cc="; ".join(m.header() for m in spec.cc),
                bcc="; ".join(m.header() for m in spec.bcc), subject=spec.subject,
                datesent=shown.strftime("%m/%d/%Y"), timesent=shown.strftime("%H:%M:%S"),
                timezone="UTC" if utc else f"{offset[:3]}:{offset[3:]}",
                filename=f"{begin}.eml", doctype="Email",
                textpath=text_file(begin, "\n".join([*header, "", spec.body]) + "\n"),
                nativepath=volume_path("NATIVES", "0001", f"{begin}.eml"),
            ))
            self.note_sources(spec, native)
            spec.event.add_source(f"{dat_path}#bates:{begin}")
            number += 1
            if attachment_pdf is not None:
                child = bates(number)
                pdf_path = f"{vol}/NATIVES/0001/{child}.pdf"
                self.add_file(pdf_path, attachment_pdf)
                family.append(DatRow(
                    begbates=child, endbates=child, begattach=begin, endattach=end_family,
                    custodian=_last_first(c.name), filename=f"invoice-{90000 + i}.pdf",
                    doctype="Attachment", textpath=text_file(child, "Invoice\n"),
                    nativepath=volume_path("NATIVES", "0001", f"{child}.pdf"),
                ))
                self.truth.add_document(pdf_path, "pdf", 1, bates=child)
                number += 1
            rows += family

        for i in range(self.profile.dat_pdfs):
            c = custodians[i % len(custodians)]
            created = self.instant(c.timezone)
            build, pages = self.memo_builder(created)
            begin = bates(number)
            path = f"{vol}/NATIVES/0001/{begin}.pdf"
            self.add_file(path, build)
            rows.append(DatRow(
                begbates=begin, endbates=bates(number + pages - 1), begattach=begin,
                endattach=begin, custodian=_last_first(c.name), filename=f"memo-{i + 1}.pdf",
                doctype="Memo", datecreated=created.strftime("%m/%d/%Y"),
                textpath=text_file(begin, "Memorandum\n"),
                nativepath=volume_path("NATIVES", "0001", f"{begin}.pdf"),
            ))
            self.truth.add_document(path, "pdf", pages, created=_iso(created), bates=begin)
            number += pages

        for i in range(self.profile.dat_scanned_letters):
            c = custodians[i % len(custodians)]
            pages_n = rng.choice((1, 2, 3))
            begin = bates(number)
            paths: list[str] = []
            texts: list[str] = []
            dated = None
            for k in range(pages_n):
                key = bates(number + k)
                image = f"{vol}/IMAGES/0001/{key}.tif"
                page, page_date, text = self.letter_scan_page(image, c)
                dated = dated or page_date
                self.add_file(image, partial(tiff_bytes, [page], "group4"), scanned_pages=1)
                paths.append(volume_path("IMAGES", "0001", f"{key}.tif"))
                texts.append(text)
            assert dated is not None
            rows.append(DatRow(
                begbates=begin, endbates=bates(number + pages_n - 1), begattach=begin,
                endattach=begin, custodian=_last_first(c.name), doctype="Letter",
                filename=f"letter-{i + 1}.tif", datecreated=dated.strftime("%m/%d/%Y"),
                textpath=text_file(begin, "\n\f".join(texts) + "\n"),
            ))
            images.append((begin, paths))
            self.truth.add_document(f"{dat_path}#bates:{begin}", "loadfile_document", pages_n,
                                    bates=begin, scanned=True,
                                    images=[f"{vol}/{p.replace(chr(92), '/')}" for p in paths])
            number += pages_n

        self.add_file(dat_path, partial(dat_bytes, rows))
        self.add_file(f"{vol}/DATA/VOL001.opt", partial(opt_bytes, images))

    # -- archives ------------------------------------------------------------------------

    def plan_archives(self) -> None:
        custodians = self.cast.custodians
        c, d = custodians[0], custodians[1 % len(custodians)]

        secure = f"{self.folder(c)}/archive/secure-export.zip"
        entries: list[Member] = []
        for k in range(3):
            spec = self.new_email([c])
            name = f"mail/{k + 1:04d}.eml"
            entries.append((name, partial(eml_bytes, spec)))
            self.note_sources(spec, f"{secure}#entry:{name}")
        entries.append(("ledger.csv", self.expense_builder(7001)))
        self.add_file(secure, partial(_aes_zip, entries, ARCHIVE_PASSWORD, secure))
        self.truth.add_document(f"{secure}#entry:ledger.csv", "csv", 0)

        bundle = f"{self.folder(d)}/archive/bundle.zip"
        spec = self.new_email([d])
        memo, memo_pages = self.memo_builder(self.instant(d.timezone))
        inner: list[Member] = [("mail/0001.eml", partial(eml_bytes, spec)), ("memo.pdf", memo)]
        readme = partial(_utf8, "Records bundle, see inner archive.\n")
        outer: list[Member] = [("readme.txt", readme), ("inner/records.zip", partial(_zip, inner))]
        self.add_file(bundle, partial(_zip, outer))
        self.note_sources(spec, f"{bundle}#entry:inner/records.zip#entry:mail/0001.eml")
        self.truth.add_document(f"{bundle}#entry:inner/records.zip#entry:memo.pdf", "pdf",
                                memo_pages)

        for path, writer in ((f"{self.folder(c)}/archive/documents.7z", _sevenzip),
                             (f"{self.folder(d)}/archive/documents.tgz", _tgz)):
            created = self.instant(c.timezone)
            memo, memo_pages = self.memo_builder(created)
            note = "\n".join(wording.paragraphs(self.rng, 2)) + "\n"
            members: list[Member] = [("docs/memo.pdf", memo),
                                     ("docs/note.txt", partial(_utf8, note)),
                                     ("docs/expenses.csv", self.expense_builder(7002))]
            self.add_file(path, partial(writer, members))
            self.truth.add_document(f"{path}#entry:docs/memo.pdf", "pdf", memo_pages,
                                    created=_iso(created))
            self.truth.add_document(f"{path}#entry:docs/note.txt", "text", 1)
            self.truth.add_document(f"{path}#entry:docs/expenses.csv", "csv", 0)

    # -- hostile -------------------------------------------------------------------------

    def plan_hostile(self) -> None:
        rng = self.rng
        custodians = self.cast.custodians
        base = f"{self.folder(custodians[-1])}/misc"
        memo, _ = self.memo_builder(datetime(2025, 6, 2, 15, 0, tzinfo=UTC))
        noise = hostile.random_bytes(rng, 8192)
        cases: list[tuple[str, Callable[[], bytes], str, str, dict[str, Any]]] = [
            ("final-report.pdf", partial(_truncate, memo), "failed", "corrupt", {}),
            ("statement.pdf", partial(_const, noise), "failed", "unsupported_format", {}),
            ("diagram.png", hostile.png_bomb, "failed", "limit_pixels", {}),
            ("shared-files.zip", partial(hostile.zip_slip, "notes/readme.txt",
                                         b"Shared folder export.\n"),
             "processed", "path_traversal", {"refused_entries": 1}),
            ("vault.zip", partial(_unlisted_zip, UNLISTED_PASSWORD), "failed",
             "password_required", {}),
            ("rates.xlsx", hostile.xxe_xlsx, "failed", "xml_forbidden", {}),
            ("export-dump.csv", partial(hostile.huge_field_csv, self.profile.huge_field_bytes),
             "failed", "limit_field", {"field_bytes": self.profile.huge_field_bytes}),
            ("calls-broken.csv", partial(hostile.invalid_utf8_csv,
                                         random.Random(f"{self.seed}:utf8")),
             "failed", "encoding", {}),
            ("empty.txt", partial(_const, b""), "failed", "empty", {}),
        ]
        for name, build, expected, reason, extra in cases:
            path = f"{base}/{name}"
            self.add_file(path, build)
            self.truth.add_hostile(path, expected, reason, **extra)
        self.truth.add_document(f"{base}/shared-files.zip#entry:notes/readme.txt", "text", 1)


# -- module-level builders (picklable, so files can be rendered in worker processes) ----------

def _by_time(item: tuple[datetime, _CallPlan]) -> tuple[datetime, str]:
    return item[0], item[1].event.id


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _long_date(dt: datetime) -> str:
    return f"{dt:%B} {dt.day}, {dt.year}"


def _last_first(name: str) -> str:
    first, _, last = name.partition(" ")
    return f"{last}, {first}"


def _utf8(text: str) -> bytes:
    return text.encode("utf-8")


def _const(data: bytes) -> bytes:
    return data


def _truncate(build: Callable[[], bytes]) -> bytes:
    return hostile.truncated_pdf(build())


def _built(entries: list[Member]) -> list[tuple[str, bytes]]:
    return [(name, build()) for name, build in entries]


def _zip(entries: list[Member]) -> bytes:
    return zip_bytes(_built(entries))


def _aes_zip(entries: list[Member], password: str, salt: str) -> bytes:
    return aes_zip_bytes(_built(entries), password, salt)


def _unlisted_zip(password: str) -> bytes:
    return hostile.unknown_password_zip([("private/notes.txt", b"Nothing to see.\n")], password)


def _sevenzip(entries: list[Member]) -> bytes:
    return sevenzip_bytes(_built(entries))


def _tgz(entries: list[Member]) -> bytes:
    return tgz_bytes(_built(entries))


def _scanned_pdf(pages: list[ScanPage], created: datetime) -> bytes:
    return image_pdf([render(p) for p in pages], "Scanned document", created)


def _chart_png(number: int) -> bytes:
    """A small chart-like PNG with a caption (a cheap image attachment)."""
    image = Image.new("L", (480, 200), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(str(FONT_PATH), 22)
    draw.text((20, 16), f"Shipments by month, figure {number}", font=font, fill=0)
    for k in range(8):
        height = 20 + (number * (k + 3) * 37) % 110
        draw.rectangle((30 + k * 55, 190 - height, 65 + k * 55, 190), fill=80)
    buf = io.BytesIO()
    image.save(buf, "PNG", optimize=False)
    return buf.getvalue()
