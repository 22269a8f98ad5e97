"""Shape of the unrolled DAG and what every task carries, read from the compiled YAML."""

import pytest
import yaml

from components.domain.canonical import canonical_json, policy_digest
from pipelines.compiler import compile_federation
from pipelines.flows import kubernetes_executors
from pipelines.placement import SITE_LABEL
from tests.support.example_federation import example_federation

FED = example_federation()
SITES = list(FED.sites)
ROUNDS = 2
SITE_STAGES = ("validate", "train", "export", "evaluate")


@pytest.fixture(scope="module")
def compiled():
    result = compile_federation(FED, rounds=ROUNDS)
    spec, platform = yaml.safe_load_all(result.pipeline_yaml)
    return result, spec, kubernetes_executors(platform)


def _tasks(spec):
    return spec["root"]["dag"]["tasks"]


def _executor_of(spec, task_name):
    return spec["components"][_tasks(spec)[task_name]["componentRef"]["name"]]["executorLabel"]


def _upstream(task, name):
    return task["inputs"]["artifacts"][name]["taskOutputArtifact"]["producerTask"]


def test_task_names_unrolled_per_site_and_round(compiled):
    _, spec, _ = compiled
    expected = {"initialize", "report"} | {f"aggregate-r{r}" for r in (1, 2)}
    expected |= {f"validate-{s}" for s in SITES}
    for r in (1, 2):
        expected |= {
            f"{stage}-{s}-r{r}" for s in SITES for stage in ("train", "export", "evaluate")
        }
    assert set(_tasks(spec)) == expected
    assert len(expected) == 2 + ROUNDS + len(SITES) * (1 + 3 * ROUNDS)


def test_round_wiring(compiled):
    _, spec, _ = compiled
    tasks = _tasks(spec)
    site = "hospital-paris"
    assert _upstream(tasks[f"train-{site}-r1"], "global_model") == "initialize"
    assert _upstream(tasks[f"train-{site}-r2"], "global_model") == "aggregate-r1"
    assert _upstream(tasks[f"train-{site}-r2"], "validation") == f"validate-{site}"
    assert _upstream(tasks[f"export-{site}-r2"], "local_model") == f"train-{site}-r2"
    assert _upstream(tasks[f"export-{site}-r2"], "global_model") == "aggregate-r1"
    assert _upstream(tasks[f"evaluate-{site}-r2"], "global_model") == "aggregate-r2"
    assert _upstream(tasks["aggregate-r2"], "previous_model") == "aggregate-r1"
    agg_updates = {
        _upstream(tasks["aggregate-r2"], f"update_{i}") for i in range(1, len(SITES) + 1)
    }
    assert agg_updates == {f"export-{s}-r2" for s in SITES}
    report_inputs = tasks["report"]["inputs"]["artifacts"]
    assert len(report_inputs) == len(SITES) + ROUNDS + len(SITES) * ROUNDS
    assert _upstream(tasks["report"], "evaluation_2_3") == f"evaluate-{SITES[2]}-r2"


def test_every_site_task_has_explicit_site_policy_and_snapshot_inputs(compiled):
    _, spec, _ = compiled
    for name, task in _tasks(spec).items():
        stage = name.split("-")[0]
        if stage not in SITE_STAGES:
            continue
        site_id = next(s for s in SITES if s in name)
        params = {
            k: v["runtimeValue"]["constant"]
            for k, v in task["inputs"]["parameters"].items()
            if "runtimeValue" in v
        }
        assert params["site_id"] == site_id, name
        assert params["policy_digest"] == policy_digest(FED.policy_of(site_id)), name
        assert params["data_snapshot"] == FED.sites[site_id].data.snapshot, name
        inputs = task["inputs"]["parameters"]
        if stage == "validate":
            assert inputs["kfp_job_id"]["runtimeValue"]["constant"] == "{{$.pipeline_job_uuid}}"
            assert params["site_json"] == canonical_json(FED.sites[site_id]), name
        else:  # the rest comes with this site's admission
            source = inputs["admission"]["taskOutputParameter"]
            assert source == {
                "outputParameterKey": "admission",
                "producerTask": f"validate-{site_id}",
            }, name


