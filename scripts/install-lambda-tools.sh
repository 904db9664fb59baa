#!/usr/bin/env bash
# Installs cargo-lambda (PyPI) into a cache folder; for `make lambda` (cargo lambda build --release
# --arm64) also zig and the arm64 Rust target. `--watch-only`: cargo-lambda alone, for
# `cargo lambda watch` / `invoke` against `make dev` and the test that runs them.
set -euo pipefail
tools="${RELAYCHAT_CACHE:-$HOME/.cache/relaychat}/lambda-tools"
if [ ! -x "$tools/bin/cargo-lambda" ]; then
  python3 -m venv "$tools"
  "$tools/bin/pip" install --quiet --disable-pip-version-check cargo-lambda
fi
[ "${1:-}" = "--watch-only" ] && exit 0
[ -x "$tools/bin/python-zig" ] || "$tools/bin/pip" install --quiet --disable-pip-version-check ziglang
rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu
