"""A site's data spec as executors need it: parsed site, contract, own-bucket check (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from components.datasets.contracts import DataContract, get_contract
from components.datasets.features import DataError
from components.datasets.io import parse_uri
from components.domain.models import Site


class SiteConfigError(ValueError):
    """The task's inputs disagree with the site spec (a compile/config bug, not bad data)."""


@dataclass(frozen=True)
class SiteData:
    """What a site task needs to read its tables."""

    site: Site
    contract: DataContract
    train_uri: str
    holdout_uri: str


def load_site_data(site_json: str, site_id: str, dataset: str) -> SiteData:
    """Parse `site_json`, check it is `site_id`'s and holds `dataset`; SiteConfigError if not."""
    try:
        site = Site.parse_raw(site_json)
    except ValueError as exc:
        raise SiteConfigError(f"site {site_id}: site_json is not a valid Site: {exc}") from None
    if site.id != site_id:
        raise SiteConfigError(
            f"site_json describes site {site.id!r}, task input site_id {site_id!r}"
        )
    if site.data is None:
        raise SiteConfigError(f"site {site_id}: the site spec has no `data` (a coordinator?)")
    if site.data.dataset != dataset:
        raise SiteConfigError(
            f"site {site_id}: task dataset {dataset!r} differs from the site's data.dataset "
            f"{site.data.dataset!r}"
        )
    try:
        contract = get_contract(dataset)
    except KeyError as exc:
        raise SiteConfigError(f"site {site_id}: {exc}") from None
    return SiteData(site, contract, site.data.uri, site.data.holdout_uri)


def check_own_bucket(site: Site, uri: str) -> None:
    """An s3:// table must live in the site's own bucket (raw data never crosses sites)."""
    loc = parse_uri(uri, site.id)
    if loc.scheme == "s3" and loc.bucket != site.object_store.bucket:
        raise DataError(
            site.id,
            "own_bucket",
            f"{uri} is outside the site's bucket {site.object_store.bucket!r}",
        )
