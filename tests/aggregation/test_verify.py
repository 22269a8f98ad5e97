"""Pure verification of one update: every refusal is raised with the site and a reason."""

from __future__ import annotations

import numpy as np
import pytest

from components.aggregation.verify import (
    UpdateRejected,
    check_ref,
    model_spec,
    residency_rule,
    size_limit,
    verify_update,
)
from components.common.manifest import generate_keypair
from components.common.tensors import dump_tensors
from components.domain.canonical import policy_digest
from tests.support.federation import (
    constant_update,
    global_tensors,
    make_coordinator,
    make_policy,
    new_site,
    npz_float64,
    signed_update,
)

RUN = "run-a"
SPEC = model_spec(global_tensors())


@pytest.fixture(scope="module")
def kit():
    return new_site("hospital-a", endpoint="127.0.0.1:9")


def verify(kit, npz: bytes, manifest: bytes, **kwargs):
    args = {
        "site_id": kit.id,
        "npz_bytes": npz,
        "manifest_bytes": manifest,
        "public_key_pem": kit.site.signing.public_key,
        "run_id": RUN,
        "round_index": 3,
        "spec": SPEC,
        "max_bytes": size_limit(SPEC),
        "policy_digest": policy_digest(kit.policy),
        "epsilon_per_round": 3.0,
        "allow_dp_off": False,
        "global_version": 2,  # round 3 starts from version 2
    }
    args.update(kwargs)
    return verify_update(**args)


def rejected(kit, npz: bytes, manifest: bytes, **kwargs) -> str:
    with pytest.raises(UpdateRejected) as info:
        verify(kit, npz, manifest, **kwargs)
    assert info.value.site_id == kit.id
    assert kit.id in str(info.value)
    return info.value.reason


def test_valid_update_passes_with_its_tensors(kit):
    npz, manifest = signed_update(kit, constant_update(0.5), run_id=RUN, round_index=3)
    verified = verify(kit, npz, manifest)
    assert verified.site_id == kit.id
    assert verified.manifest.round == 3
    assert sorted(verified.tensors) == sorted(SPEC)
    np.testing.assert_array_equal(verified.tensors["hidden/kernel"], np.full((4, 3), 0.5))


def test_size_limit_is_payload_plus_overhead():
    # 23 float32 = 92 bytes, 4 tensors x 1024 overhead, 64 KiB slack
    assert size_limit(SPEC) == 92 + 4 * 1024 + 65536
    assert size_limit(SPEC, slack_bytes=0) == 92 + 4096


def test_forged_signature_is_refused(kit):
    other_private, _ = generate_keypair()
    npz, manifest = signed_update(
        kit, constant_update(0.5), run_id=RUN, round_index=3, signing_pem=other_private
    )
    assert "signature does not verify" in rejected(kit, npz, manifest)


def test_tampered_tensor_bytes_fail_the_content_hash(kit):
    npz, manifest = signed_update(kit, constant_update(0.5), run_id=RUN, round_index=3)
    other = dump_tensors(constant_update(0.6))
    assert "content hash" in rejected(kit, other, manifest)


@pytest.mark.parametrize(("run_id", "round_index"), [(RUN, 2), ("run-old", 3)])
def test_replay_from_other_round_or_run_is_refused(kit, run_id, round_index):
    npz, manifest = signed_update(kit, constant_update(0.5), run_id=run_id, round_index=round_index)
    reason = rejected(kit, npz, manifest)
    assert "replay" in reason
    assert f"round {round_index}" in reason


def test_update_signed_for_another_site_is_refused(kit):
    npz, manifest = signed_update(
        kit, constant_update(0.5), run_id=RUN, round_index=3, site_id="hospital-b"
    )
    assert "hospital-b" in rejected(kit, npz, manifest)


def test_nan_is_refused_and_counted(kit):
    tensors = constant_update(0.5)
    tensors["output/bias"][1] = np.nan
    tensors["output/kernel"][0, 0] = np.inf
    npz, manifest = signed_update(kit, tensors, run_id=RUN, round_index=3)
    reason = rejected(kit, npz, manifest)
    assert "non-finite" in reason
    assert "output/bias" in reason or "output/kernel" in reason


