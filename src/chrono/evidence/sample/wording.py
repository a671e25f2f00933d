"""Text for the sample production: subjects, email bodies, memos, letters and text messages.

Plain ASCII-ish business English from fixed word lists, so OCR of the scanned pages is easy to
check and no real-world content is involved.
"""

from __future__ import annotations

import random
import textwrap

TOPICS = (
    "Harbor lease renewal", "Q2 vendor invoices", "Warehouse inspection", "Board meeting notes",
    "Freight contract draft", "Insurance claim 4471", "Budget variance", "Site visit schedule",
    "Shipping delays", "Compliance review", "Payroll adjustment", "Audit follow-up",
    "Customer escalation", "Pricing proposal", "Equipment purchase", "Travel approval",
    "Settlement terms", "Quarterly forecast", "Storage fees", "Dock access badges",
)
OPENERS = (
    "Thanks for the update this morning.", "Following up on our call.",
    "As discussed at the meeting,", "Quick note before the weekend.",
    "Please see my comments below.", "I spoke with the team about this.",
)
SENTENCES = (
    "The revised figures are attached for your review.",
    "We still need the signed copy from the landlord before Friday.",
    "Shipping has moved the pickup window to the afternoon.",
    "Legal asked us to keep the original invoices on file.",
    "The warehouse team confirmed the pallets were counted twice.",
    "Can you check whether the deposit cleared last week?",
    "I would rather not commit to the new rate until we see the audit.",
    "The inspector noted two loading bays that need repairs.",
    "Accounting flagged a duplicate payment on the March statement.",
    "Let us set up a short meeting with the broker next week.",
    "The contract draft still has the old delivery terms in section four.",
    "Please hold any further transfers until the review is complete.",
    "Our counsel will send a marked up version by Thursday.",
    "The customer wants a credit for the damaged shipment.",
    "I left a voicemail but did not hear back yet.",
    "The storage fees went up again in the latest quote.",
)
CLOSERS = ("Thanks,", "Best regards,", "Regards,", "Cheers,", "Talk soon,")
SMS = (
    "Running ten minutes late", "Can you call me back?", "Sent you the file",
    "Meeting moved to 3pm", "Got it, thanks", "Where are the keys for the dock?",
    "Call me when you land", "Did the deposit clear?", "On my way", "See email from legal",
    "Lunch tomorrow?", "Invoice is in your inbox", "Need the signed copy today",
)
FORWARD_NOTES = (
    "FYI, see the message below.", "Forwarding this for your records.",
    "Can you look into the note below?", "Passing this along, see below.",
    "Please handle the request below.",
)
MEMO_KINDS = ("MEMORANDUM", "INVOICE", "MEETING MINUTES", "POLICY NOTICE")


def subject(rng: random.Random) -> str:
    topic = rng.choice(TOPICS)
    return rng.choice((topic, f"RE: {topic}", f"FW: {topic}", f"{topic} - update"))


def email_body(
    rng: random.Random, greeting_name: str, signer: str, extra: str = "",
    signature: list[str] | None = None,
) -> str:
    """A short email body: greeting, two to four sentences, optional extra line, sign-off, and
    an optional signature block (lines under a ``--`` separator)."""
    first = greeting_name.split()[0]
    lines = [f"Hi {first},", "", rng.choice(OPENERS)]
    lines += rng.sample(SENTENCES, k=rng.randint(2, 4))
    if extra:
        # Short lines keep the .eml body 7bit/8bit rather than quoted-printable.
        lines += textwrap.wrap(extra, 76, break_on_hyphens=False)
    lines += ["", rng.choice(CLOSERS), signer.split()[0]]
    if signature:
        lines += ["", "--", *signature]
    return "\n".join(lines)


def forward_note(rng: random.Random, greeting_name: str, signer: str) -> str:
    """The few lines a forwarder writes above the forwarded message."""
    first = greeting_name.split()[0]
    note = rng.choice(FORWARD_NOTES)
    return "\n".join([f"Hi {first},", "", note, "", rng.choice(CLOSERS), signer.split()[0]])


def sms_text(rng: random.Random) -> str:
    return rng.choice(SMS)


def paragraphs(rng: random.Random, count: int) -> list[str]:
    """Body paragraphs for memos and letters."""
    return [" ".join(rng.sample(SENTENCES, k=rng.randint(3, 5))) for _ in range(count)]
