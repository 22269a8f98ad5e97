"""Keep kfp 2.13's pipeline construction near-linear in the number of tasks.

kfp's `build_spec_by_group` re-sanitizes the name of every task of the DAG for every task
(`tasks_in_current_dag`), about 160,000 regex passes for 400 tasks. `sanitize_task_name` is a
pure function of its string, so memoizing it while a pipeline is built changes no output.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager

from kfp.dsl import utils as kfp_utils


@contextmanager
def memoized_task_names() -> Iterator[None]:
    """Within the block, `kfp.dsl.utils.sanitize_task_name` is memoized (restored after)."""
    original = kfp_utils.sanitize_task_name
    kfp_utils.sanitize_task_name = functools.lru_cache(maxsize=None)(original)
    try:
        yield
    finally:
        kfp_utils.sanitize_task_name = original
