"""Load `sites/` (with `sites/contracts/`) and `policies/` into a checked `Federation`,
reporting every error at once.

Each error is one line `file: field.path: message`; all of them (schema errors of every
file plus cross-file checks) travel together in one `ConfigError`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from components.domain.consistency import (
    describe_selector,
    public_key_bytes,
    selector_matches_every_node,
    selectors_can_share_a_node,
    tls_contradiction,
    tolerates_every_taint,
)
from components.domain.contract import Column, DataContract, Encoding, Rows, Target
from components.domain.federation import Federation
from components.domain.models import (
    ARTIFACT_CLASSES,
    DataSpec,
    DestinationRule,
    DPLimits,
    ObjectStore,
    Placement,
    Policy,
    Rules,
    Signing,
    Site,
    Toleration,
)

YAML_SUFFIXES = (".yaml", ".yml")
CONTRACTS_DIR = "contracts"  # sites/contracts/<name>.yaml


class ConfigError(ValueError):
    """Invalid sites/policies. `errors` holds one `file: field.path: message` line per problem."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        count = len(self.errors)
        header = f"{count} configuration error{'s' if count != 1 else ''}:"
        super().__init__("\n".join([header, *self.errors]))


# --------------------------------------------------------------------------- reading files


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (PyYAML silently keeps the last)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _read_yaml(path: Path, errors: list[str]) -> dict[str, Any] | None:
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(yaml)"
        errors.append(f"{path}: {where}: {exc.problem or exc}")
        return None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        errors.append(f"{path}: (file): {exc}")
        return None
    if doc is None:
        errors.append(f"{path}: (document): the file is empty")
        return None
    if not isinstance(doc, dict):
        errors.append(f"{path}: (document): expected a mapping, got {type(doc).__name__}")
        return None
    return doc


def _field_names(*models: type[BaseModel]) -> list[str]:
    return sorted({name for m in models for name in m.__fields__})


_SITE_FIELDS = _field_names(Site, Placement, Toleration, ObjectStore, DataSpec, Signing)
_POLICY_FIELDS = _field_names(Policy, Rules, DestinationRule, DPLimits) + [
    name
    for m in Policy.__fields__.values()
    if isinstance(m.type_, type) and issubclass(m.type_, BaseModel)
    for name in m.type_.__fields__
]


_CONTRACT_FIELDS = _field_names(DataContract, Column, Target, Rows, Encoding)


def format_loc(loc: Iterable[Any]) -> str:
    """('rules', 'dp_update', 0, 'roles') -> 'rules.dp_update[0].roles'."""
    out = ""
    for part in loc:
        if part == "__root__":
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(document)"


def validation_lines(file: str, exc: ValidationError, known_fields: Sequence[str]) -> list[str]:
    """One `file: field.path: message` line per pydantic error; misspellings get a hint."""
    lines = []
    for err in exc.errors():
        loc = err["loc"]
        msg = err["msg"]
        if err["type"] == "value_error.extra":
            msg = "unknown field (extra fields not permitted)"
            close = difflib.get_close_matches(str(loc[-1]), known_fields, n=1)
            if close:
                msg += f"; did you mean {close[0]!r}?"
        lines.append(f"{file}: {format_loc(loc)}: {msg}")
    return lines


def _yaml_files(directory: Path, what: str, errors: list[str]) -> list[Path]:
    if not directory.is_dir():
        errors.append(f"{directory}: (directory): {what} directory not found")
        return []
    files = sorted(p for p in directory.iterdir() if p.suffix in YAML_SUFFIXES and p.is_file())
    if not files:
        errors.append(f"{directory}: (directory): no {what} files (*.yaml)")
    return files


def _parse_dir(
    directory: Path,
    model: type[BaseModel],
    what: str,
    known: Sequence[str],
    errors: list[str],
    broken: set[str],
) -> list[tuple[str, Any]]:
    """Parse every file; ids (or file names) of files that failed go into `broken`."""
    parsed = []
    for path in _yaml_files(directory, what, errors):
        doc = _read_yaml(path, errors)
        if doc is None:
            broken.add(path.stem)
            continue
        try:
            obj = model.parse_obj(doc)
        except ValidationError as exc:
            errors.extend(validation_lines(str(path), exc, known))
            broken.update({path.stem, str(doc.get("id", doc.get("name")))})
            continue
        key = "name" if isinstance(obj, DataContract) else "id"
        if getattr(obj, key) != path.stem:
            errors.append(
                f"{path}: {key}: {getattr(obj, key)!r} must equal the file name ({path.stem!r})"
            )
        parsed.append((str(path), obj))
    return parsed


# --------------------------------------------------------------------------- cross-checks


def _unique(items: list[tuple[str, Any]], key: str, getter, what: str, errors: list[str]) -> None:
    first: dict[Any, str] = {}
    for file, obj in items:
        value = getter(obj)
        if value in first:
            errors.append(f"{file}: {key}: {what} {value!r} is also used in {first[value]}")
        else:
            first[value] = file


