#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite (GPU-labelled tests skip themselves without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
cd build
ctest -j "$(nproc)" --output-on-failure --timeout 900
