"""Coordinator-side aggregation: verify, quorum, robust rules, server optimizers, publish."""
