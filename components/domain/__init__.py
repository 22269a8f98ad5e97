"""The federation's domain types, below both `components/` and `pipelines/` (pure, no I/O).

`models` (Site, Policy and their parts), `artifact_classes` (residency classes),
`jurisdictions` (ISO codes and aliases), `canonical` (canonical JSON and digests),
`federation` (a checked set of sites and policies), `run_id` (the effective run id).
Both the compiler and the executors import these at module top; nothing here imports
`pipelines` or does I/O (reading the YAML files is `pipelines.config.loader`'s job).
"""
