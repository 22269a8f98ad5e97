"""The real data: data contracts, preparation of scikit-learn's bundled datasets, table I/O.

* the contract itself is `components.domain.contract` (YAML in `sites/contracts/`).
* `features`: checked arrays from a table and non-leaking standardization.
* `prepare`: seeded split into a pooled test set and per-site train/holdout (IID or Dirichlet).
* `io`: `read_site_table(uri, client_factory, site_id, contract)` for `s3://` (minio) and
  `file://`, CSV or Parquet by suffix.
"""
