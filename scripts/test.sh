#!/usr/bin/env bash
# Set up .venv (pinned) and run the whole test suite: the fast tier and the slow tier (tests marked
# `slow`) in one pytest run. Plain `pytest` runs only the fast tier (pyproject.toml addopts).
# Extra arguments go to pytest after ours, so a later `-m` replaces ours: `bash scripts/test.sh -m "not slow"`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -m "slow or not slow" "$@"
