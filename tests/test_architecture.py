"""The architecture as written in pyproject.toml's import-linter contracts, checked on every test run.

The core (``model``) never imports the adapters (``stream``), each package is
layered, and no two modules of a package import each other in a cycle. Every
module has a place in its package's layers, so a new one must be put there.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "broken" not in result.stdout.split("Contracts:")[-1].replace("0 broken", "")


def test_every_module_has_a_layer():
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    for contract in (c for c in contracts if c["type"] == "layers"):
        (container,) = contract["containers"]
        placed = {name.strip() for layer in contract["layers"] for name in layer.split("|")}
        modules = {p.stem for p in (ROOT / container).glob("*.py") if p.stem != "__init__"}
        modules |= {p.name for p in (ROOT / container).iterdir() if (p / "__init__.py").is_file()}
        assert modules <= placed, f"{container}: give {sorted(modules - placed)} a layer in pyproject.toml"
