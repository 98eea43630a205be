#!/usr/bin/env bash
# Installs the browser tests/test_browser.py drives: Debian's Chromium (/usr/bin/chromium).
# Playwright's Python package comes with the test extra (make install); its own browser download
# (`playwright install`) is never used: the test launches the system Chromium.
# Usage: .ci/install-browser.sh   (run as root or with sudo)
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if ! command -v chromium >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core
fi
chromium --version
