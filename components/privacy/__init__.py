"""A site's privacy budget: DP-SGD accounting (pure), the ledger's rules (pure) and its store.

`accounting` turns DP-SGD settings into epsilon (RDP enforced, PLD reported); `ledger` holds
the entries and the budget checks; `ledger_store` keeps one create-only object per charged
attempt in the site's own bucket. Used by `validate` (pre-flight), `train` (charge before
training) and the local runner's summary.
"""