def test_every_site_executor_carries_its_node_selector(compiled):
    _, spec, executors = compiled
    for name in _tasks(spec):
        label = _executor_of(spec, name)
        config = executors[label]
        placement = config["podMetadata"]["labels"][SITE_LABEL]
        site = FED.site(placement)
        assert config["nodeSelector"]["labels"] == site.placement.node_selector, name
        if name.split("-")[0] in SITE_STAGES:
            assert placement in name
        else:
            assert placement == FED.coordinator.id


def test_caching_off_for_every_task_since_each_has_side_effects(compiled):
    _, spec, _ = compiled
    for name, task in _tasks(spec).items():
        # evaluate, initialize and report append to an audit chain, the others write too
        assert not task.get("cachingOptions", {}).get("enableCache", False), name


def test_signing_keys_go_to_the_tasks_that_sign_and_aggregate_reads_every_site(compiled):
    """Every site task signs its audit records (export also the update) with its own site's
    key; initialize, aggregate and report sign the coordinator's chain with the coordinator's
    key (and get no other Secret but aggregate's read keys); no task gets another site's
    signing key."""
    _, spec, executors = compiled
    for name in _tasks(spec):
        config = executors[_executor_of(spec, name)]
        signing = [
            (s["secretName"], m["envVar"])
            for s in config.get("secretAsEnv", [])
            for m in s["keyToEnv"]
            if m["secretKey"] == "signing-key"
        ]
        if name in ("initialize", "report") or name.startswith("aggregate-"):
            assert signing == [("coordinator-object-store", "FEDPIPE_SIGNING_KEY__COORDINATOR")]
            if not name.startswith("aggregate-"):
                assert len(config["secretAsEnv"]) == 1, name
        else:
            site = next(s for s in SITES if f"-{s}" in name)
            suffix = site.upper().replace("-", "_")
            assert signing == [(f"{site}-object-store", f"FEDPIPE_SIGNING_KEY__{suffix}")], name
    agg = executors[_executor_of(spec, "aggregate-r1")]
    assert len(agg["secretAsEnv"]) == len(SITES) + 1  # every site's read keys + its signing key


def test_parameters_have_defaults_and_descriptions(compiled):
    _, spec, _ = compiled
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["run_id"]["defaultValue"] == ""
    assert params["model_name"]["defaultValue"] == "logreg"
    assert params["rule"]["defaultValue"] == "fedavg"
    assert params["server_optimizer"]["defaultValue"] == "fedavg"
    assert params["server_learning_rate"]["defaultValue"] == 1.0
    assert params["resume"]["defaultValue"] is False
    assert {
        "local_epochs", "batch_size", "learning_rate", "noise_multiplier", "l2_norm_clip",
        "dp_enabled", "seed", "rule_params_json", "optimizer_params_json",
    } <= set(params)  # fmt: skip
    assert all(p.get("description") for p in params.values())


def test_every_output_declares_a_class(compiled):
    _, spec, _ = compiled
    for name, component in spec["components"].items():
        for out, definition in component.get("outputDefinitions", {}).get("artifacts", {}).items():
            assert definition["description"].startswith("fedpipe.artifact_class="), (name, out)


def test_no_secret_value_in_the_yaml(monkeypatch, tmp_path):
    secrets = {
        "FEDPIPE_S3_ACCESS_KEY__HOSPITAL_BERLIN": "AKIAREALLOOKINGKEY123",
        "FEDPIPE_S3_SECRET_KEY__HOSPITAL_BERLIN": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYsecret",
        "FEDPIPE_S3_ACCESS_KEY": "fallback-access-key-value",
        "FEDPIPE_SIGNING_KEY": "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIabc\n-----END PRIVATE KEY-----",
    }
    for env, value in secrets.items():
        monkeypatch.setenv(env, value)
    (tmp_path / "hospital-berlin").mkdir()
    (tmp_path / "hospital-berlin" / "s3_secret_key").write_text("file-secret-value-xyz")
    monkeypatch.setenv("FEDPIPE_SECRETS_DIR", str(tmp_path))
    text = compile_federation(FED, rounds=1).pipeline_yaml
    for value in [*secrets.values(), "file-secret-value-xyz"]:
        assert value not in text
    assert "PRIVATE KEY" not in text
    assert "secretKey: signing-key" in text  # referenced by name only


