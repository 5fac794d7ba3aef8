#!/usr/bin/env bash
# Set up, then run calmline's main job on the bundled demo call.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec .venv/bin/calmline analyze "${@:-monitor/samples/demo_call.flac}"
