#!/usr/bin/env bash
# Installs cargo-lambda and zig (PyPI) into a cache folder, and the arm64 Rust target, for
# `make lambda` (cargo lambda build --release --arm64).
set -euo pipefail
tools="${RELAYCHAT_CACHE:-$HOME/.cache/relaychat}/lambda-tools"
if [ ! -x "$tools/bin/cargo-lambda" ]; then
  python3 -m venv "$tools"
  "$tools/bin/pip" install --quiet --disable-pip-version-check cargo-lambda ziglang
fi
rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu
