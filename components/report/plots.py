"""Plots of a run summary as inline PNG data URIs (matplotlib, Agg backend, no files)."""

from __future__ import annotations

import base64
import io
import itertools
from collections.abc import Mapping
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

_DPI = 100


def _to_data_uri(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _series(rounds: list[Mapping[str, Any]], get: Any) -> tuple[list[int], list[float]]:
    xs: list[int] = []
    ys: list[float] = []
    for r in rounds:
        value = get(r)
        if value is not None:
            xs.append(int(r["round"]))
            ys.append(float(value))
    return xs, ys


def accuracy_plot(summary: Mapping[str, Any]) -> str | None:
    """Accuracy per round: global (holdout-weighted, pooled test) and per site; None if no data."""
    rounds = list(summary.get("rounds") or [])
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    drawn = False
    xs, ys = _series(rounds, lambda r: r["global"].get("test_accuracy"))
    if xs:
        ax.plot(xs, ys, "o-", color="black", linewidth=2.2, label="global (pooled test)")
        drawn = True
    xs, ys = _series(rounds, lambda r: r["global"].get("accuracy"))
    if xs:
        ax.plot(xs, ys, "s--", color="dimgray", linewidth=1.8, label="global (site holdouts)")
        drawn = True
    for site in summary.get("sites") or []:
        xs, ys = _series(rounds, lambda r, s=site: r["sites"].get(s, {}).get("accuracy"))
        if xs:
            ax.plot(xs, ys, ".:", alpha=0.85, label=site)
            drawn = True
    baseline = (summary.get("baseline") or {}).get("test_accuracy")
    if baseline is not None:
        ax.axhline(float(baseline), color="tab:red", linestyle="-.", label="centralized baseline")
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("round")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("accuracy")
    ax.set_title("Accuracy per round")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _to_data_uri(fig)


def epsilon_plot(summary: Mapping[str, Any]) -> str | None:
    """Cumulative epsilon per round per site, RDP (solid) and PLD (dashed); None if no data."""
    rounds = list(summary.get("rounds") or [])
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    drawn = False
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, site in enumerate(summary.get("sites") or []):
        color = colors[i % len(colors)]
        for key, style, label in (
            ("epsilon", "o-", "RDP"),
            ("epsilon_pld", "x--", "PLD"),
        ):
            spent = [r for r in rounds if r["sites"].get(site, {}).get(key) is not None]
            if not spent:
                continue
            xs = [int(r["round"]) for r in spent]
            ys = [float(r["sites"][site][f"{key}_cumulative"]) for r in spent]
            ax.plot(xs, ys, style, color=color, label=f"{site} {label}")
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("round")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("epsilon spent this run (cumulative)")
    ax.set_ylim(bottom=0)
    method = summary.get("epsilon_cumulative_method") or ""
    ax.set_title(f"Privacy spent per site {f'({method})' if method else ''}".strip())
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return _to_data_uri(fig)


def site_metrics_plot(summary: Mapping[str, Any]) -> str | None:
    """Final-round accuracy and loss per site as bars; None if no site was evaluated."""
    rounds = list(summary.get("rounds") or [])
    if not rounds:
        return None
    last = rounds[-1]["sites"]
    sites = [s for s in summary.get("sites") or [] if last.get(s, {}).get("accuracy") is not None]
    if not sites:
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(7.2, 3.2))
    acc = [float(last[s]["accuracy"]) for s in sites]
    loss = [float(last[s]["loss"]) if last[s].get("loss") is not None else 0.0 for s in sites]
    ax1.bar(sites, acc, color="tab:blue")
    ax1.set_ylim(0, 1)
    ax1.set_title("holdout accuracy (final round)")
    ax2.bar(sites, loss, color="tab:orange")
    ax2.set_title("holdout loss (final round)")
    for ax in (ax1, ax2):
        ax.tick_params(axis="x", labelrotation=20, labelsize=8)
        ax.grid(alpha=0.3, axis="y")
    return _to_data_uri(fig)


def residual_plot(final: Mapping[str, Any]) -> str | None:
    """Residual histogram of the final global model over all site holdouts (regression):
    bars of the summed revealed counts per residual bin; None without a histogram."""
    hist = final.get("residual_histogram") or {}
    edges, counts = list(hist.get("edges") or []), list(hist.get("counts") or [])
    if not edges or not any(counts):
        return None
    labels = [f"< {edges[0]:g}"]
    labels += [f"{a:g} … {b:g}" for a, b in itertools.pairwise(edges)]
    labels += [f"> {edges[-1]:g}"]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.bar(range(len(counts)), counts, color="#4c72b0")
    ax.set_xticks(range(len(counts)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_xlabel("residual (prediction − truth, target unit)")
    ax.set_ylabel("holdout rows (revealed)")
    ax.set_title("Residuals of the final global model")
    return _to_data_uri(fig)


def membership_plot(summary: Mapping[str, Any]) -> str | None:
    """Membership-inference advantage per round per site (solid) beside the bound its (ε, δ)
    allowed that round (dashed, same colour); a point above its bound is ringed in red.
    None when no site reported an audit."""
    rounds = list(summary.get("rounds") or [])
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    drawn = False
    for i, site in enumerate(summary.get("sites") or []):
        color = colors[i % len(colors)]
        audited = [r for r in rounds if site in (r.get("membership") or {})]
        points = [(int(r["round"]), r["membership"][site]) for r in audited]
        adv = [(x, m["advantage"]) for x, m in points if m.get("advantage") is not None]
        bound = [(x, m["bound"]) for x, m in points if m.get("bound") is not None]
        if adv:
            ax.plot(*zip(*adv, strict=True), "o-", color=color, label=f"{site} advantage")
            drawn = True
        if bound:
            ax.plot(*zip(*bound, strict=True), "--", color=color, alpha=0.8, label=f"{site} bound")
        above = [(x, m["advantage"]) for x, m in points if m.get("above_bound")]
        if above:
            ax.plot(*zip(*above, strict=True), "o", markersize=11, markerfacecolor="none",
                    markeredgecolor="red", markeredgewidth=2)  # fmt: skip
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("round")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("advantage (max TPR − FPR)")
    ax.set_ylim(0, 1.05)
    ax.set_title("Membership inference: advantage vs (e^ε − 1 + 2δ)/(e^ε + 1)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    return _to_data_uri(fig)
