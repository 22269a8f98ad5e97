"""The real data: data contracts, preparation of scikit-learn's bundled datasets, table I/O.

* `contracts`: columns, dtypes, ranges, label set, minimum rows per dataset.
* `features`: checked arrays from a table and non-leaking standardization.
* `prepare`: seeded split into a pooled test set and per-site train/holdout (IID or Dirichlet).
* `io`: `read_site_table(uri, client_factory, site_id)` for `s3://` (minio) and `file://`.
"""
