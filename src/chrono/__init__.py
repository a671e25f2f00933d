"""Chrono: timestamped truth from messy sources, with provenance for every record."""

__version__ = "0.1.0"
