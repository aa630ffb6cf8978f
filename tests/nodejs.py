"""Node.js for the tests: the client example and the AsyncAPI validator live in clients/node.

``npm ci`` installs exactly what clients/node/package-lock.json pins, once per
test session and only when node_modules is missing (it takes ~10 s, online);
after that everything runs offline. Install scripts are skipped: none of the
pinned packages needs one to work, and one (@scarf/scarf, pulled in by
@asyncapi/parser) only reports installs home.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).resolve().parents[1] / "clients" / "node"


def require_node() -> Path:
    """clients/node with its node_modules installed; skips the test only if node or npm is missing."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not on PATH: install Node.js >= 18 to run the Node client checks")
    return _installed()


@functools.cache
def _installed() -> Path:
    if not (NODE_DIR / "node_modules" / ".package-lock.json").is_file():
        env = {**os.environ, "SCARF_ANALYTICS": "false", "npm_config_fund": "false", "npm_config_audit": "false"}
        done = subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=NODE_DIR, env=env,
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"npm ci failed in {NODE_DIR}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return NODE_DIR
