"""`aggregate` executor entry point; the implementation lives in `components.aggregation`."""

from components.aggregation.executor import run

__all__ = ["run"]
