#!/usr/bin/env bash
# Install the test dependencies (pip; and apt for anything the tests need) and run the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet -e '.[test]'
exec python -m pytest "$@"
