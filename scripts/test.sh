#!/usr/bin/env bash
# Set up, then run the whole test suite (unit, scenario, real-speech, browser and live-capture tests).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest -q "$@"
