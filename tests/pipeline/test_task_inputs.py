"""Inline input sizes per task vs Linux's 128 KiB single-argument limit (pure)."""

import json

from pipelines.benchmarks.federations import generated_federation
from pipelines.compiler import compile_federation
from pipelines.task_inputs import (
    ARG_LIMIT_BYTES,
    OUTPUT_PARAMETER_GUESS,
    inline_input_bytes,
    over_limit,
    oversized_tasks,
)


def _spec(big: int) -> dict:
    return {
        "root": {
            "inputDefinitions": {"parameters": {"cfg": {"defaultValue": "x" * big}}},
            "dag": {
                "tasks": {
                    "a": {"inputs": {"parameters": {"n": {"runtimeValue": {"constant": 3}}}}},
                    "b": {
                        "inputs": {
                            "parameters": {
                                "c": {"componentInputParameter": "cfg"},
                                "p": {"taskOutputParameter": {"producerTask": "a"}},
                            }
                        }
                    },
                    "c": {},
                }
            },
        }
    }


def test_sizes_count_constants_defaults_and_a_guess_for_outputs():
    sizes = inline_input_bytes(_spec(10))
    assert sizes["a"] == len('{"n": 3}')
    assert sizes["b"] == len(json.dumps({"c": "x" * 10})) + OUTPUT_PARAMETER_GUESS
    assert sizes["c"] == len("{}")


def test_a_default_past_the_limit_is_flagged():
    assert oversized_tasks(_spec(10)) == {}
    flagged = oversized_tasks(_spec(ARG_LIMIT_BYTES))
    assert list(flagged) == ["b"] and flagged["b"] > ARG_LIMIT_BYTES


def test_the_aggregate_outgrows_one_argument_between_100_and_300_sites():
    fits = compile_federation(generated_federation(100), rounds=1).inline_inputs
    assert over_limit(fits) == {}
    sizes = compile_federation(generated_federation(300), rounds=1).inline_inputs
    # the fan-in tasks carry every site's spec (config_sites); site tasks stay small
    assert set(over_limit(sizes)) == {"aggregate-r1", "report"}
    assert max(n for t, n in sizes.items() if t.startswith(("train-", "validate-"))) < 16 * 1024
