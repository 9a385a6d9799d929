"""`dronecast --help`: what each command does, and every setting it reads, from Settings."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from shared.settings import Settings
from tests.fixtures.servers import REPO


def help_of(*command: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", *command, "--help"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return result.stdout


def test_every_setting_has_a_description() -> None:
    assert [name for name, field in Settings.model_fields.items() if not field.description] == []


@pytest.mark.parametrize("command", [(), ("dev",), ("api",), ("gateway",), ("worker",)])
def test_help_lists_every_setting_with_its_default_and_meaning(command: tuple[str, ...]) -> None:
    text = help_of(*command)
    for name, field in Settings.model_fields.items():
        assert f"  {name.upper()} = " in text, name
        assert (field.description or "").split()[0] in text
    assert "  TASK_DEFAULT_DEADLINE_SECONDS = 3600.0" in text
    assert re.search(r"seed \d|seed format", text, re.IGNORECASE) is None  # no team jargon


def test_simulate_help_says_how_to_drive_a_fleet() -> None:
    text = help_of("simulate")
    for option in ("--api", "--drones", "--duration", "--seed", "--token"):
        assert option in text
