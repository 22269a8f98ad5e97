"""The `fedpipe` console script keeps the command's exit code, also on the path that skips
interpreter teardown after TensorFlow Federated was loaded."""

import subprocess
import sys

import pytest

from tests.support.paths import REPO

SCRIPT = (
    "import sys, types\n"
    "if sys.argv[1] == 'tff':\n"
    "    sys.modules['tensorflow_federated'] = types.ModuleType('tensorflow_federated')\n"
    "sys.argv = ['fedpipe', *sys.argv[2:]]\n"
    "from pipelines.cli import console_main\n"
    "console_main()\n"
    "print('not reached')\n"
)


@pytest.mark.parametrize("tff", ["tff", "plain"])
@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["check", "--sites", "sites", "--policies", "policies"], 0),
        (
            [
                "compile",
                "--sites",
                "sites",
                "--policies",
                "policies",
                "--out",
                "x",
                "--rounds",
                "0",
            ],
            2,
        ),
    ],
)
def test_exit_code_survives(tff, args, code):
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, tff, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == code, done.stderr[-2000:]
    assert "not reached" not in done.stdout
    if code == 2:
        assert "--rounds must be at least 1" in done.stderr  # flushed before os._exit
