"""`validate` executor end to end against the real S3-compatible server (minio client)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from components.common.site_task import TaskInputError, call_with_task
from components.datasets.prepare import load_frame, split_federation, table_to_csv_bytes
from components.validate.executor import run as _run_executor
from pipelines.config.loader import contract_by_name
from tests.support.site_inputs import (
    contract_json,
    leaked_values,
    policy_digest_input,
    policy_json,
    site_json,
)


def run(**inputs):  # as the component calls it
    return call_with_task(_run_executor, inputs)


pytestmark = pytest.mark.integration

SITE = "val-berlin"
BUCKET = "val-berlin-fl"


@pytest.fixture(scope="module")
def train_frame():
    frame = load_frame(contract_by_name("breast_cancer"))
    fed = split_federation(
        frame, contract_by_name("breast_cancer"), [SITE, "other"], np.random.default_rng(9)
    )
    return fed.sites[SITE].train


@pytest.fixture()
def bucket(minio):
    if not minio.bucket_exists(BUCKET):
        minio.make_bucket(BUCKET)
    return minio


def _put(client, key: str, data: bytes) -> str:
    client.put_object(BUCKET, key, io.BytesIO(data), len(data))
    return f"s3://{BUCKET}/{key}"


def _run(tmp_path, client, uri: str, **overrides) -> tuple[dict, dict]:
    kwargs = dict(
        site_id=SITE,
        data_snapshot="2026-11-01",
        site_json=site_json(SITE, train_uri=uri),
        policy_json=policy_json(),
        run_id="run-1",
        kfp_job_id="job-1",
        round_index=1,
        dataset="breast_cancer",
        summary=str(tmp_path / "summary"),
        client_factory=lambda: client,
    )
    kwargs.update(overrides)
    kwargs.setdefault("contract_json", contract_json(str(kwargs["dataset"])))
    kwargs.update(policy_digest_input(kwargs["policy_json"]))
    returned = run(**kwargs)
    written = json.loads((tmp_path / "summary" / "summary.json").read_text())
    return returned, written


def test_good_site_passes_and_writes_contract_summary(tmp_path, bucket, train_frame):
    uri = _put(bucket, "data/train.csv", table_to_csv_bytes(train_frame))
    returned, written = _run(tmp_path, bucket, uri)
    assert returned == written
    assert set(written) == {"site_id", "passed", "row_count", "expectations", "reason"}
    assert written["passed"] is True and written["reason"] is None
    assert written["site_id"] == SITE and written["row_count"] == len(train_frame)
    assert leaked_values((tmp_path / "summary" / "summary.json").read_text(), train_frame) == set()


@pytest.mark.parametrize(
    ("content", "reason_part"),
    [
        (b"", "data check 'not_empty' failed"),
        (b"mean_radius,label\n", "expect_table_row_count_to_be_between"),
        (b"a,b\n1,2\n3\n4,5,6,7\n", "data check 'csv' failed"),
    ],
)
def test_bad_files_abstain(tmp_path, bucket, content, reason_part):
    uri = _put(bucket, "data/bad.csv", content)
    _, summary = _run(tmp_path, bucket, uri)
    assert summary["passed"] is False
    assert summary["reason"].startswith(f"site {SITE} abstains:")
    assert reason_part in summary["reason"]


def test_nan_labels_from_csv_abstain_without_leaking(tmp_path, bucket, train_frame):
    bad = train_frame.assign(label=train_frame["label"].where(train_frame.index % 10 != 0))
    uri = _put(bucket, "data/nan.csv", table_to_csv_bytes(bad))
    _, summary = _run(tmp_path, bucket, uri)
    assert summary["passed"] is False
    assert "expect_column_values_to_not_be_null(label)" in summary["reason"]
    assert leaked_values(json.dumps(summary), bad) == set()


def test_unreadable_uri_abstains(tmp_path, bucket):
    _, summary = _run(tmp_path, bucket, f"s3://{BUCKET}/data/does-not-exist.csv")
    assert summary["passed"] is False
    assert summary["reason"] == (
        f"site {SITE} abstains: data check 'readable' failed: "
        f"cannot read s3://{BUCKET}/data/does-not-exist.csv: NoSuchKey"
    )


def test_missing_credentials_abstain(tmp_path, monkeypatch):
    for name in (
        "FEDPIPE_S3_ACCESS_KEY",
        "FEDPIPE_S3_ACCESS_KEY__VAL_BERLIN",
        "FEDPIPE_SECRETS_DIR",
    ):
        monkeypatch.delenv(name, raising=False)
    _, summary = _run(tmp_path, None, f"s3://{BUCKET}/data/train.csv", client_factory=None)
    assert summary["passed"] is False
    assert "secret S3_ACCESS_KEY not found" in summary["reason"]


def test_task_wired_to_another_site_raises(tmp_path, bucket):
    with pytest.raises(TaskInputError, match="describes site 'val-berlin', task input site_id 'x'"):
        _run(tmp_path, bucket, f"s3://{BUCKET}/data/train.csv", site_id="x")
    with pytest.raises(TaskInputError, match="task dataset 'digits' differs"):
        _run(tmp_path, bucket, f"s3://{BUCKET}/data/train.csv", dataset="digits")


def test_row_count_hidden_when_policy_hides_sample_counts(tmp_path, bucket, train_frame):
    uri = _put(bucket, "data/train.csv", table_to_csv_bytes(train_frame))
    _, summary = _run(tmp_path, bucket, uri, policy_json=policy_json(reveal_num_examples=False))
    assert summary["passed"] is True
    assert summary["row_count"] is None
    assert len(train_frame) not in {e["unexpected_count"] for e in summary["expectations"]}


def test_a_fitted_scaler_with_dp_on_is_refused_before_anyone_trains(tmp_path, bucket):
    from components.domain.contract import ContractError

    fitted = json.loads(contract_json("breast_cancer"))
    fitted["encoding"]["scaling"] = "site_zscore"
    with pytest.raises(ContractError, match="site_zscore fits mean and std on the site's own"):
        _run(
            tmp_path,
            bucket,
            f"s3://{BUCKET}/data/none.csv",
            contract_json=json.dumps(fitted),
            dp_enabled=True,
            rounds=1,
        )
    assert not (tmp_path / "summary").exists()
    # with DP off the same contract is fine (the scaler is then no privacy question)
    returned, _ = _run(
        tmp_path, bucket, f"s3://{BUCKET}/data/none.csv", contract_json=json.dumps(fitted)
    )
    assert returned["passed"] is False  # the file does not exist: an abstention, not a refusal


def test_a_site_without_its_ckks_secret_context_abstains_under_he(tmp_path, bucket, train_frame):
    from components.he.keys import new_federation_keys
    from components.he.wire import SITE_CONTEXT_KEY

    uri = _put(bucket, "data/train.csv", table_to_csv_bytes(train_frame))
    policy = json.loads(policy_json())
    policy["aggregation"]["protection"] = "he"
    he_policy = json.dumps(policy)
    bucket.remove_object(BUCKET, SITE_CONTEXT_KEY)
    _, summary = _run(tmp_path / "a", bucket, uri, policy_json=he_policy)
    assert summary["passed"] is False
    assert summary["reason"].startswith(f"site {SITE} abstains: site {SITE}: s3://{BUCKET}/")
    assert f"{SITE_CONTEXT_KEY} is missing" in summary["reason"]
    assert "fedpipe he-setup" in summary["reason"]
    _put(bucket, SITE_CONTEXT_KEY, new_federation_keys().site)
    _, summary = _run(tmp_path / "b", bucket, uri, policy_json=he_policy)
    assert summary["passed"] is True, summary["reason"]
    bucket.remove_object(BUCKET, SITE_CONTEXT_KEY)


def test_under_secagg_a_passing_site_advertises_its_round_keys(
    tmp_path, bucket, train_frame, monkeypatch
):
    from components.common.manifest import generate_keypair
    from components.common.secrets import secret_env_name
    from components.secagg import wire
    from components.secagg.exchange import site_key

    uri = _put(bucket, "data/train.csv", table_to_csv_bytes(train_frame))
    policy = json.loads(policy_json())
    policy["aggregation"]["protection"] = "secagg"
    private_pem, public_pem = generate_keypair()
    site = json.loads(site_json(SITE, train_uri=uri))
    site["signing"]["public_key"] = public_pem
    args = dict(policy_json=json.dumps(policy), site_json=json.dumps(site), rounds=2)
    run_id = "run-secagg-validate"
    # its SIGNING_KEY is not the spec's key: it cannot sign, so it abstains before training
    monkeypatch.setenv(secret_env_name(SITE, "SIGNING_KEY"), generate_keypair()[0])
    _, summary = _run(tmp_path / "a", bucket, uri, run_id=run_id, **args)
    assert summary["passed"] is False
    assert "cannot advertise its SecAgg+ round keys" in summary["reason"]
    monkeypatch.setenv(secret_env_name(SITE, "SIGNING_KEY"), private_pem)
    _, summary = _run(tmp_path / "b", bucket, uri, run_id=run_id, **args)
    assert summary["passed"] is True, summary["reason"]
    for r in (1, 2):  # one signed advertisement per round, the state beside it, private
        raw = bucket.get_object(BUCKET, site_key(run_id, r, SITE, "advertisement.json")).read()
        ad = wire.load_advertisement(raw)
        assert (ad.run_id, ad.round, ad.site_id) == (run_id, r, SITE)
        state = site_key(run_id, r, SITE, "state-keys.json")
        assert state.startswith("secagg-private/")
        bucket.stat_object(BUCKET, state)
