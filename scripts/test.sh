#!/usr/bin/env bash
# The project's test command: the whole workspace, on SQLite and (when a server can be had) on
# PostgreSQL. Starts the local PostgreSQL cluster if it is installed but down.
set -euo pipefail
cd "$(dirname "$0")/.."

pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
if command -v pg_isready >/dev/null 2>&1; then
  if ! pg_up && [ -d /etc/postgresql ] && command -v pg_ctlcluster >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
  fi
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  if pg_up; then
    export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
  fi
fi
if [ -n "${DATABASE_URL:-}" ]; then
  echo "test.sh: storage suite runs on SQLite and on PostgreSQL (${DATABASE_URL})"
else
  echo "test.sh: no PostgreSQL reachable; storage suite runs on SQLite only"
fi

# Interop tools the project did not write (case_validate, stix2-validator, taxii2-client,
# medallion) live in .venv; tests that use them fail rather than skip when
# ENTENTE_INTEROP=required.
bash scripts/pyenv.sh
# Browser tests (the HTML reports with their charts; the web interface through chromedriver,
# with axe-core from .venv) use Debian's Chromium and its driver.
if ! { command -v chromium && command -v chromedriver; } >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  echo "test.sh: installing Debian's chromium for the browser tests"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null; }
fi
export ENTENTE_BROWSER=required
export PATH="$PWD/.venv/bin:$PATH"
export ENTENTE_INTEROP=required

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked "$@" 2>&1 | tee "$log" || status=$?
# One closing line for the whole run (cargo prints one per test binary, the last being doc-tests).
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, i }' "$log"
exit "$status"
