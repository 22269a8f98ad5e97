"""Contradictions between fields of sites and policies that each look valid alone (pure).

The loader (`pipelines.config.loader.check_federation`) turns these into `file: field: message`
errors. Each function is a predicate or a small computation over the domain models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cryptography.hazmat.primitives import serialization

from components.domain.models import Policy, Site, Toleration

# Labels the kubelet puts on every node: a selector of only these selects every node.
UNIVERSAL_NODE_LABELS: frozenset[str] = frozenset(
    {"kubernetes.io/os", "kubernetes.io/arch", "beta.kubernetes.io/os", "beta.kubernetes.io/arch"}
)


def selector_matches_every_node(selector: Mapping[str, str]) -> bool:
    """True when every label of `selector` is one every node carries (e.g. only
    `kubernetes.io/os: linux`): it does not keep the tasks on the site's own nodes."""
    return all(key in UNIVERSAL_NODE_LABELS for key in selector)


def tolerates_every_taint(tolerations: Sequence[Toleration]) -> int | None:
    """The index of a toleration that tolerates every taint (operator Exists, no key), or None."""
    for index, toleration in enumerate(tolerations):
        if toleration.operator == "Exists" and toleration.key is None:
            return index
    return None


def selectors_can_share_a_node(a: Mapping[str, str], b: Mapping[str, str]) -> bool:
    """True when one node can carry both selectors' labels: no label key that both set to
    different values (a node with the union of their labels matches both)."""
    return not any(key in b and b[key] != value for key, value in a.items())


def describe_selector(selector: Mapping[str, str]) -> str:
    """`k1=v1, k2=v2` (sorted)."""
    return ", ".join(f"{k}={v}" for k, v in sorted(selector.items()))


def public_key_bytes(pem: str) -> bytes:
    """The raw public key of a PEM (two PEM texts of one key compare equal)."""
    key = serialization.load_pem_public_key(pem.encode())
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def tls_contradiction(site: Site, policy: Policy) -> str | None:
    """The reason when the site's object store turns TLS off under a policy requiring it."""
    if policy.encryption.in_transit == "tls" and not site.object_store.secure:
        return (
            f"false, but policy {policy.id} requires encryption.in_transit tls; set "
            "object_store.secure: true (or a policy that allows in_transit none)"
        )
    return None
