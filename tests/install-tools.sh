#!/usr/bin/env bash
# Installs what the browser and proxy tests drive, from Debian's packages, when it is
# missing: Chromium and its WebDriver, nginx and Caddy. Without them those tests fail, saying
# what to install.
set -euo pipefail

need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
[ -x /usr/sbin/nginx ] || need+=(nginx)
[ -x /usr/bin/caddy ] || need+=(caddy)
[ ${#need[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "test tools: install ${need[*]} (Debian packages); apt-get is not available here" >&2
  exit 0
fi
sudo=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
  else
    echo "test tools: install ${need[*]} (Debian packages); not root and no sudo" >&2
    exit 0
  fi
fi
echo "test tools: installing ${need[*]}" >&2
"${sudo[@]}" apt-get update -qq
# A package's service is not started: the tests run their own nginx.
policy=/usr/sbin/policy-rc.d
added_policy=0
if [ ! -e "$policy" ] && [ "$(id -u)" = 0 ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && added_policy=1
  trap 'rm -f "$policy"' EXIT
fi
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
exit 0
