"""Membership-inference audit: attacks against hand-computed ROC figures, the DP bound, and
an overfit model on scikit-learn's breast cancer data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from components.evaluate.membership import (
    advantage_bound,
    audit,
    logistic_attack,
    loss_threshold_attack,
)


def test_loss_threshold_attack_by_hand():
    # members all lower: a perfect attack
    perfect = loss_threshold_attack([0.1, 0.2], [0.3, 0.4])
    assert (perfect.auc, perfect.advantage) == (1.0, 1.0)
    # members 0.1, 0.4 vs 0.2, 0.3: member 0.1 beats both non-members, 0.4 none → AUC 2/4;
    # threshold "loss ≤ 0.1": TPR 1/2, FPR 0 → advantage 0.5
    mixed = loss_threshold_attack([0.1, 0.4], [0.2, 0.3])
    assert (mixed.auc, mixed.advantage) == (0.5, 0.5)
    with pytest.raises(ValueError, match="needs member and non-member rows"):
        loss_threshold_attack([], [0.1])
    with pytest.raises(ValueError, match="not finite"):
        loss_threshold_attack([float("nan")], [0.1])


def test_bound_by_hand():
    assert advantage_bound(0.0, 0.0) == 0.0
    assert advantage_bound(math.log(3), 0.0) == pytest.approx(0.5)  # (3 − 1)/(3 + 1)
    assert advantage_bound(math.log(3), 0.01) == pytest.approx(0.505)  # + 2δ/(e^ε + 1)
    assert advantage_bound(float("inf"), 1e-5) == 1.0 and advantage_bound(800, 0) == 1.0
    with pytest.raises(ValueError, match="ε ≥ 0"):
        advantage_bound(-1, 0)


def test_logistic_attack_separates_separable_features_and_not_identical_ones():
    rng = np.random.default_rng(0)
    members, others = rng.normal(0, 1, 50), rng.normal(5, 1, 50)
    assert logistic_attack(members, others, seed=0).auc > 0.99
    same = logistic_attack(np.ones(20), np.ones(20), seed=0)
    assert same.auc == 0.5 and same.advantage == 0.0


def losses(model, x, y) -> np.ndarray:
    p = np.clip(model.predict_proba(x)[np.arange(len(y)), y], 1e-12, 1)
    return -np.log(p)


@pytest.fixture(scope="module")
def breast_cancer():
    from sklearn.datasets import load_breast_cancer
    from sklearn.preprocessing import StandardScaler

    x, y = load_breast_cancer(return_X_y=True)
    order = np.random.default_rng(7).permutation(len(y))
    x = StandardScaler().fit_transform(x)
    train, holdout = order[:60], order[60:260]  # a small site: 60 members, 200 non-members
    return x[train], y[train], x[holdout], y[holdout]


def test_a_memorising_model_on_breast_cancer_is_caught_where_a_tight_bound_forbids_it(
    breast_cancer,
):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    x_tr, y_tr, x_ho, y_ho = breast_cancer
    # DP off, a model that memorises: distance-weighted 7-NN gives every member its own
    # label with probability ≈ 1 (loss < 1e-7); non-members near the class boundary get a loss
    knn = KNeighborsClassifier(7, weights="distance").fit(x_tr, y_tr)
    member, other = losses(knn, x_tr, y_tr), losses(knn, x_ho, y_ho)
    assert member.max() < 1e-7 and (other > 1e-7).mean() > 0.3
    off = audit(member, other, math.inf, 0.0)
    # measured (seed 7 split): AUC 0.672, advantage 0.375 for both attacks
    assert off["loss_threshold"]["auc"] > 0.6 and off["loss_threshold"]["advantage"] > 0.3
    assert off["logistic"]["advantage"] > 0.3
    assert off["bound"] == 1.0 and not off["above_bound"] and off["epsilon"] is None
    # the same figures under a claimed ε = 0.5 (bound (e^0.5 − 1)/(e^0.5 + 1) = 0.245): flagged
    claimed = audit(member, other, 0.5, 1e-5)
    assert claimed["bound"] == pytest.approx(0.2449, abs=1e-4) and claimed["above_bound"]
    # ε = 8 allows an advantage up to 0.9993: no flag
    assert not audit(member, other, 8.0, 1e-5)["above_bound"]
    # fedpipe's model family, logistic regression, leaks about nothing on the same rows
    # (measured AUC 0.50, advantage 0.09: the max over thresholds of noise on 60 vs 200 rows)
    lr = LogisticRegression(C=1.0, max_iter=10_000).fit(x_tr, y_tr)
    calm = audit(losses(lr, x_tr, y_tr), losses(lr, x_ho, y_ho), 0.5, 1e-5)
    assert calm["loss_threshold"]["auc"] < 0.56 and not calm["above_bound"]


def test_per_example_losses_by_hand():
    from components.evaluate.membership import per_example_losses

    probs = np.array([[0.5, 0.5], [0.9, 0.1], [0.0, 1.0]])
    losses = per_example_losses(probs, np.array([0, 1, 0]))
    assert losses == pytest.approx([math.log(2), -math.log(0.1), -math.log(1e-7)])


def test_site_privacy_per_disclosure():
    from components.evaluate.membership import site_privacy

    kw = {"delta": 1e-5, "epsilon_per_round": 3.0}
    none = site_privacy([], reveal_num_examples=True, **kw)
    assert (none.epsilon, none.disclosure) == (0.0, "not_trained")
    off = site_privacy([(2.0, False), (0.0, True)], reveal_num_examples=True, **kw)
    assert (off.epsilon, off.disclosure) == (math.inf, "dp_off")
    hidden = site_privacy([(1.2, False)] * 3, reveal_num_examples=False, **kw)
    assert (hidden.epsilon, hidden.disclosure) == (9.0, "policy_bound")
    assert hidden.delta == pytest.approx(3e-5)
    exact = site_privacy([(1.2, False)] * 3, reveal_num_examples=True, composed_epsilon=2.5, **kw)
    assert (exact.epsilon, exact.delta, exact.disclosure) == (2.5, 1e-5, "exact")
    with pytest.raises(ValueError, match="composed"):
        site_privacy([(1.2, False)], reveal_num_examples=True, **kw)


def test_site_membership_hides_the_training_count_and_never_flags_an_untrained_site():
    from components.evaluate.membership import SitePrivacy, site_membership

    members, nonmembers = [0.1, 0.2, 0.3, 0.05], [0.9, 0.8, 1.1, 0.7]  # a perfect attack
    hidden = site_membership(
        members, nonmembers, SitePrivacy(1.0, 1e-5, "policy_bound", 1), reveal_num_examples=False
    )
    assert "members" not in hidden and hidden["non_members"] == 4
    assert hidden["loss_threshold"] == {"auc": 1.0, "advantage": 1.0}
    assert hidden["above_bound"] is True  # advantage 1 > (e − 1 + 2e-5)/(e + 1) ≈ 0.462
    untrained = site_membership(
        members, nonmembers, SitePrivacy(0.0, 1e-5, "not_trained", 0), reveal_num_examples=True
    )
    assert untrained["members"] == 4 and untrained["above_bound"] is False
