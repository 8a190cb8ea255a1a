#!/usr/bin/env bash
# Install what the tests need into .venv (CPU torch 2.13.0, the Debian data packages) and run the tests.
# Usage: scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."

debian_packages=(fonts-noto-color-emoji unicode-data unicode-cldr-core)
missing=()
for package in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing Debian packages: ${missing[*]}"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >/dev/null
  else
    echo "The dataset tests need the Debian packages ${missing[*]}: run 'sudo apt-get install ${missing[*]}'." >&2
    exit 1
  fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints/ci.txt -e '.[test]'
export QT_QPA_PLATFORM=offscreen HF_HUB_OFFLINE=1
.venv/bin/python -m pytest -q "$@"
