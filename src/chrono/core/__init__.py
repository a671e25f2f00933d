"""The step framework shared by both pipelines: errors, logging, config, steps, run ledger."""