def _check_placements(sites: list[tuple[str, Site]], errors: list[str]) -> None:
    """Every placement selects only its own nodes: not every node, and no node another
    placement's selector can also match."""
    specific = []
    for file, site in sites:
        selector = site.placement.node_selector
        if not selector_matches_every_node(selector):
            specific.append((file, site))
            continue
        index = tolerates_every_taint(site.placement.tolerations)
        also = (
            f", and placement.tolerations[{index}] (operator Exists, no key) tolerates every "
            "taint"
            if index is not None
            else ""
        )
        errors.append(
            f"{file}: placement.node_selector: {describe_selector(selector)} matches every "
            f"node (labels every node carries){also}: {site.id}'s tasks could run on any "
            f"site's nodes; select its own nodes, e.g. fedpipe.dev/site: {site.id}"
        )
    for j, (file, site) in enumerate(specific):
        for other_file, other in specific[:j]:
            a, b = other.placement.node_selector, site.placement.node_selector
            if selectors_can_share_a_node(a, b):
                errors.append(
                    f"{file}: placement.node_selector: {describe_selector(b)} and "
                    f"{other.id}'s {describe_selector(a)} ({other_file}) can match the same "
                    "node (no label both set to different values): tasks of both sites could "
                    "share nodes"
                )


def _check_signing_keys(sites: list[tuple[str, Site]], errors: list[str]) -> None:
    """No two sites sign with one key (one could sign updates as the other)."""
    first: dict[bytes, tuple[str, str]] = {}
    for file, site in sites:
        if site.signing is None:
            continue
        key = public_key_bytes(site.signing.public_key)
        if key in first:
            other_id, other_file = first[key]
            errors.append(
                f"{file}: signing.public_key: the same key as {other_id} ({other_file}); "
                "each site needs its own key pair (with one key a site can sign as the other)"
            )
        else:
            first[key] = (site.id, file)


def check_federation(
    sites: list[tuple[str, Site]],
    policies: list[tuple[str, Policy]],
    errors: list[str],
    broken_policies: set[str] | None = None,
    broken_sites: set[str] | None = None,
    contracts: list[tuple[str, DataContract]] | None = None,
    broken_contracts: set[str] | None = None,
) -> Federation | None:
    """Cross-file checks over parsed (file, model) pairs; appends error lines, returns the result.

    broken_policies: ids of policies whose file failed to parse (already reported, so a site
    naming one is not reported again as naming an unknown policy). broken_sites: the same for
    site files; while any is broken, checks that count sites (one coordinator, min_sites) wait.
    contracts: parsed data contracts (None: not checked, in-memory federations without files);
    broken_contracts: names of contract files that failed to parse.
    """
    broken_policies = broken_policies or set()
    broken_sites = broken_sites or set()
    complete = not broken_sites
    _unique(sites, "id", lambda s: s.id, "site id", errors)
    _unique(policies, "id", lambda p: p.id, "policy id", errors)
    _unique(sites, "object_store.bucket", lambda s: s.object_store.bucket, "bucket", errors)
    _unique(
        sites,
        "object_store.secret_name",
        lambda s: s.object_store.secret_name,
        "Secret name",
        errors,
    )
    _check_placements(sites, errors)
    _check_signing_keys(sites, errors)
    policy_ids = {p.id: p for _, p in policies}
    policy_files = {p.id: f for f, p in policies}
    for file, site in sites:
        policy = policy_ids.get(site.policy)
        problem = tls_contradiction(site, policy) if policy is not None else None
        if problem:
            errors.append(f"{file}: object_store.secure: {problem} ({policy_files[site.policy]})")
    site_ids = {s.id for _, s in sites}
    for file, site in sites:
        if site.policy not in policy_ids and site.policy not in broken_policies:
            known = ", ".join(sorted(policy_ids))
            errors.append(f"{file}: policy: unknown policy {site.policy!r} (known: {known})")
    coordinators = [(f, s) for f, s in sites if s.role == "coordinator"]
    members = [(f, s) for f, s in sites if s.role == "site"]
    if sites and complete and not coordinators:
        errors.append(f"{Path(sites[0][0]).parent}: role: no site has role coordinator (need one)")
    for file, _ in coordinators[1:]:
        names = ", ".join(s.id for _, s in coordinators)
        errors.append(f"{file}: role: more than one coordinator ({names}); exactly one is allowed")
    if sites and complete and not members:
        errors.append(
            f"{Path(sites[0][0]).parent}: role: no site has role site (need at least one)"
        )
    names = {s.data.contract for _, s in members if s.data is not None}
    if len(names) > 1:
        first = members[0][1].data.contract if members[0][1].data else ""
        for file, site in members:
            if site.data is not None and site.data.contract != first:
                errors.append(
                    f"{file}: data.contract: {site.data.contract!r} differs from {first!r} "
                    f"of {members[0][1].id}; one federation trains on one data contract"
                )
    if contracts is not None:
        known_contracts = {c.name for _, c in contracts}
        for file, site in members:
            name = site.data.contract if site.data is not None else None
            if name and name not in known_contracts and name not in (broken_contracts or set()):
                errors.append(
                    f"{file}: data.contract: unknown data contract {name!r} (known: "
                    f"{', '.join(sorted(known_contracts)) or 'none'}; add "
                    f"{CONTRACTS_DIR}/{name}.yaml next to the sites)"
                )
    used = {s.policy for _, s in sites}
    for file, policy in policies:
        for cls in ARTIFACT_CLASSES:
            for i, rule in enumerate(policy.rules_for(cls)):
                for sid in rule.sites or []:
                    if sid not in site_ids and sid not in broken_sites and sites:
                        errors.append(
                            f"{file}: rules.{cls}[{i}].sites: unknown site {sid!r} "
                            f"(known: {', '.join(sorted(site_ids))})"
                        )
        if (
            complete
            and policy.id in used
            and members
            and policy.aggregation.min_sites > len(members)
        ):
            errors.append(
                f"{file}: aggregation.min_sites: {policy.aggregation.min_sites} exceeds the "
                f"{len(members)} sites of the federation (no aggregate could ever run)"
            )
    if errors or len(coordinators) != 1:
        return None
    files = {f"site:{s.id}": f for f, s in sites} | {f"policy:{p.id}": f for f, p in policies}
    files |= {f"contract:{c.name}": f for f, c in contracts or []}
    return Federation(
        sites=dict(sorted((s.id, s) for _, s in members)),
        coordinator=coordinators[0][1],
        policies=dict(sorted((p.id, p) for _, p in policies)),
        files=files,
        contracts=dict(sorted((c.name, c) for _, c in contracts or [])),
    )


