"""The compiled SecAgg+ settings (graph size, threshold, fixed point, weights) and the flat
vector a site masks; where a site keeps its round state."""

from __future__ import annotations

import re

import numpy as np
import pytest

from components.secagg.errors import SecAggError
from components.secagg.exchange import site_key
from components.secagg.settings import (
    SecAggSettings,
    flatten,
    parameter_problems,
    unflatten,
    vector_length,
)


@pytest.mark.parametrize(
    ("advertised", "k", "t"),
    [(2, 1, 2), (3, 2, 2), (9, 8, 5), (10, 8, 5), (30, 8, 5)],
)
def test_graph_and_threshold(advertised, k, t):
    # complete graph up to 8 neighbours, then k = 8; t = floor((k + 1) / 2) + 1
    assert SecAggSettings(num_sites=30).graph(advertised) == (k, t)


def test_fewer_than_two_sites_cannot_aggregate_securely():
    with pytest.raises(SecAggError, match="at least 2"):
        SecAggSettings(num_sites=10).graph(1)
    with pytest.raises(SecAggError, match="at least 2"):
        SecAggSettings(num_sites=1)


def test_settings_round_trip_and_refuse_nonsense():
    s = SecAggSettings(num_sites=4, weighting="num_examples", max_weight=500.0)
    assert SecAggSettings.from_json(s.to_json()) == s
    with pytest.raises(SecAggError, match="secagg_json"):
        SecAggSettings.from_json('{"num_sites": 3}')
    with pytest.raises(SecAggError, match="even"):
        SecAggSettings(num_sites=4, neighbours=3)
    with pytest.raises(SecAggError, match="uniform"):
        SecAggSettings(num_sites=4, max_weight=2.0)


def test_weights_uniform_or_capped_row_counts():
    assert SecAggSettings(num_sites=3).weight(120, "a") == 1.0
    rows = SecAggSettings(num_sites=3, weighting="num_examples", max_weight=100.0)
    assert rows.weight(80, "a") == 80.0 and rows.weight(120, "a") == 100.0
    with pytest.raises(SecAggError, match="site a"):
        rows.weight(None, "a")


def test_fixed_point_of_three_sites_at_64_bits():
    q = SecAggSettings(num_sites=3).quantizer()
    # 52 bits (float64's mantissa) over [-100, 100]: one step is 200 / (2^52 - 1)
    assert q.bits == 52 and q.modulus_bits == 64 and q.clip == 100.0


def test_flatten_is_sorted_by_name_and_unflatten_inverts_it():
    tensors = {"b": np.array([[1.0, 2.0]], np.float32), "a": np.array([3.0], np.float32)}
    vector = flatten(tensors)
    assert vector.tolist() == [3.0, 1.0, 2.0]
    assert vector_length(tensors) == 4  # + the weight slot
    back = unflatten(vector, tensors)
    assert back["b"].shape == (1, 2) and back["b"].dtype == np.float32
    assert np.array_equal(back["a"], tensors["a"])
    with pytest.raises(SecAggError, match="4 values"):
        unflatten(np.zeros(4), tensors)


def test_round_state_lives_under_its_own_prefix():
    assert (
        site_key("r", 2, "s", "state-keys.json") == "secagg-private/r/round-0002/s/state-keys.json"
    )
    assert site_key("r", 2, "s", "masked.bin") == "secagg/r/round-0002/s/masked.bin"


def test_a_policy_threshold_is_the_full_graphs_and_smaller_rounds_clamp_it():
    s = SecAggSettings(num_sites=30, threshold=7)
    assert s.graph(30) == (8, 7)
    assert s.graph(5) == (4, 5)  # min(7, k + 1): the site and its 4 neighbours hold shares
    assert s.graph(2) == (1, 2)
    assert SecAggSettings(num_sites=30, neighbours=4).graph(30) == (4, 3)
    assert SecAggSettings.from_json(s.to_json()) == s


@pytest.mark.parametrize(
    ("num_sites", "neighbours", "threshold", "bits", "field", "match"),
    [
        (30, 8, 4, 64, "threshold", r"must exceed \(k \+ 1\) / 2 = 4.5 \(k = 8"),
        (3, 8, 1, 64, "threshold", r"must exceed \(k \+ 1\) / 2 = 1.5 \(k = 2"),
        (30, 8, 10, 64, "threshold", r"exceeds the k \+ 1 = 9 holders"),
        (3, 8, 4, 64, "threshold", r"exceeds the k \+ 1 = 3 holders"),
        (65537, 8, None, 32, "word_bits", r"32-bit words: the sum of 65537 sites leaves 15 bits"),
    ],
)
def test_impossible_parameters_are_named_by_field(
    num_sites, neighbours, threshold, bits, field, match
):
    [(got, problem)] = parameter_problems(num_sites, neighbours, threshold, bits)
    assert got == field
    assert re.search(match, problem), problem
    with pytest.raises(SecAggError, match=match):
        SecAggSettings(
            num_sites=num_sites, neighbours=neighbours, threshold=threshold, modulus_bits=bits
        )


@pytest.mark.parametrize(
    ("num_sites", "neighbours", "threshold", "bits"),
    [
        (30, 8, 5, 64),
        (30, 8, 9, 64),
        (3, 8, 2, 64),
        (3, 8, 3, 64),
        (65536, 8, None, 32),
        (10, 2, 2, 32),
    ],
)
def test_possible_parameters_pass(num_sites, neighbours, threshold, bits):
    assert parameter_problems(num_sites, neighbours, threshold, bits) == []
    SecAggSettings(
        num_sites=num_sites, neighbours=neighbours, threshold=threshold, modulus_bits=bits
    )
