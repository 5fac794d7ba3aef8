#!/usr/bin/env bash
# Set up, then run calmline's main job: monitor the live call from the devices in config.toml
# ([devices]); with no audio device configured or present, replay the bundled demo call in real time
# through the same live path. Either way, open the overlay address it prints.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
if .venv/bin/calmline live --check >/dev/null 2>&1; then
  exec .venv/bin/calmline live "$@"
fi
echo "calmline: no audio devices configured in config.toml [devices]; replaying the bundled demo call" >&2
exec .venv/bin/calmline demo --linger 30 "$@"
