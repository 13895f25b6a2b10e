#!/usr/bin/env bash
# Install ovseg with its test dependencies into ./.venv and run the test suite.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -m "not slow"`, the quick loop, or `-k render`).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test,ray]'
# gsplat's pure-torch projection is the independent reference for ours; its sdist imports torch
# at build time, so it builds without isolation, and BUILD_NO_CUDA skips its CUDA kernels.
BUILD_NO_CUDA=1 .venv/bin/python -m pip install -q --no-build-isolation gsplat==1.5.3
# SAM 2 is on PyPI only as an sdist: without isolation it builds against the installed torch, and
# SAM2_BUILD_CUDA=0 skips its optional CUDA extension (ovseg replaces its one use with OpenCV).
SAM2_BUILD_CUDA=0 .venv/bin/python -m pip install -q --no-build-isolation sam2==1.1.0
# Browser tests (tests/browser) drive the viser viewer with Debian's chromium through playwright
# (never `playwright install`); without /usr/bin/chromium they skip. Install it when we can.
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null \
    && { sudo -n true 2>/dev/null || [ "$(id -u)" = 0 ]; }; then
    apt_="env DEBIAN_FRONTEND=noninteractive apt-get"; [ "$(id -u)" = 0 ] || apt_="sudo -n $apt_"
    # A fresh image may have no package lists yet: update once and retry.
    $apt_ install -y -q chromium >/dev/null 2>&1 \
        || { $apt_ update -qq >/dev/null && $apt_ install -y -q chromium >/dev/null; } \
        || echo "warning: could not install chromium; browser tests will skip" >&2
fi
# lint and format gate (configured in pyproject.toml)
.venv/bin/ruff check --quiet .
.venv/bin/ruff format --check --quiet .
export HF_HUB_OFFLINE=1
# browser tests save their screenshots here
export OVSEG_TEST_ARTIFACTS=${OVSEG_TEST_ARTIFACTS:-$PWD/test-artifacts}
exec .venv/bin/python -m pytest -q "$@"
