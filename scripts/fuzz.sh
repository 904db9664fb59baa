#!/usr/bin/env bash
# Builds and runs every cargo-fuzz target under fuzz/ (docs/fuzzing.md) for FUZZ_SECONDS each, seeded
# from fuzz/seeds/<target>, and prints one line per target:
#   fuzz: <target> <runs> runs in <s> s, 0 crashes
# Exits non-zero when a target crashes (panic, failed invariant, timeout, out of memory), naming the
# input libFuzzer saved, or when the toolchain or the fuzz crate's Cargo.lock is not usable.
#
# Environment:
#   FUZZ_SECONDS    seconds per target (default 20; FUZZ_SECONDS=3600 for the long run)
#   FUZZ_TARGETS    space-separated subset of targets (default: all of `cargo fuzz list`)
#   FUZZ_SANITIZER  none (default) or address; see docs/fuzzing.md for why none is the default
#   FUZZ_TOOLCHAIN  the nightly toolchain to use (default nightly); it is never downloaded
#   CARGO_TARGET_DIR / RELAYCHAT_CACHE  the build goes to ${CARGO_TARGET_DIR:-$RELAYCHAT_CACHE/target}/fuzz/<sanitizer>
# Builds and runs at nice 19. The working corpus (fuzz/corpus/<target>) and crash inputs
# (fuzz/artifacts/<target>) stay in the clone, ignored by git, so later runs start where earlier ones stopped.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${RELAYCHAT_CACHE:-$HOME/.cache/relaychat}"
CARGO_FUZZ_VERSION="0.13.2"
FUZZ_SECONDS="${FUZZ_SECONDS:-20}"
FUZZ_SANITIZER="${FUZZ_SANITIZER:-none}"
FUZZ_TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"
target_dir="${CARGO_TARGET_DIR:-$CACHE/target}/fuzz/$FUZZ_SANITIZER"
fuzz_root="$CACHE/cargo-fuzz"
# Never let rustup fetch a toolchain or component behind our back (newer rustup honours this).
export RUSTUP_AUTO_INSTALL=0

die() { echo "fuzz: $*" >&2; exit 1; }
# Seconds since a `date +%s%N` stamp, to a tenth.
elapsed() {
  local ns=$(($(date +%s%N) - $1))
  printf '%d.%d' $((ns / 1000000000)) $((ns / 100000000 % 10))
}

case "$FUZZ_SECONDS" in
  '' | *[!0-9]* | 0) die "FUZZ_SECONDS must be a whole number of seconds above 0 (got '$FUZZ_SECONDS')" ;;
esac
case "$FUZZ_SANITIZER" in
  none | address) ;;
  *) die "FUZZ_SANITIZER must be none or address (got '$FUZZ_SANITIZER')" ;;
esac

# The nightly toolchain: cargo-fuzz needs it, and it cannot be downloaded here.
command -v rustup >/dev/null || die "rustup is not installed; cargo-fuzz needs a nightly toolchain managed by rustup"
if ! rustup toolchain list | awk '{print $1}' | grep -Eq "^${FUZZ_TOOLCHAIN}(-[a-z].*)?$"; then
  {
    echo "fuzz: the Rust toolchain '$FUZZ_TOOLCHAIN' is not installed, and this script does not download one."
    echo "fuzz: installed toolchains:"
    rustup toolchain list | sed 's/^/fuzz:   /'
    echo "fuzz: install it where downloads are allowed (rustup toolchain install $FUZZ_TOOLCHAIN --profile minimal),"
    echo "fuzz: or point FUZZ_TOOLCHAIN at an installed nightly."
  } >&2
  exit 1
fi
host="$(rustc "+$FUZZ_TOOLCHAIN" -vV | sed -n 's/^host: //p')"
[ -n "$host" ] || die "rustc +$FUZZ_TOOLCHAIN does not run"

