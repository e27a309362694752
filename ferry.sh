#!/usr/bin/env bash
# Sets Ferry up on a Debian/Ubuntu machine and runs it:
#   ./ferry.sh run  [ferry options]    set up, then start the app
#   ./ferry.sh test [pytest options]   set up, then run the whole test suite
# It installs what it needs itself: Debian packages when run as root (otherwise it prints
# the exact apt-get line), a virtual environment in .venv, and the Python packages.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"

action="${1:-run}"
[ $# -gt 0 ] && shift

# Debian packages each action needs: the Qt WebEngine window's runtime libraries for `run`;
# for `test` also Xvfb and Chromium (browser and window tests) and nginx (deployment tests).
# (Checked against `ldd` of Qt's libraries, its xcb plugin and QtWebEngineProcess: what these
# packages do not pull in themselves is listed.)
RUN_DEBS=(python3-venv libgl1 libegl1 libxkbcommon0 libxkbcommon-x11-0 libnss3 libxcomposite1 libxdamage1
          libxrandr2 libxtst6 libxkbfile1 libasound2 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1
          libxcb-shape0 libxcb-render-util0 libxcb-image0 libfontconfig1 libdbus-1-3 libglib2.0-0
          libgssapi-krb5-2)
# The window tests run the app under Xvfb; the UI tests drive Debian's Chromium through
# Playwright; the deployment tests use nginx, systemd-analyze, docker-compose (`config` parses
# the compose file; no engine is installed or needed), pg_dump/pg_restore (backup) and
# openssl (a throwaway certificate).
TEST_DEBS=("${RUN_DEBS[@]}" xvfb chromium nginx systemd postgresql-client openssl docker-compose)

case "$action" in
  run) debs=("${RUN_DEBS[@]}") ;;
  test) debs=("${TEST_DEBS[@]}") ;;
  *) echo "usage: ./ferry.sh run|test [options]" >&2; exit 64 ;;
esac

python=""
for candidate in python3.13 python3.12 python3.11 python3; do
  if command -v "$candidate" >/dev/null 2>&1 &&
     "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
    python="$candidate"; break
  fi
done
if [ -z "$python" ]; then
  echo "Ferry needs Python 3.11 or newer: apt-get install -y python3 python3-venv" >&2
  exit 1
fi

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for pkg in "${debs[@]}"; do
    # python3-venv matters only where this Python cannot make a virtual environment.
    if [ "$pkg" = python3-venv ]; then
      "$python" -c 'import ensurepip, venv' 2>/dev/null && continue
    fi
    # Newer releases renamed some libraries with a "t64" suffix (libasound2t64, libglib2.0-0t64).
    # (dpkg-query fails when either name is unknown: read its output, not its status.)
    status="$(dpkg-query -W -f='${Status}\n' "$pkg" "${pkg}t64" 2>/dev/null || true)"
    grep -q "ok installed" <<<"$status" || missing+=("$pkg")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "ferry.sh: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "ferry.sh: these Debian packages are missing; install them, then run this again:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=".venv/.ferry-setup-stamp"
want="$(cat pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e ".[test]"
  echo "$want" > "$stamp"
fi

case "$action" in
  run) exec .venv/bin/ferry "$@" ;;
  test) exec .venv/bin/python -m pytest "$@" ;;
esac
