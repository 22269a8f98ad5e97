"""Coordinator tasks refuse edited config_* inputs (pure)."""

import hashlib

import pytest

from components.common.config_digest import ConfigDigestError, check_config, config_digest


def test_digest_is_over_the_named_texts_in_name_order():
    expected = hashlib.sha256(b"a\x1fone\x1eb\x1ftwo\x1e").hexdigest()
    assert config_digest(b="two", a="one") == expected
    assert config_digest(a="one", b="two!") != expected
    assert config_digest(a="two", b="one") != expected  # a value under another name


def test_an_edited_text_is_refused_naming_task_and_inputs():
    digest = config_digest(sites_json='{"s1": {}}', policies_json="{}")
    check_config(digest, task="aggregate round 2", sites_json='{"s1": {}}', policies_json="{}")
    with pytest.raises(ConfigDigestError, match="aggregate round 2: policies_json, sites_json"):
        check_config(digest, task="aggregate round 2", sites_json='{"s1": 1}', policies_json="{}")