def load_contracts(
    directory: str | Path, errors: list[str], broken: set[str] | None = None
) -> list[tuple[str, DataContract]]:
    """Parse every `*.yaml` in `directory` (`sites/contracts/`) as a DataContract; every error
    goes into `errors` as `file: field.path: message`. A missing folder holds no contracts."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return _parse_dir(
        directory, DataContract, "data contract", _CONTRACT_FIELDS, errors, broken or set()
    )


def load_contract(path: str | Path) -> DataContract:
    """One contract file, checked; ConfigError lists every fault with file and field."""
    errors: list[str] = []
    path = Path(path)
    doc = _read_yaml(path, errors)
    if doc is not None:
        try:
            contract = DataContract.parse_obj(doc)
        except ValidationError as exc:
            errors.extend(validation_lines(str(path), exc, _CONTRACT_FIELDS))
        else:
            return contract
    raise ConfigError(errors)


def load_federation(sites_dir: str | Path, policies_dir: str | Path) -> Federation:
    """Read every `*.yaml` in both folders and the data contracts in `<sites_dir>/contracts/`
    (a sites folder without one uses the bundled examples), validate, cross-check;
    ConfigError lists all errors."""
    errors: list[str] = []
    broken_sites: set[str] = set()
    broken_policies: set[str] = set()
    sites = _parse_dir(Path(sites_dir), Site, "site", _SITE_FIELDS, errors, broken_sites)
    policies = _parse_dir(
        Path(policies_dir), Policy, "policy", _POLICY_FIELDS, errors, broken_policies
    )
    broken_contracts: set[str] = set()
    contracts_dir = Path(sites_dir) / CONTRACTS_DIR
    if not contracts_dir.is_dir():  # a sites folder without contracts: the bundled examples
        contracts_dir = EXAMPLE_CONTRACTS_DIR
    contracts = load_contracts(contracts_dir, errors, broken_contracts)
    federation = check_federation(
        sites, policies, errors, broken_policies, broken_sites, contracts, broken_contracts
    )
    if errors or federation is None:
        raise ConfigError(errors or ["(federation): invalid"])
    return federation


def federation_from_models(
    sites: Iterable[Site],
    policies: Iterable[Policy],
    contracts: Iterable[DataContract] | None = None,
) -> Federation:
    """A checked Federation from in-memory models (generated configs, tests); files = ids.
    `contracts` None: the bundled example contracts (`sites/contracts/` of this repository)."""
    errors: list[str] = []
    if contracts is None:
        parsed = load_contracts(EXAMPLE_CONTRACTS_DIR, errors)
    else:
        parsed = [(f"contract {c.name}", c) for c in contracts]
    federation = check_federation(
        [(f"site {s.id}", s) for s in sites],
        [(f"policy {p.id}", p) for p in policies],
        errors,
        contracts=parsed,
    )
    if errors or federation is None:
        raise ConfigError(errors or ["(federation): invalid"])
    return federation


# The bundled examples (breast_cancer, digits, wine, diabetes) live with the example sites.
EXAMPLE_CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "sites" / CONTRACTS_DIR


def contract_by_name(name: str, sites_dir: str | Path | None = None) -> DataContract:
    """`<sites_dir>/contracts/<name>.yaml` (default: the repository's examples), checked;
    ConfigError naming the known contracts when there is no such file."""
    directory = Path(sites_dir) / CONTRACTS_DIR if sites_dir is not None else EXAMPLE_CONTRACTS_DIR
    path = directory / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in directory.glob("*.yaml")) if directory.is_dir() else []
        raise ConfigError(
            [f"{path}: (file): no data contract {name!r} (known: {', '.join(known) or 'none'})"]
        )
    return load_contract(path)
