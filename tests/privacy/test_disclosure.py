"""What leaves a site about its privacy spending when the policy hides N, and what an observer
can infer from it (issue #11 item 2). The accountant is replaced by a hand-made curve here;
`test_export_executor` runs the real accountant."""

from __future__ import annotations

import math

import pytest

from components.export.update import build_manifest
from components.privacy.disclosure import (
    EXACT,
    POLICY_BOUND,
    DisclosureError,
    PublishedEpsilon,
    consistent_sizes,
    epsilon_interval,
    published_epsilon,
)


def curve(n: int) -> float:
    """A stand-in accountant: epsilon 240/N (decreasing in N like DP-SGD's at fixed epochs);
    inf below a batch of 16 (no training possible)."""
    return math.inf if n < 16 else 240.0 / n


SIZES = range(9, 601)


def test_revealed_count_publishes_the_exact_figures():
    assert published_epsilon(
        2.5, 2.25, reveal_num_examples=True, epsilon_per_round=3.0, site_id="s"
    ) == PublishedEpsilon(2.5, 2.25, EXACT)


def test_hidden_count_publishes_the_policy_bound_and_no_pld_figure():
    assert published_epsilon(
        2.1982731086693073, 2.01, reveal_num_examples=False, epsilon_per_round=3.0, site_id="s"
    ) == PublishedEpsilon(3.0, None, POLICY_BOUND)


def test_dp_off_has_nothing_to_hide():
    assert published_epsilon(
        None, None, reveal_num_examples=False, epsilon_per_round=3.0, site_id="s"
    ) == PublishedEpsilon(None, None, EXACT)


def test_an_exact_figure_above_the_bound_is_not_published():
    with pytest.raises(DisclosureError, match="site s: epsilon 3.5 .* dp.epsilon_per_round 3"):
        published_epsilon(3.5, 3.1, reveal_num_examples=False, epsilon_per_round=3.0, site_id="s")


def test_intervals_and_the_search_by_hand():
    assert epsilon_interval(2.0, EXACT) == (2.0, 2.0)
    assert epsilon_interval(3.0, POLICY_BOUND) == (0.0, 3.0)
    with pytest.raises(DisclosureError, match="unknown epsilon disclosure"):
        epsilon_interval(3.0, "rounded")
    # exact 240/120 = 2.0: only N = 120; bound 3.0: 240/N <= 3 for N >= 80, i.e. 80..600
    assert consistent_sizes((2.0, 2.0), curve, SIZES) == [120]
    assert consistent_sizes((0.0, 3.0), curve, SIZES) == list(range(80, 601))


def _manifest(reveal: bool, epsilon: float):
    return build_manifest(
        run_id="r",
        round_=1,
        site_id="s",
        payload=b"x",
        tensor_names=["w"],
        train_meta={
            "num_examples": 122,
            "dp": {"batch_size": 16, "local_epochs": 2, "noise_multiplier": 1.1, "steps": 14},
            "epsilon": epsilon,
            "epsilon_pld": epsilon * 0.9,
            "delta": 1e-5,
        },
        reveal_num_examples=reveal,
        epsilon_per_round=3.0,
        policy_digest="d",
        extra={"global_version": 0},
    )


def test_a_hidden_count_cannot_be_recovered_from_the_manifest():
    """The manifest of a site with N = 122 (epsilon 240/122 on the stand-in curve): with the
    count hidden, the N-inversion search over 9..600 leaves 521 candidates (80..600)."""
    m = _manifest(False, curve(122))
    assert m.num_examples is None and "steps" not in m.dp
    assert (m.epsilon, m.epsilon_pld, m.dp["epsilon_disclosure"]) == (3.0, None, POLICY_BOUND)
    found = consistent_sizes(epsilon_interval(m.epsilon, m.dp["epsilon_disclosure"]), curve, SIZES)
    assert len(found) == 521 and 122 in found
    # revealed, the exact figure is published and the search finds N alone
    shown = _manifest(True, curve(122))
    assert shown.num_examples == 122 and shown.epsilon == curve(122)
    assert consistent_sizes(epsilon_interval(shown.epsilon, EXACT), curve, SIZES) == [122]
