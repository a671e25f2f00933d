"""The evidence pipeline: a legal production in, a timeline of events out."""
