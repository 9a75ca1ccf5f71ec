#!/usr/bin/env bash
# Installs Debian's Chromium (and CJK fonts, so zh-CN pages render) for the portal's browser tests, if absent.
# Playwright's own browser download is not used: it cannot be fetched here, and Debian's build works.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && fc-list 2>/dev/null | grep -qi "noto.*cjk"; then
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y --no-install-recommends chromium fonts-noto-cjk >/dev/null 2>&1 || {
  $sudo apt-get update -qq >/dev/null 2>&1
  $sudo apt-get install -y --no-install-recommends chromium fonts-noto-cjk >/dev/null
}
command -v chromium >/dev/null
