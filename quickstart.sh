#!/usr/bin/env bash
# One command from a fresh clone: create .venv, install the engine with its test tools, and run the
# main job (a verified call of combine_papay.mini_program) on the embedded sandbox. No network
# beyond the package indexes (PyPI; Debian's for Chromium when it is missing), no WeChat Pay credentials.
set -euo pipefail
cd "$(dirname "$0")"
# The sandbox inspector's test drives the system's headless Chromium through its chromedriver
# (Debian packages; no browser download). Installed only when missing.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
fi
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
.venv/bin/wechatpay call combine_papay.mini_program --data @examples/combine_papay.json --sandbox
