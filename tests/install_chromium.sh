#!/usr/bin/env bash
# Install Debian's headless-capable Chromium for the app's browser test (tests/test_app_browser.py).
# No browser download by pip or npm: only the distribution package. Safe to call repeatedly.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo -n"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
/usr/bin/chromium --version
