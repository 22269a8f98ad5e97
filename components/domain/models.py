"""Schemas of `sites/<id>.yaml` and `policies/<id>.yaml` (pydantic v1, unknown fields rejected).

Pure domain types shared by the compiler (`pipelines/`) and the executors (`components/`).
Executors rebuild these from the JSON task inputs: `Site.parse_raw(site_json)`,
`Policy.parse_raw(policy_json)`. The loader (`pipelines.config.loader`, YAML I/O) adds the
cross-file checks (policy ids exist, one coordinator, unique ids and buckets).
Field reference: `pipelines/config/README.md`; examples: the files in `sites/`, `policies/`.
"""

from __future__ import annotations

import math
import re
from typing import Any, ClassVar, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, Extra, Field, StrictBool, StrictStr, conint, root_validator
from pydantic import validator as field_validator

from components.domain import cloud_regions, jurisdictions
from components.domain.artifact_classes import FALLBACK_CLASSES, ArtifactClass

API_VERSION = "fedpipe.dev/v1"
# raw_data, local_model, validation_summary, dp_update, global_model, metrics (schema order)
ARTIFACT_CLASSES: tuple[str, ...] = tuple(c.value for c in ArtifactClass)

ID_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"  # a Kubernetes label value, [a-z0-9-]
BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
SECRET_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
DATASET_PATTERN = r"^[a-z0-9_]+$"

Role = Literal["site", "coordinator"]
Deployment = Literal["on-prem", "cloud"]
Provider = Literal["on-prem", "gcp", "aws", "azure"]
PositiveInt = conint(strict=True, ge=1)
NonNegativeInt = conint(strict=True, ge=0)


class _Strict(BaseModel):
    """Base: unknown fields are errors, instances are immutable."""

    class Config:
        extra = Extra.forbid
        allow_mutation = False


def _check_pattern(value: str, pattern: str, what: str) -> str:
    if not re.fullmatch(pattern, value):
        raise ValueError(f"{value!r} is not a valid {what} (pattern {pattern})")
    return value


def _check_api_version(value: str) -> str:
    if value != API_VERSION:
        raise ValueError(f"unsupported apiVersion {value!r}; this fedpipe reads {API_VERSION!r}")
    return value


def _check_country(value: str) -> str:
    if not jurisdictions.is_country(value):
        hint = " (use GB)" if value == "UK" else ""
        raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code{hint}")
    return value


