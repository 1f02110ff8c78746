#!/usr/bin/env bash
# Install Debian's chromium for the portal's browser tests (driven by Playwright for Python with
# executable_path=/usr/bin/chromium; `playwright install` is never run). Idempotent and quiet.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if ! command -v chromium >/dev/null 2>&1; then
  echo "chromium: installing Debian's chromium" >&2
  $SUDO apt-get install -y -qq chromium >/dev/null 2>&1 || {
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null; }
fi
command -v chromium >/dev/null 2>&1 || { echo "chromium: not installed" >&2; exit 1; }
