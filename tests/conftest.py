import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
REAL = SHARED / "data" / "real"
sys.path.insert(0, str(Path(__file__).parent))
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium driven by Playwright (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not REAL.is_dir():
        pytest.fail(f"real-speech data not found at {REAL} (../shared must sit beside the repository)")
    return REAL


def of_type(events, kind):
    return [e for e in events if e.type == kind]


def calmline(*args, env=None, **kw) -> subprocess.CompletedProcess:
    """Run the `calmline` command as a user would, in a subprocess; arguments may be paths."""
    return subprocess.run([sys.executable, "-m", "monitor.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, env={**os.environ, **(env or {})}, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session", autouse=True)
def private_data_dir(tmp_path_factory):
    """Calls recorded by tests (every analyze records by default) go to a temporary data directory."""
    os.environ["CALMLINE_DATA_DIR"] = str(tmp_path_factory.mktemp("calmline-data"))
