#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (as root) for calmline: system packages, then a virtualenv in .venv.
# Idempotent and quick when nothing changed. Sourced by scripts/main.sh and scripts/test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

APT_PACKAGES=(python3 python3-venv python3-dev espeak-ng libportaudio2 libasound2-plugins libsndfile1 chromium pulseaudio pulseaudio-utils sox redis-server postgresql openssl nodejs)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
# Another package manager (unattended-upgrades on a fresh machine, say) may hold the dpkg lock: wait for it with
# a message instead of failing; apt's own Lock::Timeout covers the moment between this check and apt's start.
dpkg_busy() {
  command -v python3 >/dev/null || return 1
  python3 - <<'PY' 2>/dev/null
import fcntl, sys
for path in ("/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock", "/var/lib/apt/lists/lock"):
    try:
        with open(path, "a") as f:
            fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except FileNotFoundError:
        pass
    except OSError:
        sys.exit(0)
sys.exit(1)
PY
}
APT=(apt-get -qq -o DPkg::Lock::Timeout=1800)
if [ ${#missing[@]} -gt 0 ]; then
  if dpkg_busy; then
    echo "setup: another package manager holds the dpkg lock; waiting for it to finish..." >&2
    while dpkg_busy; do sleep 2; done
  fi
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  "${APT[@]}" update
  "${APT[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# An editable install, redone when pyproject.toml changes. setuptools explains editable installs in a warning
# box on every build; that note is about the install mode we chose, so it is filtered by its message alone.
stamp=.venv/.calmline-installed
state=$(sha1sum pyproject.toml)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$state" ]; then
  echo "setup: installing Python packages into .venv" >&2
  .venv/bin/pip install -q --upgrade pip
  PYTHONWARNINGS="ignore:Editable installation" .venv/bin/pip install -q -e ".[test]"
  echo "$state" > "$stamp"
fi
