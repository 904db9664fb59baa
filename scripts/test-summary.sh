#!/usr/bin/env bash
# Runs a command, passes its output through, and ends with one line summing every cargo
# `test result:` line and every plain `N passed, M failed` line (the browser test's):
# "tests: N passed, M failed". Exits with the command's status.
set -uo pipefail
"$@" 2>&1 | awk '
  { print; fflush() }
  /^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
  /^[0-9]+ passed, [0-9]+ failed$/ { p += $1; f += $3 }
  END { printf "tests: %d passed, %d failed\n", p, f }'
exit "${PIPESTATUS[0]}"
