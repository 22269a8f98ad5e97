"""A checked federation: members, coordinator and policies by id (pure).

Built by `pipelines.config.loader` (from the YAML files, with the cross-file checks) or by
`pipelines.config.loader.federation_from_models` (in-memory models).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from components.domain.canonical import federation_digest
from components.domain.contract import DataContract
from components.domain.models import Policy, Site


@dataclass(frozen=True)
class Federation:
    """A checked federation.

    sites: the members (role site) by id, sorted; the coordinator is separate.
    policies: every loaded policy by id, sorted. files: site, policy or contract -> the file it
    came from (keys `site:<id>`, `policy:<id>`, `contract:<name>`). contracts: every loaded
    data contract by name (`sites/contracts/`); the members name one (`contract`).
    """

    sites: dict[str, Site]
    coordinator: Site
    policies: dict[str, Policy]
    files: dict[str, str] = field(default_factory=dict)
    contracts: dict[str, DataContract] = field(default_factory=dict)

    @property
    def contract_name(self) -> str:
        """The name of the one data contract every member site trains on."""
        names = sorted({s.data.contract for s in self.sites.values() if s.data is not None})
        if len(names) != 1:
            raise ValueError(f"federation: expected one data contract across sites, found {names}")
        return names[0]

    @property
    def contract(self) -> DataContract:
        """The members' data contract; KeyError naming the loaded ones when it is missing."""
        name = self.contract_name
        if name not in self.contracts:
            known = ", ".join(sorted(self.contracts)) or "none"
            raise KeyError(f"data contract {name!r} is not loaded (loaded: {known})")
        return self.contracts[name]

    @cached_property
    def all_sites(self) -> dict[str, Site]:
        """Members and the coordinator, by id (sorted)."""
        merged = {**self.sites, self.coordinator.id: self.coordinator}
        return dict(sorted(merged.items()))

    def site(self, site_id: str) -> Site:
        """A member or the coordinator by id; KeyError naming the known ids."""
        found = self.all_sites.get(site_id)
        if found is None:
            raise KeyError(f"unknown site {site_id!r} (known: {', '.join(self.all_sites)})")
        return found

    def policy_of(self, site_id: str) -> Policy:
        """The policy that governs `site_id` (member or coordinator)."""
        return self.policies[self.site(site_id).policy]

    @property
    def governing(self) -> dict[str, Policy]:
        """site id (members and coordinator) -> its governing policy."""
        return {sid: self.policies[s.policy] for sid, s in self.all_sites.items()}

    def digest(self) -> str:
        """sha256 over all sites (coordinator included) and policies."""
        name = self._used_contract()
        used = [self.contracts[name]] if name in self.contracts else []
        return federation_digest(self.all_sites.values(), self.policies.values(), used)

    def _used_contract(self) -> str | None:
        try:
            return self.contract_name
        except ValueError:
            return None
