"""Object-store access rules generated from the policies (`rules`), rendered for SeaweedFS
(local runs, tests) and MinIO (production)."""
