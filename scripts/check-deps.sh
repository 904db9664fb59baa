#!/usr/bin/env bash
# Fails on a dependency that a crate declares but never uses (cargo-machete, installed once into
# the cache).
set -euo pipefail
CACHE="${RELAYCHAT_CACHE:-$HOME/.cache/relaychat}"
MACHETE_VERSION=0.9.2
bin="$CACHE/machete-$MACHETE_VERSION/bin/cargo-machete"
if [ ! -x "$bin" ]; then
  cargo install cargo-machete --version "$MACHETE_VERSION" --locked --root "$CACHE/machete-$MACHETE_VERSION" --quiet
fi
cd "$(dirname "$0")/.."
"$bin"
