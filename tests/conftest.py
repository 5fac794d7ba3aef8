import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
REAL = SHARED / "data" / "real"
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not REAL.is_dir():
        pytest.fail(f"real-speech data not found at {REAL} (../shared must sit beside the repository)")
    return REAL


def of_type(events, kind):
    return [e for e in events if e.type == kind]
