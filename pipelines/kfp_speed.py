"""Keep kfp 2.13's pipeline construction fast for hundreds of tasks (no output changes).

* kfp's `build_spec_by_group` re-sanitizes the name of every task of the DAG for every task
  (`tasks_in_current_dag`), about 160,000 regex passes for 400 tasks. `sanitize_task_name` is
  a pure function of its string, so it is memoized while a pipeline is built.
* Building allocates millions of small objects and the cyclic garbage collector rescans them
  again and again (measured: 300 sites 9.8 s with, 6.4 s without); `gc_paused` turns it off
  for the duration of one compile (reference counting still frees everything acyclic).
"""

from __future__ import annotations

import functools
import gc
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


@contextmanager
def gc_paused() -> Iterator[None]:
    """Within the block the cyclic garbage collector is off (restored after, if it was on)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
