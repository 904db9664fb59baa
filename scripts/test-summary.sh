#!/usr/bin/env bash
# Runs a command, passes its output through, and ends with one line summing every cargo
# `test result:` line and every plain `[word: ]N passed, M failed` line (browser test, fuzzing):
# "tests: N passed, M failed". Exits with the command's status.
set -uo pipefail
"$@" 2>&1 | awk '
  { print; fflush() }
  /^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
  /^([a-z-]+: )?[0-9]+ passed, [0-9]+ failed$/ { n = ($1 ~ /:$/) ? 1 : 0; p += $(1+n); f += $(3+n) }
  END { printf "tests: %d passed, %d failed\n", p, f }'
exit "${PIPESTATUS[0]}"
