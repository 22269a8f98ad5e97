"""A site's data as executors need it: contract and table URIs, own-bucket check (pure).

Built by `components.common.site_task.parse_site_task` (with the task's dataset)."""

from __future__ import annotations

from dataclasses import dataclass

from components.datasets.features import DataError
from components.datasets.io import parse_uri
from components.domain.contract import DataContract
from components.domain.models import Site


@dataclass(frozen=True)
class SiteData:
    """What a site task needs to read its tables."""

    site: Site
    contract: DataContract
    train_uri: str
    holdout_uri: str


def check_own_bucket(site: Site, uri: str) -> None:
    """An s3:// table must live in the site's own bucket (raw data never crosses sites)."""
    loc = parse_uri(uri, site.id)
    if loc.scheme == "s3" and loc.bucket != site.object_store.bucket:
        raise DataError(
            site.id,
            "own_bucket",
            f"{uri} is outside the site's bucket {site.object_store.bucket!r}",
        )
