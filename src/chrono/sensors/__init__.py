"""The sensor pipeline: edge readings validated, routed, stamped with lineage, windowed, alerted."""
