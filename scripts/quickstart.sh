#!/usr/bin/env bash
# Sets up, builds and runs the main job on its embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
build/nemotron pretrain tiny
