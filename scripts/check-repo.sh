#!/usr/bin/env bash
# Fails when the repository holds something that only works on one machine: a tracked symlink whose
# target is absolute or leaves the repository (a committed `target -> ~/.cache/...` once broke
# `make dev` for every new user while CI, which sets CARGO_TARGET_DIR, stayed green).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
root="$(pwd -P)"
bad=0
while IFS= read -r -d '' entry; do
  mode="${entry%% *}"
  path="${entry#*$'\t'}"
  [ "$mode" = "120000" ] || continue
  target="$(git cat-file -p "$(git rev-parse ":$path")")"
  resolved="$(cd "$(dirname "$path")" && realpath -m -- "$target")"
  case "$target" in
    /*) echo "check-repo: $path is a symlink to an absolute path ($target)" >&2; bad=1; continue ;;
  esac
  case "$resolved/" in
    "$root"/*) ;;
    *) echo "check-repo: $path is a symlink that leaves the repository ($target)" >&2; bad=1 ;;
  esac
done < <(git ls-files -s -z)
exit "$bad"
