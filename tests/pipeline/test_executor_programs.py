"""Executors import (or regenerate) their function in the image instead of embedding source.

Each executor's component program is run as the KFP launcher would, in a fresh interpreter
with `_KFP_RUNTIME=true` (kfp's compile-time API absent), and must define the function the
executor calls with the same parameters as the declared component.
"""

import inspect
import json
import os
import subprocess
import sys

import pytest

from components.aggregation import component as aggregate_component
from components.common.module_component import LAUNCHER, import_program
from components.evaluate.component import evaluate
from components.export.component import export
from components.initialize import component as initialize_component
from components.report import component as report_component
from components.train.component import train
from components.validate.component import validate

SITES = ["site-a", "site-b"]


def _components():
    return {
        "initialize": initialize_component.build(SITES),
        "validate": validate,
        "train": train,
        "export": export,
        "evaluate": evaluate,
        "aggregate": aggregate_component.build(SITES),
        "report": report_component.build(SITES, 2),
    }


def _program(component) -> str:
    command = component.component_spec.implementation.container.command
    assert command[:3] == ["sh", "-ec", LAUNCHER]
    return command[3]


def test_site_stage_programs_are_one_import_line():
    for name in ("validate", "train", "export", "evaluate"):
        program = _program(_components()[name])
        assert program == f"from components.{name}.entry import {name}\n"


def test_fanin_programs_name_the_sites_not_the_source():
    components = _components()
    assert 'function(["site-a", "site-b"])' in _program(components["aggregate"])
    assert 'function(["site-a", "site-b"])' in _program(components["initialize"])
    assert 'function(["site-a", "site-b"], 2)' in _program(components["report"])
    assert len(_program(components["report"])) < 200


def test_programs_run_under_the_kfp_runtime_and_match_the_declared_signature():
    components = _components()
    script = (
        "import inspect, json, sys\n"
        "out = {}\n"
        "for name, program in json.loads(sys.argv[1]).items():\n"
        "    space = {}\n"
        "    exec(program, space)\n"
        "    out[name] = list(inspect.signature(space[name]).parameters)\n"
        "print(json.dumps(out))\n"
    )
    programs = {name: _program(c) for name, c in components.items()}
    env = {**os.environ, "_KFP_RUNTIME": "true"}
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(programs)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    params = json.loads(done.stdout)
    for name, component in components.items():
        declared = list(inspect.signature(component.python_func).parameters)
        assert params[name] == declared, name


def test_import_program_refuses_nested_functions():
    def local_function():
        pass

    with pytest.raises(ValueError, match="top-level function"):
        import_program(local_function)
