"""Membership-inference audit of a trained model at one site (pure; scikit-learn metrics).

Given the model's per-example losses on the site's training rows (members) and holdout rows
(non-members), two attacks guess membership:

* loss threshold (Yeom et al. 2018): a lower loss says member; scored by −loss;
* logistic: a logistic regression on per-example features (default: the loss alone; e.g.
  loss and confidence), its scores taken out-of-fold (stratified k-fold, seeded), so the
  attack is judged on rows it was not fitted on.

Each gives the ROC AUC and the membership advantage max over thresholds of TPR − FPR
(`sklearn.metrics.roc_curve`). Only these numbers leave the site. The bound an (ε, δ)-DP
training allows any attack (Humphries et al. 2021, tight form of Yeom et al.):
advantage ≤ (e^ε − 1 + 2δ)/(e^ε + 1). A site whose measured advantage is above its bound is
flagged: more than sampling noise on a small holdout would explain it, or the DP claim is off.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AttackResult:
    """ROC AUC (0.5 = guessing) and advantage max(TPR − FPR) ∈ [0, 1] of one attack."""

    auc: float
    advantage: float


def advantage_bound(epsilon: float, delta: float) -> float:
    """(e^ε − 1 + 2δ)/(e^ε + 1), capped at 1; ε = inf (no DP) gives 1."""
    if epsilon < 0 or not 0 <= delta < 1:
        raise ValueError(f"need ε ≥ 0 and 0 ≤ δ < 1, got ε={epsilon}, δ={delta}")
    if math.isinf(epsilon):
        return 1.0
    e = math.exp(min(epsilon, 700.0))
    return min(1.0, (e - 1 + 2 * delta) / (e + 1))


def _labels_scores(members: np.ndarray, nonmembers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(members) == 0 or len(nonmembers) == 0:
        raise ValueError(
            f"membership audit needs member and non-member rows, got {len(members)} and "
            f"{len(nonmembers)}"
        )
    labels = np.concatenate([np.ones(len(members)), np.zeros(len(nonmembers))])
    return labels, np.concatenate([members, nonmembers])


def score_attack(labels: np.ndarray, scores: np.ndarray) -> AttackResult:
    """AUC and advantage of `scores` (higher = member) against the true `labels` (1 = member)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fpr, tpr, _ = roc_curve(labels, scores)
    return AttackResult(float(roc_auc_score(labels, scores)), float(np.max(tpr - fpr)))


def loss_threshold_attack(
    member_losses: Sequence[float], nonmember_losses: Sequence[float]
) -> AttackResult:
    """The loss-threshold attack: score = −loss."""
    labels, losses = _labels_scores(
        np.asarray(member_losses, np.float64), np.asarray(nonmember_losses, np.float64)
    )
    if not np.isfinite(losses).all():
        raise ValueError("membership audit: a loss is not finite")
    return score_attack(labels, -losses)


def logistic_attack(
    member_features: np.ndarray, nonmember_features: np.ndarray, seed: int, folds: int = 5
) -> AttackResult:
    """A logistic-regression attack on per-example features (rows × features; 1-D = one
    feature), judged out-of-fold (`folds`-fold stratified, shuffled with `seed`)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    m = np.asarray(member_features, np.float64)
    n = np.asarray(nonmember_features, np.float64)
    m, n = (m[:, None], n[:, None]) if m.ndim == 1 else (m, n)
    labels, x = _labels_scores(m, n)
    folds = max(2, min(folds, len(m), len(n)))
    model = make_pipeline(StandardScaler(), LogisticRegression())
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    scores = cross_val_predict(model, x, labels, cv=cv, method="predict_proba")[:, 1]
    return score_attack(labels, scores)


def audit(
    member_losses: Sequence[float],
    nonmember_losses: Sequence[float],
    epsilon: float,
    delta: float,
    seed: int = 0,
) -> dict:
    """The metrics a site reports: both attacks, the bound for its (ε, δ) (ε = inf: DP off)
    and whether the larger advantage exceeds it."""
    threshold = loss_threshold_attack(member_losses, nonmember_losses)
    logistic = logistic_attack(np.asarray(member_losses), np.asarray(nonmember_losses), seed)
    bound = advantage_bound(epsilon, delta)
    worst = max(threshold.advantage, logistic.advantage)
    return {
        "loss_threshold": {"auc": threshold.auc, "advantage": threshold.advantage},
        "logistic": {"auc": logistic.auc, "advantage": logistic.advantage},
        "bound": bound,
        "epsilon": None if math.isinf(epsilon) else epsilon,
        "delta": delta,
        "above_bound": worst > bound,
        "members": len(member_losses),
        "non_members": len(nonmember_losses),
    }


def per_example_losses(probs: np.ndarray, y_idx: np.ndarray, floor: float = 1e-7) -> np.ndarray:
    """−log p(true class) of every row (the floor as in `metrics.cross_entropy`)."""
    p_true = np.clip(probs[np.arange(len(y_idx)), y_idx], floor, 1.0)
    return -np.log(p_true)


@dataclass(frozen=True)
class SitePrivacy:
    """The (ε, δ) a site's rows are protected by in the model audited, as it may leave the
    site: `exact` (the ledger's RDP composition of this run's charges), `policy_bound` (N hidden:
    k charges × the policy's ε per round, k·δ, by basic composition, an upper bound), `dp_off`
    (a charge without DP: ε = inf) or `not_trained` (no charge: the model never saw its rows)."""

    epsilon: float
    delta: float
    disclosure: str
    charges: int


def site_privacy(
    charges: Sequence[tuple[float, bool]],
    *,
    delta: float,
    epsilon_per_round: float,
    reveal_num_examples: bool,
    composed_epsilon: float | None = None,
) -> SitePrivacy:
    """`charges`: (that charge's ε, trained without DP) of every ledger entry of the run so far;
    `composed_epsilon`: their RDP composition at `delta` (exact disclosure only)."""
    k = len(charges)
    if k == 0:
        return SitePrivacy(0.0, delta, "not_trained", 0)
    if any(non_private for _, non_private in charges):
        return SitePrivacy(math.inf, delta, "dp_off", k)
    if not reveal_num_examples:
        return SitePrivacy(k * epsilon_per_round, min(k * delta, 0.5), "policy_bound", k)
    if composed_epsilon is None:
        raise ValueError("exact disclosure needs the composed epsilon")
    return SitePrivacy(composed_epsilon, delta, "exact", k)


def site_membership(
    member_losses: Sequence[float],
    nonmember_losses: Sequence[float],
    privacy: SitePrivacy,
    *,
    reveal_num_examples: bool,
    seed: int = 0,
) -> dict:
    """The metrics that leave the site: `audit` with the disclosure of its (ε, δ); the number
    of training rows only when the policy reveals it."""
    out = audit(member_losses, nonmember_losses, privacy.epsilon, privacy.delta, seed)
    out["disclosure"] = privacy.disclosure
    if privacy.disclosure == "not_trained":  # its rows never reached the model: noise only
        out["above_bound"] = False
    if not reveal_num_examples:
        del out["members"]
    return out
