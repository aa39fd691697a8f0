#!/usr/bin/env bash
# Install Debian's chromium for the browser checks when it is missing; do nothing when it is there.
# Uses apt-get as root, or through sudo. Never downloads a browser of its own.
set -euo pipefail
chromium="${NULLSPACE_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$chromium" ]; then
  exit 0
fi
if [ -n "${NULLSPACE_CHROMIUM:-}" ]; then
  echo "NULLSPACE_CHROMIUM=$chromium is not an executable file." >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  sudo=""
elif command -v sudo >/dev/null 2>&1; then
  sudo="sudo"
else
  echo "Chromium is missing at $chromium and this user cannot install it: run" \
       "'apt-get install -y chromium' as root, then 'make test' again." >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "Chromium is missing at $chromium and there is no apt-get here: install Chromium with" \
       "your system's package manager and set NULLSPACE_CHROMIUM to its path." >&2
  exit 1
fi
echo "Installing Debian's chromium for the browser checks (apt-get) ..."
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
test -x "$chromium"
