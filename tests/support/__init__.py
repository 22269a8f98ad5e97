"""Shared test helpers, imported as ``tests.support.<module>`` from every test package.

* ``federation``: coordinator and site fixtures for aggregation/verification tests (keys, manifests, updates).
* ``site_env``: a site's bucket, ledger and task inputs for train/validate executor tests.
* ``site_inputs``: site/policy JSON task inputs and leak scanning.
* ``report_fixtures``: round reports and evaluations for the report renderers.
* ``example_federation``: the checked-in example federation and one-task pipeline compiles.
* ``toy_components``: tiny KFP components for the local runner's worker tests.
* ``e2e``: running the ``fedpipe`` CLI in a subprocess and reading a run's ledgers.
"""