# cargo-fuzz, pinned, built once from crates.io into the cache (with the default toolchain).
if [ ! -x "$fuzz_root/bin/cargo-fuzz" ]; then
  echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION into $fuzz_root" >&2
  mkdir -p "$fuzz_root"
  build_tmp="$(mktemp -d "$fuzz_root/build.XXXXXX")"
  nice -n 19 cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --quiet \
    --root "$fuzz_root" --target-dir "$build_tmp" ||
    { rm -rf "$build_tmp"; die "could not install cargo-fuzz $CARGO_FUZZ_VERSION from crates.io"; }
  rm -rf "$build_tmp"
fi
export PATH="$fuzz_root/bin:$PATH"

cd "$repo"
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
# The fuzz crate keeps its own Cargo.lock (it is not a workspace member); refuse to change it silently.
if ! cargo "+$FUZZ_TOOLCHAIN" metadata --locked --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null 2>"$logs/metadata.err"; then
  cat "$logs/metadata.err" >&2
  die "fuzz/Cargo.lock is out of date with fuzz/Cargo.toml or shared/schema; refresh it as docs/fuzzing.md says"
fi

if [ -n "${FUZZ_TARGETS:-}" ]; then
  read -r -a targets <<<"$FUZZ_TARGETS"
else
  mapfile -t targets < <(cargo "+$FUZZ_TOOLCHAIN" fuzz list --fuzz-dir fuzz)
fi
[ "${#targets[@]}" -gt 0 ] || die "no fuzz targets found in fuzz/Cargo.toml"

# One build of every target: release, debug assertions and overflow checks on (-a).
mkdir -p "$target_dir"
start=$(date +%s%N)
if ! nice -n 19 cargo "+$FUZZ_TOOLCHAIN" fuzz build --fuzz-dir fuzz -a -s "$FUZZ_SANITIZER" \
  --target-dir "$target_dir" >"$target_dir/build.log" 2>&1; then
  tail -n 60 "$target_dir/build.log" >&2
  die "building the fuzz targets failed (full log: $target_dir/build.log)"
fi
echo "fuzz: built the fuzz targets (sanitizer $FUZZ_SANITIZER, debug assertions on) in $(elapsed "$start") s"

failed=0
passed=0
for target in "${targets[@]}"; do
  bin="$target_dir/$host/release/$target"
  [ -x "$bin" ] || die "$target: no binary at $bin"
  seeds="fuzz/seeds/$target"
  [ -d "$seeds" ] || die "$target: no seed corpus at $seeds"
  corpus="fuzz/corpus/$target"
  artifacts="fuzz/artifacts/$target"
  mkdir -p "$corpus" "$artifacts"
  log="$logs/$target.log"

  start=$(date +%s%N)
  rc=0
  RUST_BACKTRACE=1 nice -n 19 "$bin" -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 -timeout=10 \
    -artifact_prefix="$artifacts/" "$corpus" "$seeds" >"$log" 2>&1 || rc=$?
  secs=$(elapsed "$start")

  runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
  [ -n "$runs" ] || runs=$(sed -n 's/^#\([0-9]*\)[[:space:]]*DONE.*/\1/p' "$log" | tail -n 1)
  [ -n "$runs" ] || runs="?"
  crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)

  if [ "$rc" -eq 0 ] && [ -z "$crash" ]; then
    echo "fuzz: $target $runs runs in $secs s, 0 crashes"
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    what=$(grep -m 1 -E '^SUMMARY: libFuzzer|^==[0-9]+== ERROR' "$log" || true)
    echo "fuzz: $target $runs runs in $secs s, 1 crash: ${crash:-no input saved (exit $rc)}${what:+ ($what)}" >&2
    cp "$log" "$artifacts/last-crash.log"
    echo "fuzz: $target: the panic and backtrace (full log: $artifacts/last-crash.log):" >&2
    sed -n '/panicked at\|ERROR: libFuzzer\|ERROR: AddressSanitizer/,$p' "$log" | head -n 80 | sed 's/^/    /' >&2
    [ -z "$crash" ] || echo "fuzz: $target: reproduce with: $bin $crash" >&2
  fi
  if grep -q 'tolerated known upstream panic' "$log"; then
    echo "fuzz: note: $target met the known aws_lambda_events fractional-timestamp panic (skipped; docs/fuzzing.md)"
  fi
done
# One line a test runner's summary counts: a target passes when it ran without a crash.
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
