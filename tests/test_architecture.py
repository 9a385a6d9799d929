"""The import rules in `.importlinter` hold, and they catch whoever breaks them.

`lint-imports` runs in `make lint` too; here it also runs against a copy of the tree with one
forbidden import added, to show that each rule really fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def copy_of_tree(tmp_path: Path) -> Path:
    for package in ("shared", "services"):
        shutil.copytree(
            ROOT / package,
            tmp_path / package,
            ignore=shutil.ignore_patterns("__pycache__", "node_modules"),
        )
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    return tmp_path


def test_the_tree_keeps_every_import_rule() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "added_import", "broken_rule"),
    [
        (
            "services/gateway/server.py",
            "import services.api.main",
            "never import each other",
        ),
        ("services/worker/routing.py", "import services.gateway.hub", "never import each other"),
        ("shared/events.py", "import services.api.deps", "never imports services"),
        ("shared/nudges.py", "import shared.alerts.service", "No import cycles"),
        (
            "services/api/devices/connection.py",
            "import services.api.devices.hub",
            "inside a service",
        ),
    ],
)
def test_a_forbidden_import_breaks_its_rule(
    tmp_path: Path, module: str, added_import: str, broken_rule: str
) -> None:
    tree = copy_of_tree(tmp_path)
    with (tree / module).open("a") as source:
        source.write(f"\n{added_import}  # added by the test\n")
    result = lint_imports(tree)
    assert result.returncode != 0, result.stdout
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert broken_rule in broken, result.stdout
