"""The command line's output is a contract with the scripts that read it: on the test warehouse (2,000 members,
seed 7) each of these commands prints exactly what it printed when its file in ``tests/golden/`` was written.
A change that alters a figure, a column or its order must update the file on purpose (and say why).

The commands run in this process (``analytics.cli.main``, what ``python -m analytics`` calls), to spare a
Python start per command; ``tests/test_cli.py`` runs the real processes."""

from __future__ import annotations

import json

import pytest

from analytics.cli import main
from tests.conftest import PROJECT_ROOT

GOLDEN = PROJECT_ROOT / "tests" / "golden"
COMMANDS: dict[str, list[str]] = json.loads((GOLDEN / "commands.json").read_text())


@pytest.mark.parametrize("name", COMMANDS)
def test_cli_output_is_byte_identical(duck_warehouse, name: str, capfd, monkeypatch) -> None:
    monkeypatch.chdir(PROJECT_ROOT)  # the audience spec is named relative to the project
    status = main([*COMMANDS[name], "--url", duck_warehouse.url])
    out, err = capfd.readouterr()
    assert status == 0, err
    assert out == (GOLDEN / f"{name}.out").read_text(), f"python -m analytics {' '.join(COMMANDS[name])}"
