#!/usr/bin/env bash
# Set up, then run calmline's main job: replay the bundled demo call in real time to the overlay
# (printed address), as a live call would run. With audio devices: .venv/bin/calmline live --help.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec .venv/bin/calmline demo --linger 30 "$@"