def test_wrong_shape_is_refused(kit):
    tensors = constant_update(0.5)
    tensors["hidden/kernel"] = np.zeros((3, 4), np.float32)
    npz, manifest = signed_update(kit, tensors, run_id=RUN, round_index=3)
    reason = rejected(kit, npz, manifest)
    assert "hidden/kernel" in reason and "(3, 4)" in reason and "(4, 3)" in reason


def test_missing_and_extra_tensor_names_are_refused(kit):
    tensors = constant_update(0.5)
    del tensors["output/bias"]
    tensors["output/gamma"] = np.zeros(2, np.float32)
    npz, manifest = signed_update(kit, tensors, run_id=RUN, round_index=3)
    reason = rejected(kit, npz, manifest)
    assert "['output/bias']" in reason and "['output/gamma']" in reason


def test_float64_tensors_are_refused(kit):
    tensors = constant_update(0.5)
    npz, manifest = signed_update(
        kit, tensors, run_id=RUN, round_index=3, raw_npz=npz_float64(tensors)
    )
    assert "dtype float64" in rejected(kit, npz, manifest, max_bytes=10**6)


def test_oversize_is_refused_before_parsing(kit):
    tensors = constant_update(0.5)
    npz, manifest = signed_update(kit, tensors, run_id=RUN, round_index=3)
    reason = rejected(kit, npz, manifest, max_bytes=len(npz) - 1)
    assert reason == f"oversize: {len(npz)} bytes > limit {len(npz) - 1}"


def test_garbage_payload_with_valid_signature_is_refused(kit):
    npz, manifest = signed_update(
        kit, constant_update(0.5), run_id=RUN, round_index=3, raw_npz=b"not a zip file"
    )
    assert "not a valid tensor file" in rejected(kit, npz, manifest)


def test_malformed_manifest_is_refused(kit):
    npz, _ = signed_update(kit, constant_update(0.5), run_id=RUN, round_index=3)
    assert "malformed manifest" in rejected(kit, npz, b"{}")


def test_manifest_tensor_names_must_match_the_file(kit):
    npz, manifest = signed_update(
        kit, constant_update(0.5), run_id=RUN, round_index=3, tensor_names=["hidden/bias"]
    )
    assert "tensor_names" in rejected(kit, npz, manifest)


def test_other_policy_digest_is_refused(kit):
    npz, manifest = signed_update(
        kit, constant_update(0.5), run_id=RUN, round_index=3, policy_digest="0" * 64
    )
    assert "policy digest 000000000000" in rejected(kit, npz, manifest)


def test_epsilon_above_policy_is_refused(kit):
    npz, manifest = signed_update(kit, constant_update(0.5), run_id=RUN, round_index=3, epsilon=3.5)
    assert "exceeds the policy's dp.epsilon_per_round 3" in rejected(kit, npz, manifest)
    # exactly at the limit passes
    npz, manifest = signed_update(kit, constant_update(0.5), run_id=RUN, round_index=3, epsilon=3.0)
    assert verify(kit, npz, manifest).manifest.epsilon == 3.0


def test_missing_epsilon_needs_allow_dp_off(kit):
    npz, manifest = signed_update(
        kit, constant_update(0.5), run_id=RUN, round_index=3, epsilon=None
    )
    assert "allow_dp_off=false" in rejected(kit, npz, manifest)
    assert verify(kit, npz, manifest, allow_dp_off=True).manifest.epsilon is None


def test_stale_delta_against_another_global_version_is_refused(kit):
    npz, manifest = signed_update(
        kit, constant_update(0.5), run_id=RUN, round_index=3, extra={"global_version": 1}
    )
    assert verify(kit, npz, manifest, global_version=1).site_id == kit.id
    reason = rejected(kit, npz, manifest, global_version=2)
    assert reason == "stale: a delta against global version 1, this round starts from version 2"


