#!/usr/bin/env bash
# Install the test dependencies (pip, at the pinned versions of scripts/test-constraints.txt,
# Debian's chromium for the page tests, Debian's haproxy, which tests/live/test_haproxy.py
# starts in front of two nodes, and Debian's nginx-light, the HTTP cache the HLS load test
# starts in front of one), type-check the packages (mypy, configured in
# pyproject.toml: a type error fails the run) and run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1 || ! PATH="$PATH:/usr/sbin" command -v haproxy >/dev/null 2>&1 \
    || ! PATH="$PATH:/usr/sbin" command -v nginx >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium fonts-dejavu-core \
    haproxy nginx-light >/dev/null
fi
# The versions the suite last passed with, so a fresh machine tests the same code.
python -m pip install --quiet -c scripts/test-constraints.txt -e '.[test,loadtest]'
python -m mypy
exec python -m pytest "$@"
