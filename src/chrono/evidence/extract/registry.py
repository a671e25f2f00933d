"""Imports every extractor module once, so each registers itself (see ``base.register``)."""

from chrono.evidence.extract import (  # noqa: F401
    archive,
    email,
    image,
    loadfile,
    pdf,
    sheets,
    text,
)
