"""Secret references read back from a compiled platform spec (hand-written spec)."""

from __future__ import annotations

import pytest

from pipelines.deploy.secrets import SecretRefError, secret_refs, secrets_by_name


def executor(site: str | None, env: list | None = None, volume: list | None = None) -> dict:
    config: dict = {}
    if site:
        config["podMetadata"] = {"labels": {"fedpipe.dev/site": site}}
    if env:
        config["secretAsEnv"] = env
    if volume:
        config["secretAsVolume"] = volume
    return config


def platform(**executors: dict) -> dict:
    return {"platforms": {"kubernetes": {"deploymentSpec": {"executors": executors}}}}


def env(name: str, *keys: str, by_parameter: bool = False) -> dict:
    ref = {"keyToEnv": [{"secretKey": k, "envVar": k.upper()} for k in keys]}
    if by_parameter:
        ref["secretNameParameter"] = {"runtimeValue": {"constant": name}}
    else:
        ref["secretName"] = name
    return ref


def test_refs_per_placement_and_by_name():
    spec = platform(
        a=executor("s1", [env("s1-store", "access-key", "secret-key")]),
        b=executor("s1", [env("s1-store", "signing-key", by_parameter=True)]),
        c=executor(
            "coord",
            [env("s1-read", "access-key")],
            [{"secretName": "tls", "items": [{"key": "ca"}]}],
        ),
        d=executor(None),  # no Secret: no label needed
    )
    refs = secret_refs(spec)
    assert refs == {
        "coord": {"s1-read": frozenset({"access-key"}), "tls": frozenset({"ca"})},
        "s1": {"s1-store": frozenset({"access-key", "secret-key", "signing-key"})},
    }
    assert secrets_by_name(refs)["s1-store"] == {
        "keys": ["access-key", "secret-key", "signing-key"],
        "read_by": ["s1"],
    }
    assert secret_refs({}) == {}


def test_a_secret_reader_without_placement_label_is_an_error():
    with pytest.raises(
        SecretRefError, match="executor x: reads a Secret but has no fedpipe.dev/site"
    ):
        secret_refs(platform(x=executor(None, [env("s", "k")])))
    with pytest.raises(SecretRefError, match="without a constant name"):
        secret_refs(platform(x=executor("s", [{"keyToEnv": []}])))
