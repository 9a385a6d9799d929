"""The third-party browser assets are exactly what the pinned npm packages give: the committed
copy under static/vendor is what `make vendor` produces from package-lock.json."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from services.api.web.endpoints import STATIC_DIR

VENDOR_PROJECT = Path(__file__).resolve().parents[4] / "services/api/web/vendor"
COMMITTED = STATIC_DIR / "vendor"


def manifest(directory: Path) -> dict[str, dict[str, object]]:
    packages: dict[str, dict[str, object]] = json.loads((directory / "MANIFEST.json").read_text())[
        "packages"
    ]
    return packages


def test_the_manifest_matches_the_files_and_the_lock() -> None:
    lock = json.loads((VENDOR_PROJECT / "package-lock.json").read_text())["packages"]
    wanted = json.loads((VENDOR_PROJECT / "package.json").read_text())["dependencies"]
    packages = manifest(COMMITTED)
    assert set(packages) == set(wanted)
    listed: set[Path] = set()
    for name, entry in packages.items():
        assert entry["version"] == lock[f"node_modules/{name}"]["version"] == wanted[name]
        files = entry["files"]
        assert isinstance(files, dict)
        for relative, digest in files.items():
            path = COMMITTED / relative
            assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, relative
            listed.add(path)
    on_disk = {path for path in COMMITTED.rglob("*") if path.is_file()}
    assert on_disk - listed == {COMMITTED / "MANIFEST.json"}, "files no package accounts for"


def test_make_vendor_reproduces_the_committed_copy(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None or not (VENDOR_PROJECT / "node_modules").is_dir():
        pytest.fail("run `make test-deps`: it installs Node and the pinned packages")
    subprocess.run(
        [node, str(VENDOR_PROJECT / "vendor.mjs"), str(tmp_path)], check=True, capture_output=True
    )
    produced = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    committed = {
        p.relative_to(COMMITTED): p.read_bytes() for p in COMMITTED.rglob("*") if p.is_file()
    }
    assert produced.keys() == committed.keys()
    different = [str(path) for path in produced if produced[path] != committed[path]]
    assert not different, f"out of date (run `make vendor`): {different}"


def test_no_vendored_file_reaches_for_a_cdn() -> None:
    cdns = (
        "unpkg.com",
        "cdn.jsdelivr.net",
        "cdnjs.cloudflare.com",
        "fonts.googleapis.com",
        "cdn.redoc.ly",
    )
    for path in COMMITTED.rglob("*"):
        if path.suffix in (".js", ".css", ".html"):
            text = path.read_text(errors="replace")
            assert not [cdn for cdn in cdns if cdn in text], path
