#!/usr/bin/env bash
# Runs a command (cargo test), passes its output through, and ends with one line that sums every
# `test result:` line: "tests: N passed, M failed". Exits with the command's status.
set -uo pipefail
"$@" 2>&1 | tee /dev/stderr | awk '
  /^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
  END { printf "tests: %d passed, %d failed\n", p, f }' >&2
exit "${PIPESTATUS[0]}"
