"""Tamper-evident audit log: signed hash-chained records, checkpoints, verification."""
