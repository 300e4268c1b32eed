#!/usr/bin/env bash
# One command from a fresh clone: install redis-server if missing (Debian packages), create .venv,
# install the engine with its test tools, and run the main job (a verified call of
# combine_papay.mini_program) on the embedded sandbox. No network beyond the package indexes, no
# WeChat Pay credentials.
set -euo pipefail
cd "$(dirname "$0")"
# The Redis store's tests start their own redis-server; install Debian's when there is none.
if ! command -v redis-server >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
.venv/bin/wechatpay call combine_papay.mini_program --data @examples/combine_papay.json --sandbox
