#!/usr/bin/env bash
# One command from a fresh clone: install the system services the tests use when they are missing
# (Debian's redis-server, headless Chromium and its chromedriver), create .venv, install the engine
# with its test tools, and run the main job (a verified call of combine_papay.mini_program) on the
# embedded sandbox. No network beyond the package indexes, no WeChat Pay credentials.
set -euo pipefail
cd "$(dirname "$0")"
# The Redis store's tests start their own redis-server; the inspector's test drives the system's
# Chromium through chromedriver (no browser download). Each is installed only when missing.
if ! command -v redis-server >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1 \
  || ! command -v chromedriver >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server chromium chromium-driver >/dev/null
fi
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
.venv/bin/wechatpay call combine_papay.mini_program --data @examples/combine_papay.json --sandbox
