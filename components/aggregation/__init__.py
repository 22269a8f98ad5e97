"""The `aggregate` stage (coordinator, fan-in): verify the sites' updates, combine, publish.

Entry points: `component.py` (the generated fan-in component), `executor.run` (one round:
verify → quorum → rule + server optimizer → publish), and the pure core `aggregate`
(`rules.aggregate`: a robust rule over the updates' deltas). Rules: `RULES.md`.
"""

from components.aggregation.rules import aggregate

__all__ = ["aggregate"]
