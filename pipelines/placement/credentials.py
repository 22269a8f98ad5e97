"""Object-store credentials and the signing key from a site's Kubernetes Secret, as env.

Only references go into the YAML (Secret name + key → env name), never a value. Env names
follow components/CONTRACT.md "Secrets": `FEDPIPE_<NAME>__<SITE>` (site id upper-cased,
'-' → '_'), which `components.common.secrets.site_secret` reads first.
"""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf import json_format
from kfp import kubernetes
from kfp.dsl import PipelineTask
from kfp.kubernetes import common
from kfp.kubernetes import kubernetes_executor_config_pb2 as pb

from components.common.secrets import secret_env_name
from components.domain.models import Site

# Secret key -> secret name as the executors ask for it (site_secret(site_id, NAME)).
READ_KEYS: dict[str, str] = {"access-key": "S3_ACCESS_KEY", "secret-key": "S3_SECRET_KEY"}
SIGNING_KEYS: dict[str, str] = {"signing-key": "SIGNING_KEY"}


COORDINATOR_READ_SUFFIX = "-coordinator-read"


def coordinator_read_secret_name(site: Site) -> str:
    """The Secret holding the coordinator's read-only identity on `site`'s store.

    `<site secret>-coordinator-read`, keys access-key and secret-key: a MinIO user limited by
    the `<site>-coordinator-read` policy (`pipelines.access.rules.minio_policies`) to the
    prefixes the site's policy lets reach the coordinator. Never the site's own Secret, whose
    key also reads the site's data."""
    return site.object_store.secret_name + COORDINATOR_READ_SUFFIX


def secret_env_map(site: Site, keys: dict[str, str]) -> dict[str, str]:
    """{Secret key: env name} for `site` (e.g. access-key -> FEDPIPE_S3_ACCESS_KEY__CLINIC_A)."""
    return {key: secret_env_name(site.id, name) for key, name in keys.items()}


def use_site_credentials(task: PipelineTask, site: Site, signing: bool = False) -> PipelineTask:
    """Give `task` the site's object-store credentials (and, with `signing`, its signing key).

    Only `export` signs, so only it gets `signing-key`; returns the task.
    """
    keys = {**READ_KEYS, **(SIGNING_KEYS if signing else {})}
    return kubernetes.use_secret_as_env(
        task,
        secret_name=site.object_store.secret_name,
        secret_key_to_env=secret_env_map(site, keys),
    )


def use_signing_key(task: PipelineTask, site: Site) -> PipelineTask:
    """Give `task` only `site`'s signing key (the coordinator signs its audit chain)."""
    return kubernetes.use_secret_as_env(
        task,
        secret_name=site.object_store.secret_name,
        secret_key_to_env=secret_env_map(site, SIGNING_KEYS),
    )


def use_sites_read_credentials(task: PipelineTask, sites: Iterable[Site]) -> PipelineTask:
    """Give a coordinator task (aggregate) the coordinator's read-only key for each site's store
    (Secret `coordinator_read_secret_name(site)`), never a site's own key or signing key.

    Sites are added in id order (deterministic YAML); returns the task. Same result as one
    `kubernetes.use_secret_as_env` per site, built in one pass (that helper re-parses the
    task's whole config on every call, quadratic in the number of sites).
    """
    msg = common.get_existing_kubernetes_config_as_message(task)
    for site in sorted(sites, key=lambda s: s.id):
        env = secret_env_map(site, READ_KEYS)
        entry = pb.SecretAsEnv(
            key_to_env=[
                pb.SecretAsEnv.SecretKeyToEnvMap(secret_key=k, env_var=v) for k, v in env.items()
            ]
        )
        name = coordinator_read_secret_name(site)
        entry.secret_name_parameter.CopyFrom(common.parse_k8s_parameter_input(name, task))
        entry.secret_name = name  # kfp-kubernetes also writes the deprecated field
        msg.secret_as_env.append(entry)
    task.platform_config["kubernetes"] = json_format.MessageToDict(msg)
    return task


OWN_POLICY_SECRET = (
    "OWN_POLICY"  # env FEDPIPE_OWN_POLICY__<SITE> (components.validate.site_admission)
)


def use_own_policy(task: PipelineTask, site: Site) -> PipelineTask:
    """Give `task` the site's own copy of its policy from the ConfigMap its site file names
    (`own_policy`), as an environment variable; a site without one is left as is (validate
    then reads `admission/policy.json` in the site's own bucket)."""
    if site.own_policy is None:
        return task
    return kubernetes.use_config_map_as_env(
        task,
        config_map_name=site.own_policy.config_map,
        config_map_key_to_env={site.own_policy.key: secret_env_name(site.id, OWN_POLICY_SECRET)},
    )


def use_pod_identity(task: PipelineTask) -> PipelineTask:
    """Give `task` its pod's name and namespace (the downward API), so that it can read from
    its own pod which image it runs in (`components.validate.running_image`)."""
    from components.validate.running_image import POD_NAME_ENV, POD_NAMESPACE_ENV

    kubernetes.use_field_path_as_env(task, env_name=POD_NAME_ENV, field_path="metadata.name")
    return kubernetes.use_field_path_as_env(
        task, env_name=POD_NAMESPACE_ENV, field_path="metadata.namespace"
    )