def _number(value: Any) -> float:
    """Accept a finite int or float; refuse strings, booleans (YAML `"3"`, `yes`), NaN and inf."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"a number is required, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"a finite number is required, got {value!r}")
    return float(value)


# --------------------------------------------------------------------------- site


class Toleration(_Strict):
    """A Kubernetes toleration, as given to kfp-kubernetes `add_toleration`."""

    key: StrictStr | None = Field(None, description="taint key; absent with Exists = every taint")
    operator: Literal["Equal", "Exists"] = "Equal"
    value: StrictStr | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None

    @field_validator("value", always=True)
    def _value_vs_operator(cls, value: str | None, values: dict[str, Any]) -> str | None:
        if values.get("operator") == "Exists" and value is not None:
            raise ValueError("a toleration with operator Exists must not have a value")
        return value


class Placement(_Strict):
    """Where a site's tasks may be scheduled: its own nodes only."""

    node_selector: dict[StrictStr, StrictStr] = Field(
        ..., description="node labels every task of this site requires (at least one)"
    )
    tolerations: list[Toleration] = Field(default_factory=list)

    @field_validator("node_selector")
    def _not_empty(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("at least one node label is required (tasks could run anywhere)")
        return value


class ObjectStore(_Strict):
    """The site's own bucket: MinIO (type s3) on-prem, GCS for the coordinator."""

    type: Literal["s3", "gcs"]
    endpoint: StrictStr | None = Field(
        None, description="host:port without scheme; required for s3, optional for gcs"
    )
    bucket: StrictStr = Field(..., pattern=BUCKET_PATTERN)
    secret_name: StrictStr = Field(
        ...,
        description="Kubernetes Secret with keys access-key, secret-key, signing-key",
        pattern=SECRET_NAME_PATTERN,
    )
    secure: StrictBool = Field(True, description="TLS to the endpoint")

    @field_validator("endpoint", always=True)
    def _endpoint(cls, value: str | None, values: dict[str, Any]) -> str | None:
        if value is None:
            if values.get("type") == "s3":
                raise ValueError("an s3 object store needs an endpoint (host:port)")
            return value
        if "://" in value or not value.strip():
            raise ValueError(f"{value!r}: give host:port without a scheme (use `secure` for TLS)")
        return value

    @field_validator("bucket")
    def _bucket(cls, value: str) -> str:
        return _check_pattern(value, BUCKET_PATTERN, "bucket name")

    @field_validator("secret_name")
    def _secret_name(cls, value: str) -> str:
        return _check_pattern(value, SECRET_NAME_PATTERN, "Kubernetes Secret name")

    @property
    def uri_scheme(self) -> str:
        """`s3` or `gs`: the scheme of URIs inside this store."""
        return "s3" if self.type == "s3" else "gs"


class ExampleRange(_Strict):
    """The range of training rows a site declares (the coordinator caps a claimed count)."""

    min: PositiveInt = Field(1, description="fewest training rows")
    max: PositiveInt = Field(..., description="most training rows (claims above are capped)")

    @field_validator("max")
    def _ordered(cls, value: int, values: dict[str, Any]) -> int:
        low = values.get("min")
        if low is not None and value < low:
            raise ValueError(f"max {value} is below min {low}")
        return value


class DataSpec(_Strict):
    """The site's training and holdout data (inside its own bucket)."""

    contract: StrictStr = Field(
        ...,
        description="name of the data contract, sites/contracts/<name>.yaml (e.g. breast_cancer)",
    )
    uri: StrictStr = Field(..., description="training data, s3://<own bucket>/...")
    holdout_uri: StrictStr = Field(..., description="holdout data, s3://<own bucket>/...")
    snapshot: StrictStr = Field(..., description="data snapshot id (a cache key of every task)")
    num_examples: ExampleRange | None = Field(
        None,
        description="declared range of training rows; a FedAvg weight (the sample count an "
        "update claims) above max is capped at max",
    )

    @field_validator("contract")
    def _contract(cls, value: str) -> str:
        return _check_pattern(value, DATASET_PATTERN, "contract name")

    @field_validator("snapshot")
    def _snapshot(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("snapshot must not be empty")
        return value

    @field_validator("holdout_uri")
    def _distinct(cls, value: str, values: dict[str, Any]) -> str:
        if value == values.get("uri"):
            raise ValueError("holdout_uri must differ from uri")
        return value


class Signing(_Strict):
    """The site's Ed25519 public key (PEM); the private half lives in its Secret."""

    public_key: StrictStr

    @field_validator("public_key")
    def _ed25519(cls, value: str) -> str:
        try:
            key = serialization.load_pem_public_key(value.encode())
        except (ValueError, TypeError) as exc:
            raise ValueError(f"not a PEM public key ({exc})") from None
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        return value


class OwnPolicy(_Strict):
    """Where the site keeps its own copy of its policy, outside the pipeline: a ConfigMap in
    its cluster (given to `validate` as an environment variable). Without it, or when the
    variable is empty, `validate` reads `admission/policy.json` in the site's own bucket."""

    config_map: StrictStr = Field(..., pattern=SECRET_NAME_PATTERN)
    key: StrictStr = Field("policy.json", description="the ConfigMap key holding the policy")

    @field_validator("config_map")
    def _name(cls, value: str) -> str:
        return _check_pattern(value, SECRET_NAME_PATTERN, "ConfigMap name")


class Site(_Strict):
    """One member of the federation (role site) or the coordinator (role coordinator)."""

    apiVersion: StrictStr = Field(..., description=f"must be {API_VERSION}", enum=[API_VERSION])
    kind: Literal["Site"]
    id: StrictStr = Field(
        ..., description="[a-z0-9-], unique, equal to the file name", pattern=ID_PATTERN
    )
    role: Role
    deployment: Deployment
    provider: Provider
    region: StrictStr
    jurisdiction: StrictStr = Field(
        ..., description="ISO 3166-1 alpha-2 country code", pattern="^[A-Z]{2}$"
    )
    policy: StrictStr = Field(
        ..., description="id of the governing policy in policies/", pattern=ID_PATTERN
    )
    placement: Placement
    object_store: ObjectStore
    data: DataSpec | None = Field(None, description="sites only; absent for the coordinator")
    signing: Signing | None = Field(None, description="required for sites")
    image_registry: StrictStr | None = Field(
        None, description="registry that replaces the image's registry for this site's tasks"
    )
    own_policy: OwnPolicy | None = Field(
        None, description="sites: the ConfigMap holding the site's own copy of its policy"
    )

    class Config:
        title = "fedpipe Site"
        # for editors: what the `data`/`signing` validators enforce, as JSON Schema
        schema_extra: ClassVar[dict[str, Any]] = {
            "if": {"properties": {"role": {"const": "site"}}},
            "then": {"required": ["data", "signing"]},
            "else": {"not": {"required": ["data"]}},
        }

    _api = field_validator("apiVersion", allow_reuse=True)(_check_api_version)

    @field_validator("id", "policy")
    def _ids(cls, value: str) -> str:
        return _check_pattern(value, ID_PATTERN, "id ([a-z0-9-], at most 63 characters)")

    @field_validator("provider")
    def _provider(cls, value: str, values: dict[str, Any]) -> str:
        deployment = values.get("deployment")
        if deployment == "on-prem" and value != "on-prem":
            raise ValueError(f"an on-prem deployment has provider on-prem, not {value!r}")
        if deployment == "cloud" and value == "on-prem":
            raise ValueError("a cloud deployment needs a cloud provider (gcp, aws, azure)")
        return value

    @field_validator("region")
    def _region(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("region must not be empty")
        return value

    @field_validator("jurisdiction")
    def _jurisdiction(cls, value: str, values: dict[str, Any]) -> str:
        _check_country(value)
        provider, region = values.get("provider"), values.get("region")
        where = cloud_regions.region_country(provider or "", region or "")
        if where is not None and where != value:
            raise ValueError(
                f"{value!r} contradicts region {region!r}: that {provider} region is in "
                f"{where}; declare jurisdiction {where} or pick a region in {value}"
            )
        return value

    @field_validator("data", always=True)
    def _data(cls, value: DataSpec | None, values: dict[str, Any]) -> DataSpec | None:
        role = values.get("role")
        if role == "site" and value is None:
            raise ValueError("field required for a site (role site)")
        if role == "coordinator" and value is not None:
            raise ValueError("the coordinator holds no data: remove `data`")
        store = values.get("object_store")
        if value is not None and store is not None:
            prefix = f"{store.uri_scheme}://{store.bucket}/"
            for name in ("uri", "holdout_uri"):
                uri = getattr(value, name)
                if not uri.startswith(prefix):
                    raise ValueError(
                        f"{name} {uri!r} is outside the site's own bucket (expected {prefix}...)"
                    )
        return value

    @field_validator("signing", always=True)
    def _signing(cls, value: Signing | None, values: dict[str, Any]) -> Signing | None:
        if values.get("role") == "site" and value is None:
            raise ValueError("field required for a site (its Ed25519 public key)")
        return value

    @property
    def is_coordinator(self) -> bool:
        return self.role == "coordinator"


# --------------------------------------------------------------------------- policy


class DestinationRule(_Strict):
    """Destinations an artifact class may reach: every list present must match (AND)."""

    sites: list[StrictStr] | None = Field(None, min_items=1, description="site ids")
    roles: list[Role] | None = Field(None, min_items=1)
    regions: list[StrictStr] | None = Field(None, min_items=1)
    jurisdictions: list[StrictStr] | None = Field(
        None, min_items=1, description="ISO 3166-1 alpha-2 codes or the aliases EU, EEA"
    )
    providers: list[Provider] | None = Field(None, min_items=1)

    @field_validator("sites", each_item=True)
    def _site_ids(cls, value: str) -> str:
        return _check_pattern(value, ID_PATTERN, "site id")

    @field_validator("jurisdictions", each_item=True)
    def _jurisdictions(cls, value: str) -> str:
        return value if value in jurisdictions.ALIASES else _check_country(value)

    @root_validator(skip_on_failure=True)
    def _not_everywhere(cls, values: dict[str, Any]) -> dict[str, Any]:
        if all(
            values.get(k) is None
            for k in ("sites", "roles", "regions", "jurisdictions", "providers")
        ):
            raise ValueError(
                "a rule needs at least one of sites, roles, regions, jurisdictions, providers "
                "(an empty rule would allow every destination)"
            )
        return values

    def matches(self, destination: Site) -> bool:
        """True when `destination` satisfies every list present in this rule."""
        if self.sites is not None and destination.id not in self.sites:
            return False
        if self.roles is not None and destination.role not in self.roles:
            return False
        if self.regions is not None and destination.region not in self.regions:
            return False
        if self.jurisdictions is not None and not any(
            jurisdictions.matches(destination.jurisdiction, j) for j in self.jurisdictions
        ):
            return False
        return self.providers is None or destination.provider in self.providers

    def describe(self) -> str:
        """Readable form, e.g. `roles=coordinator, jurisdictions=EU`."""
        parts = [
            f"{name}={','.join(getattr(self, name))}"
            for name in ("sites", "roles", "regions", "jurisdictions", "providers")
            if getattr(self, name) is not None
        ]
        return ", ".join(parts)


class Rules(_Strict):
    """Per artifact class, where it may go beyond its own site. Absent or [] = nowhere."""

    raw_data: list[DestinationRule] = Field(default_factory=list)
    local_model: list[DestinationRule] = Field(default_factory=list)
    validation_summary: list[DestinationRule] = Field(default_factory=list)
    dp_update: list[DestinationRule] = Field(default_factory=list)
    global_model: list[DestinationRule] = Field(default_factory=list)
    metrics: list[DestinationRule] = Field(default_factory=list)
    masked_update: list[DestinationRule] = Field(
        default_factory=list,
        description="a SecAgg+-masked or CKKS-encrypted update; [] = where dp_update may go",
    )
    secagg_public: list[DestinationRule] = Field(
        default_factory=list,
        description="SecAgg+ keys, rosters, sealed shares, answers; [] = where dp_update or "
        "global_model may go",
    )
    feature_stats: list[DestinationRule] = Field(
        default_factory=list,
        description="DP-noised feature statistics (federated_zscore); [] = where dp_update may go",
    )


class DPLimits(_Strict):
    """Differential-privacy limits of a site's updates (epsilon unitless, delta probability)."""

    epsilon_per_round: float = Field(..., gt=0)
    lifetime_epsilon: float = Field(..., gt=0)
    delta: float = Field(..., gt=0, lt=1)
    allow_dp_off: StrictBool = Field(
        False, description="true lets a run train without DP (experiments only)"
    )
    mode: Literal["local", "distributed"] = Field(
        "local",
        description="local: DP-SGD at the site, every update carries its full noise; "
        "distributed: the site clips its model delta and adds only a 1/min_honest_sites share "
        "of Skellam noise, so only the secure-aggregation sum carries the full noise (needs "
        "aggregation.protection secagg)",
    )
    min_honest_sites: PositiveInt | None = Field(
        None,
        description="distributed mode: the fewest sites assumed to add their noise share "
        "honestly (h); each site adds 1/h of the noise; at most aggregation.min_sites",
    )

    _numbers = field_validator(
        "epsilon_per_round", "lifetime_epsilon", "delta", pre=True, allow_reuse=True
    )(_number)

    @field_validator("min_honest_sites", always=True)
    def _honest(cls, value: int | None, values: dict[str, Any]) -> int | None:
        mode = values.get("mode")
        if mode == "distributed" and value is None:
            raise ValueError(
                "dp.mode distributed needs dp.min_honest_sites (h: each site adds 1/h of the "
                "noise, so the epsilon holds only while at least h sites add their share)"
            )
        if mode == "local" and value is not None:
            raise ValueError(
                "dp.min_honest_sites applies to dp.mode distributed only; remove it or set "
                "dp.mode distributed"
            )
        return value

    @field_validator("lifetime_epsilon")
    def _lifetime(cls, value: float, values: dict[str, Any]) -> float:
        per_round = values.get("epsilon_per_round")
        if per_round is not None and value < per_round:
            raise ValueError(f"lifetime_epsilon {value} is below epsilon_per_round {per_round}")
        return value


def _known_rule(value: str) -> str:
    """`value` if it names an aggregation rule (`components.aggregation.rules.RULES`)."""
    from components.aggregation.rules import RULES  # numpy-only, no cycle back here

    if value not in RULES:
        raise ValueError(
            f"{value!r} is not an aggregation rule; choose from {sorted(RULES)} "
            "(screened_geometric_median is the recommended robust rule)"
        )
    return value


class SecAggParameters(_Strict):
    """`aggregation.secagg`: the SecAgg+ graph, threshold and fixed point (protection secagg).

    Every policy of a secagg federation that sets it must set the same values (the sites
    mask with one fixed point and one graph); the compiler checks what a federation of this
    size can hold (`pipelines.residency.protection`)."""

    neighbours: conint(strict=True, ge=2, multiple_of=2) = Field(  # type: ignore[valid-type]
        8,
        description="largest neighbour count k of a site in the SecAgg+ graph (even; a "
        "round with fewer sites uses the complete graph, k = sites - 1)",
    )
    threshold: conint(strict=True, ge=2) | None = Field(  # type: ignore[valid-type]
        None,
        description="shares t needed to recover a site's masks; must exceed (k + 1) / 2 so "
        "that a lying coordinator never gets both shares of one site, and be at most k + 1 "
        "(the site and its k neighbours hold its shares; a dropped site is recovered only "
        "when t <= k) (null: the smallest safe one, floor((k + 1) / 2) + 1; a round with a "
        "smaller graph uses min(threshold, k + 1), never below that)",
    )
    norm_bound: float = Field(
        100.0,
        gt=0,
        description="L2 norm every site clips its update to before masking (the "
        "coordinator cannot bound what it cannot see)",
    )
    word_bits: Literal[32, 64] = Field(
        64,
        description="masked word size: the fixed point keeps the sum over every member "
        "site below 2^word_bits",
    )

    @field_validator("norm_bound", pre=True)
    def _bound(cls, value: Any) -> float:
        return _number(value)


class Aggregation(_Strict):
    min_sites: PositiveInt = Field(..., description="fewest sites per aggregate")
    rule: StrictStr | None = Field(
        None,
        description="coordinator policy: the aggregation rule this coordinator combines "
        "updates with (e.g. screened_geometric_median, the recommended robust rule); the "
        "compiled pipeline's rule parameter defaults to it and the aggregate task refuses a "
        "run asking for another (null: the run's rule parameter decides, default fedavg)",
    )
    quarantine_after: PositiveInt | None = Field(
        None,
        description="coordinator policy: skip a site's updates once its update was flagged "
        "as anomalous in this many consecutive rounds (null: flags are only reported)",
    )
    max_num_examples: PositiveInt | None = Field(
        None,
        description="largest sample count an update of a site under this policy may claim as "
        "its FedAvg weight (claims above are capped; a site's data.num_examples.max is used "
        "first)",
    )
    norm_guard_factor: float | None = Field(
        10.0,
        gt=1,
        description="coordinator policy: plain FedAvg rejects an update whose L2 norm is above "
        "this many times the round's median update norm (null: no guard)",
    )

    @field_validator("norm_guard_factor", pre=True)
    def _factor(cls, value: Any) -> float | None:
        return None if value is None else _number(value)

    @field_validator("rule")
    def _rule(cls, value: str | None) -> str | None:
        return None if value is None else _known_rule(value)

    protection: Literal["none", "secagg", "he"] = Field(
        "none",
        description="what the coordinator may see of this site's update: none (the update), "
        "secagg (only the sum, secure aggregation) or he (only ciphertexts, homomorphic "
        "encryption); secagg and he rule out robust rules and anomaly scoring",
    )
    secagg: SecAggParameters | None = Field(
        None,
        description="SecAgg+ parameters with protection secagg (null: neighbours 8, the "
        "smallest safe threshold, norm bound 100, 64-bit words)",
    )


class Export(_Strict):
    reveal_num_examples: StrictBool = Field(
        False, description="false: the sample count is omitted from the manifest"
    )


class Encryption(_Strict):
    at_rest: Literal["sse-s3", "sse-kms", "none"]
    in_transit: Literal["tls", "none"] = "tls"


class Retention(_Strict):
    days: PositiveInt = Field(..., description="days exported updates are kept")
    object_lock: StrictBool = Field(True, description="object-lock retention on exported updates")


DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"
PROTECTIONS = ("none", "secagg", "he")


class AdmissionLimits(_Strict):
    """What the site itself admits (checked by its `validate` against its own copy of the
    policy, `components.validate.admission`). Absent lists: no restriction of that kind."""

    image_digests: list[StrictStr] | None = Field(
        None,
        min_items=1,
        description="allowed image digests (sha256:<64 hex>); the run's image must be pinned to one",
    )
    aggregation_rules: list[StrictStr] | None = Field(
        None, min_items=1, description="aggregation rules the site's updates may be combined by"
    )
    protections: list[Literal["none", "secagg", "he"]] | None = Field(
        None,
        min_items=1,
        description="update protections the site accepts (aggregation.protection of the run)",
    )
    max_rounds: PositiveInt | None = Field(None, description="most rounds one run may have")

    @field_validator("image_digests", each_item=True)
    def _digest(cls, value: str) -> str:
        return _check_pattern(value, DIGEST_PATTERN, "image digest (sha256:<64 hex>)")

    @field_validator("aggregation_rules", each_item=True)
    def _rule(cls, value: str) -> str:
        return _known_rule(value)


class MetricsPolicy(_Strict):
    min_cell_count: NonNegativeInt = Field(
        5, description="confusion-matrix cells below this are suppressed (null)"
    )


# Classes that are the site's data or an undisguised model: they never leave the site (the
# design's first invariant) unless the policy sets `unsafe_override` for them.
UNDISGUISED_CLASSES: tuple[str, ...] = ("raw_data", "local_model")


class UnsafeOverride(_Strict):
    """Lets raw data or the local model leave the site, against the design's invariants.

    Shown by `fedpipe explain` and in the residency report; never needed by fedpipe itself."""

    allow_leaving_site: list[Literal["raw_data", "local_model"]] = Field(
        ..., min_items=1, description="classes whose rules may send them off the site"
    )
    reason: StrictStr = Field(
        ..., min_length=1, description="why (shown wherever the override is reported)"
    )

    @field_validator("reason")
    def _reason(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("give the reason for letting these classes leave the site")
        return value


class Policy(_Strict):
    """A residency policy: where each artifact class may go, DP limits, storage rules."""

    apiVersion: StrictStr = Field(..., description=f"must be {API_VERSION}", enum=[API_VERSION])
    kind: Literal["ResidencyPolicy"]
    id: StrictStr = Field(..., pattern=ID_PATTERN)
    description: StrictStr = Field(..., min_length=1)
    unsafe_override: UnsafeOverride | None = Field(
        None,
        description="UNSAFE: let raw_data or local_model leave the site (refused without it)",
    )
    rules: Rules
    dp: DPLimits
    aggregation: Aggregation
    export: Export = Field(default_factory=Export)
    encryption: Encryption
    retention: Retention
    metrics: MetricsPolicy = Field(default_factory=MetricsPolicy)
    admission: AdmissionLimits = Field(default_factory=AdmissionLimits)

    class Config:
        title = "fedpipe ResidencyPolicy"

    _api = field_validator("apiVersion", allow_reuse=True)(_check_api_version)

    @field_validator("id")
    def _id(cls, value: str) -> str:
        return _check_pattern(value, ID_PATTERN, "policy id ([a-z0-9-])")

    @field_validator("rules")
    def _undisguised_stay(cls, value: Rules, values: dict[str, Any]) -> Rules:
        override = values.get("unsafe_override")
        allowed = set(override.allow_leaving_site) if override else set()
        problems = [
            f"rules.{cls_}[{i}] ({rule.describe()}) lets {cls_} leave the site"
            for cls_ in UNDISGUISED_CLASSES
            if cls_ not in allowed
            for i, rule in enumerate(getattr(value, cls_))
        ]
        if problems:
            raise ValueError(
                "; ".join(problems) + ": raw data and the local model never leave their site "
                "(only DP updates, summaries and metrics do). Remove the rule, or set "
                "unsafe_override.allow_leaving_site (with unsafe_override.reason) to do it anyway"
            )
        return value

    def rules_for(self, artifact_class: str) -> list[DestinationRule]:
        """The destination rules of one artifact class; ValueError for an unknown class."""
        if artifact_class not in ARTIFACT_CLASSES:
            raise ValueError(f"unknown artifact class {artifact_class!r}")
        return list(getattr(self.rules, artifact_class))

    def effective_rules(self, artifact_class: str) -> list[tuple[str, DestinationRule]]:
        """(rule name, rule) that decide where `artifact_class` may go: its own rules, or, for
        a class in FALLBACK_CLASSES without rules of its own, those of its fallback classes
        (named e.g. `eu-health rules.dp_update[0] (for masked_update)`)."""
        own = self.rules_for(artifact_class)
        if own or artifact_class not in FALLBACK_CLASSES:
            return [(self.rule_name(self.id, artifact_class, i), r) for i, r in enumerate(own)]
        return [
            (f"{self.rule_name(self.id, c, i)} (for {artifact_class})", r)
            for c in FALLBACK_CLASSES[artifact_class]
            for i, r in enumerate(self.rules_for(c))
        ]

    @staticmethod
    def rule_name(policy_id: str, artifact_class: str, index: int) -> str:
        """How reports name a rule: `eu-health rules.dp_update[0]`."""
        return f"{policy_id} rules.{artifact_class}[{index}]"
