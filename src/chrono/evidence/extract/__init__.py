"""Extractors: one per family of formats, registered by NAME and by the kinds they read."""
