#!/usr/bin/env bash
# Creates or refreshes .venv with the interop tools of scripts/requirements-interop.txt, and
# axe-core for the browser tests (scripts/requirements-axe.txt, without dependencies).
# Idempotent: does nothing when the requirements have not changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."
req=scripts/requirements-interop.txt
axe=scripts/requirements-axe.txt
stamp=.venv/.requirements.sha256
want=$(cat "$req" "$axe" | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r "$req"
.venv/bin/pip install --quiet --disable-pip-version-check --no-deps -r "$axe"
echo "$want" > "$stamp"
echo "pyenv.sh: interop tools installed in .venv"
