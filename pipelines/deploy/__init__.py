"""Cluster objects derived from sites/ and policies/ (`fedpipe manifests`, `explain`, `doctor`).

* `network`: which endpoints each placement's pods may reach, from the residency decisions.
* `secrets`: which Secrets and keys each placement's tasks read, from the compiled platform spec.
* `manifests`: Namespace, ServiceAccounts, Roles, NetworkPolicies and Secret templates.
* `netpol`: what a set of NetworkPolicies lets a pod reach (the semantics, for tests/explain).
* `validate`: strict offline validation against the Kubernetes OpenAPI schemas.
* `doctor`: preflight checks against a live cluster through the `kubernetes` client.
"""

KUBERNETES_VERSION = "1.30.0"  # schemas the objects are validated against; README states it