def test_check_ref_refuses_foreign_bucket_and_key(kit):
    ref = {"site_id": kit.id, "bucket": "b", "key": "k"}
    check_ref(ref, site_id=kit.id, bucket="b", key="k")
    # the export stage's form: key of the tensor object plus manifest_key
    check_ref(
        {**ref, "key": "k.npz", "manifest_key": "k.manifest.json"},
        site_id=kit.id,
        bucket="b",
        key="k",
    )
    with pytest.raises(UpdateRejected, match="manifest_key 'x.manifest.json'"):
        check_ref({**ref, "manifest_key": "x.manifest.json"}, site_id=kit.id, bucket="b", key="k")
    with pytest.raises(UpdateRejected, match="bucket 'evil'"):
        check_ref({**ref, "bucket": "evil"}, site_id=kit.id, bucket="b", key="k")
    with pytest.raises(UpdateRejected, match="key 'x'"):
        check_ref({**ref, "key": "x"}, site_id=kit.id, bucket="b", key="k")
    with pytest.raises(UpdateRejected, match="names site 'other'"):
        check_ref({**ref, "site_id": "other"}, site_id=kit.id, bucket="b", key="k")


def test_residency_rule_names_the_matching_rule(kit):
    assert residency_rule(kit.site, kit.policy, make_coordinator("global-models")) == (
        "eu-health rules.dp_update[0]"
    )


def test_residency_denies_a_coordinator_outside_the_rule(kit):
    with pytest.raises(UpdateRejected, match="residency: policy eu-health"):
        residency_rule(
            kit.site,
            kit.policy,
            make_coordinator("global-models", jurisdiction="US", region="us-east1"),
        )
    nowhere = make_policy(dp_update=[])
    with pytest.raises(UpdateRejected, match="update not read"):
        residency_rule(kit.site, nowhere, make_coordinator("global-models"))


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("extra", [1], "extra is not an object"),
        ("dp", "x", "dp is not an object"),
        ("epsilon", "1.0", "epsilon is not a number"),
        ("num_examples", 0, "num_examples is not a positive integer"),
        ("extra", {}, "extra.global_version is missing (the version the delta is against)"),
        ("extra", {"global_version": "2"}, "extra.global_version is not a non-negative integer"),
        ("extra", {"global_version": True}, "extra.global_version is not a non-negative integer"),
        ("delta", None, "delta is missing (an epsilon means nothing without its delta)"),
        ("tensor_names", "hidden/bias", "tensor_names is not a list of strings"),
    ],
)
def test_signed_but_malformed_manifest_fields_are_refused(kit, field, value, problem):
    npz, manifest = signed_update(
        kit, constant_update(0.5), run_id=RUN, round_index=3, **{field: value}
    )
    assert rejected(kit, npz, manifest) == f"malformed manifest: {problem}"


def test_compressed_npz_is_refused_before_unpacking(kit):
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, **constant_update(0.5))
    npz, manifest = signed_update(
        kit, constant_update(0.5), run_id=RUN, round_index=3, raw_npz=buf.getvalue()
    )
    assert "compressed entries" in rejected(kit, npz, manifest)


def test_a_manifest_without_extra_global_version_is_refused(kit):
    """Issue #11 item 6: the stale-delta check was skipped when the field was absent."""
    npz, manifest = signed_update(kit, constant_update(0.5), run_id=RUN, round_index=3, extra={})
    assert rejected(kit, npz, manifest) == (
        "malformed manifest: extra.global_version is missing (the version the delta is against)"
    )


@pytest.mark.parametrize("field", ["version", "extra", "policy_digest", "dp", "num_examples"])
def test_a_signed_manifest_missing_any_field_is_refused(kit, field):
    """A left-out field must not silently take its default (e.g. `version`), even when the
    site signed exactly the fields that are left, as a careless or hostile site would."""
    import base64
    import json

    from cryptography.hazmat.primitives import serialization

    npz, manifest = signed_update(kit, constant_update(0.5), run_id=RUN, round_index=3)
    body = json.loads(manifest)["manifest"]
    del body[field]
    key = serialization.load_pem_private_key(kit.private_pem.encode(), password=None)
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    forged = json.dumps(
        {"manifest": body, "signature": base64.b64encode(key.sign(canonical)).decode()}
    ).encode()
    reason = rejected(kit, npz, forged)
    assert reason == f"malformed manifest: 'missing field(s) {field}'"