def test_site_image_registry_rewrites_only_that_sites_images():
    from pipelines.config.loader import federation_from_models

    sites = dict(FED.sites)
    sites["clinic-boston"] = sites["clinic-boston"].copy(
        update={"image_registry": "registry.boston.example/mirror"}
    )
    fed = federation_from_models([*sites.values(), FED.coordinator], FED.policies.values())
    spec, _ = yaml.safe_load_all(compile_federation(fed).pipeline_yaml)
    for name in _tasks(spec):
        image = spec["deploymentSpec"]["executors"][_executor_of(spec, name)]["container"]["image"]
        if "clinic-boston" in name:
            assert image == "registry.boston.example/mirror/fedpipe/fedpipe:0.1.0", name
        else:
            assert image == "ghcr.io/fedpipe/fedpipe:0.1.0", name


def test_round_one_training_waits_for_every_budget_preflight(compiled):
    _, spec, _ = compiled
    tasks = _tasks(spec)
    validates = {n for n in tasks if n.startswith("validate-")}
    assert len(validates) == len(SITES)
    # through initialize: it waits for every validate, every train needs its model
    assert validates == set(tasks["initialize"].get("dependentTasks", []))

    def upstream(name: str) -> set[str]:
        direct = set(tasks[name].get("dependentTasks", []))
        return direct.union(*(upstream(d) for d in direct))

    trains = [n for n in tasks if n.startswith("train-") and n.endswith("-r1")]
    assert len(trains) == len(SITES)
    for name in trains:
        assert validates <= upstream(name), name
        # O(sites) edges, not sites²: a train names only its own validate
        assert {d for d in tasks[name]["dependentTasks"] if d.startswith("validate-")} == {
            name.replace("train-", "validate-").removesuffix("-r1")
        }


def test_coordinator_tasks_carry_the_digest_of_their_config_inputs(compiled):
    from components.common.config_digest import config_digest

    _, spec, _ = compiled
    defaults = {
        name: body.get("defaultValue")
        for name, body in spec["root"]["inputDefinitions"]["parameters"].items()
    }
    for name in ("initialize", "aggregate-r1"):
        params = _tasks(spec)[name]["inputs"]["parameters"]
        texts = {
            key: defaults[ref["componentInputParameter"]]
            for key, ref in params.items()
            if key.endswith("_json")
            and ref.get("componentInputParameter", "").startswith("config_")
        }
        assert set(texts) >= {"coordinator_json"}, name
        assert params["config_digest"]["runtimeValue"]["constant"] == config_digest(**texts), name


def test_a_federated_zscore_contract_adds_the_statistics_round_before_initialize():
    from components.domain.contract import Encoding, Statistics
    from pipelines.config.loader import federation_from_models

    contract = FED.contract.copy(
        update={
            "encoding": Encoding(scaling="federated_zscore", statistics=Statistics(epsilon=1.0))
        }
    )
    fed = federation_from_models(
        [*FED.sites.values(), FED.coordinator], FED.policies.values(), contracts=[contract]
    )
    result = compile_federation(fed, rounds=1)
    spec, platform = yaml.safe_load_all(result.pipeline_yaml)
    tasks = _tasks(spec)
    stats = {f"stats-{s}" for s in SITES}
    assert stats | {"scaling"} <= set(tasks)
    for s in SITES:
        assert _upstream(tasks[f"stats-{s}"], "validation") == f"validate-{s}"
    assert {_upstream(tasks["scaling"], f"stats_{i}") for i in (1, 2, 3)} == stats
    assert "scaling" in tasks["initialize"]["dependentTasks"]
    # the releases cross to the coordinator under the sites' dp_update rules (fallback)
    crossing = [d for d in result.decisions if d.edge.artifact_class == "feature_stats"]
    assert len(crossing) == len(SITES) and all(d.allowed for d in crossing)
    assert all(d.rule.endswith("(for feature_stats)") for d in crossing)
    # never from cache: they charge the ledger and write create-only
    for name in (*stats, "scaling"):
        assert not tasks[name].get("cachingOptions", {}).get("enableCache", False), name
