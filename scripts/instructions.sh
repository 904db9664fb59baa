#!/usr/bin/env bash
# Instructions per record for the handlers on the in-memory ports (callgrind; the bench binary
# `instructions`: decoding, the batch driver and the rules, no I/O, one thread), against the
# baseline committed in benches/instructions.txt. Fails when a handler needs more than 25% more
# than its baseline, so a regression shows in `make test`. `--update` rewrites the baseline.
#
# INSTRUCTIONS_BIN=path skips the cargo build.
set -euo pipefail
cd "$(dirname "$0")/.."
baseline=benches/instructions.txt
records=1000
tolerance_pct=25
command -v valgrind >/dev/null || scripts/install-build-deps.sh

bin="${INSTRUCTIONS_BIN:-}"
if [ -z "$bin" ]; then
  cargo build --release --locked --quiet -p relaychat-bench --bin instructions
  bin="${CARGO_TARGET_DIR:-target}/release/instructions"
fi

# Instructions of one run (callgrind's "Collected" total).
ir() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 \
    | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}

status=0
passed=0
failed=0
update=false
[ "${1:-}" = "--update" ] && update=true
$update && : > "$baseline.new"
printf 'instructions: per record, %s records a run (callgrind)\n' "$records"
printf '%18s %14s %14s %8s\n' handler per_record baseline change
for handler in persist-message deliver-message update-status analytics; do
  empty="$(ir "$handler" 0)"
  full="$(ir "$handler" "$records")"
  [ -n "$empty" ] && [ -n "$full" ] || { echo "instructions: $handler: valgrind gave no count" >&2; exit 1; }
  per=$(( (full - empty) / records ))
  base="$(awk -v h="$handler" '$1 == h {print $2}' "$baseline" 2>/dev/null || true)"
  if $update; then
    echo "$handler $per" >> "$baseline.new"
    printf '%18s %14s %14s %8s\n' "$handler" "$per" "${base:--}" "new"
    continue
  fi
  if [ -z "$base" ]; then
    echo "instructions: $handler has no baseline in $baseline (run scripts/instructions.sh --update)" >&2
    status=1
    failed=$((failed + 1))
    continue
  fi
  change=$(( (per - base) * 100 / base ))
  printf '%18s %14s %14s %7s%%\n' "$handler" "$per" "$base" "$change"
  if [ "$change" -gt "$tolerance_pct" ]; then
    echo "instructions: $handler needs $change% more instructions a record than its baseline (over $tolerance_pct%)" >&2
    status=1
    failed=$((failed + 1))
  else
    passed=$((passed + 1))
  fi
done
$update || echo "instructions: $passed passed, $failed failed"
$update && mv "$baseline.new" "$baseline" && echo "instructions: wrote $baseline"
exit "$status"
