#!/usr/bin/env bash
# Installs what the browser tests drive, from Debian's packages, when it is missing:
# Chromium and its WebDriver. Without them the browser tests fail, saying what to install.
set -euo pipefail

need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
[ ${#need[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "browser tests: install ${need[*]} (Debian packages); apt-get is not available here" >&2
  exit 0
fi
sudo=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
  else
    echo "browser tests: install ${need[*]} (Debian packages); not root and no sudo" >&2
    exit 0
  fi
fi
echo "browser tests: installing ${need[*]}" >&2
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
