"""Light normalisation of identifiers so the same phone or email keys one identifier row.

Full device cleanup (reasons for every change, IMEIs, junk removal) is its own pipeline step;
this only makes keys comparable: emails lower-cased, phones in E.164 when phonenumbers can parse
them in the configured default region, handles lower-cased, names case-folded.
"""

from __future__ import annotations

import re

import phonenumbers

_SPACES = re.compile(r"\s+")


def normalize_identifier(kind: str, value: str, region: str = "US") -> str:
    value = value.strip()
    if kind == "email":
        return value.lower()
    if kind == "phone":
        return normalize_phone(value, region) or re.sub(r"\D", "", value)
    if kind == "name":
        return _SPACES.sub(" ", value).casefold()
    return value.lower()


def normalize_phone(value: str, region: str = "US") -> str | None:
    """E.164 for a parseable, possible number; None otherwise."""
    digits = re.sub(r"\D", "", value)
    if len(digits) < 5:
        return None
    candidates = [value]
    if not value.strip().startswith("+") and len(digits) > 10:
        candidates.append("+" + digits)
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_possible_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None
