#!/usr/bin/env bash
# Installs the Debian packages the build needs (idempotent: does nothing when all are present).
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config
  libfmt-dev          # formatting (shared lib; the GPU machine has the same soname)
  libopenblas-dev     # CPU matmul reference (shared lib; same soname on the GPU machine)
  libgtest-dev        # unit tests
  libyaml-dev         # --config-file YAML (linked statically)
  libpcre2-dev        # tokenizer regexes with lookahead and \p{..} (linked statically)
  libutf8proc-dev     # tokenizer Unicode normalization NFC/NFKC (linked statically)
  libopenmpi-dev openmpi-bin  # multi-process runs on CPUs
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
